//! Shared plumbing for the gpubench binaries: logging set-up and the one-line error exit.
//!
//! Each binary in `src/bin/` parses its flags (clap), calls the crates, prints; what they all
//! do the same way lives here.

use std::process::ExitCode;

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default: warnings only).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Prints `error: ...` (the whole cause chain on one line) to stderr and returns a failure
/// exit code.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err:#}");
    ExitCode::FAILURE
}
