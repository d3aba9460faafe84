//! Shared plumbing for the gpubench binaries: logging set-up and the one-line error exit.
//!
//! Each binary in `src/bin/` parses its flags (clap), calls the crates, prints; what they all
//! do the same way lives here.

use std::path::{Path, PathBuf};
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

/// The machine-readable output flags the measuring binaries share (`--json`, `--csv`,
/// `--output FILE`), flattened into their clap arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MachineOutput {
    /// Write JSON (device, run manifest, every result) instead of the table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,

    /// Write CSV (one line per result) instead of the table.
    #[arg(long)]
    pub csv: bool,

    /// Write the JSON or CSV to FILE (atomically) instead of stdout; the table still goes to
    /// stdout. Without --json/--csv the format follows the extension (.csv, else JSON).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl MachineOutput {
    /// Whether the results go out as CSV: `--csv`, or an `--output` ending in `.csv`
    /// without `--json`.
    pub fn wants_csv(&self) -> bool {
        self.csv
            || (!self.json
                && self
                    .output
                    .as_deref()
                    .and_then(Path::extension)
                    .is_some_and(|e| e.eq_ignore_ascii_case("csv")))
    }

    /// Whether any machine-readable output was asked for.
    pub fn any(&self) -> bool {
        self.json || self.csv || self.output.is_some()
    }
}
