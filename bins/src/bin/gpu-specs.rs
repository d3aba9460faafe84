//! gpu-specs: what this machine's NVIDIA GPUs and host are, and what each GPU should do on
//! paper (replaces the seed tutorial's `gpu_specs.py`). All logic lives in `gpu-probe`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use gpu_probe::{arch_by_key, arch_table, GpuSpecsDocument};
use serde::Serialize;
use tracing::{debug, info};

/// Show this machine's host and NVIDIA GPUs (through NVML), each GPU matched to its row of
/// the built-in datasheet table with dense peak TFLOPS per precision.
///
/// A machine without an NVIDIA GPU, driver or NVML is a normal outcome: the output says
/// "no NVIDIA GPU: <reason>" and the exit code is 0.
#[derive(Debug, Parser)]
#[command(name = "gpu-specs", version, about, long_about)]
struct Args {
    /// Print JSON instead of text: the host, the GPUs (every probed field), the matched
    /// architecture rows and the tutorial's gpu_specs.py keys per GPU.
    #[arg(long)]
    json: bool,

    /// Write the output to FILE (atomically: a temporary file renamed into place) instead
    /// of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Show only the GPU with this NVML index (error if there is no such GPU).
    #[arg(long, short = 'd', value_name = "N", conflicts_with_all = ["arch_table", "arch"])]
    device: Option<u32>,

    /// Print the whole built-in architecture table (T4 ... B200: SMs, cores, memory,
    /// bandwidth, TDP, dense peaks per precision, datasheet sources) instead of probing.
    #[arg(long, conflicts_with = "arch")]
    arch_table: bool,

    /// Print one row of the architecture table, by key or name ("h100-sxm", "A10G",
    /// "NVIDIA H100 80GB HBM3"), instead of probing.
    #[arg(long, value_name = "KEY")]
    arch: Option<String>,
}

fn main() -> ExitCode {
    gpubench::init_logging();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return bad_usage(&e),
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// `--help`/`--version` print as usual; a bad flag or value is one `error:` line, exit 2.
fn bad_usage(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let message = first.trim_start_matches("error: ");
    eprintln!("error: {message} (see gpu-specs --help)");
    ExitCode::from(2)
}

/// The error and its causes on one line, skipping a cause an outer message already quotes.
fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Prints to stdout; a closed pipe (`gpu-specs | head`) ends quietly instead of panicking.
fn print_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

fn run(args: Args) -> Result<()> {
    let out = args.output.as_deref();
    if args.arch_table {
        return if args.json {
            emit_json(arch_table(), out)
        } else {
            emit_text(&gpu_probe::render_arch_table(), out)
        };
    }
    if let Some(key) = &args.arch {
        let row = arch_by_key(key)?;
        return if args.json {
            emit_json(row, out)
        } else {
            emit_text(&gpu_probe::render_arch_spec(row), out)
        };
    }

    let started = std::time::Instant::now();
    let report = gpu_probe::probe();
    debug!(elapsed_ms = started.elapsed().as_millis(), "probe finished");
    if let Some(reason) = report.gpus.unavailable_reason() {
        info!(%reason, "no GPU");
    }
    if let Some(index) = args.device {
        report
            .gpus
            .device(index)
            .map_err(|e| match report.gpus.unavailable_reason() {
                Some(reason) => anyhow::anyhow!("{e} ({reason})"),
                None => e.into(),
            })?;
    }
    if args.json {
        emit_json(&GpuSpecsDocument::new(report, args.device), out)
    } else {
        emit_text(&gpu_probe::render_report(&report, args.device), out)
    }
}

fn emit_text(text: &str, output: Option<&Path>) -> Result<()> {
    match output {
        Some(path) => {
            metrics::writers::write_text_atomic(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            info!(path = %path.display(), "wrote output");
        }
        None => print_stdout(text)?,
    }
    Ok(())
}

fn emit_json<T: Serialize + ?Sized>(value: &T, output: Option<&Path>) -> Result<()> {
    match output {
        Some(path) => {
            metrics::writers::write_json_atomic(path, value)
                .with_context(|| format!("cannot write {}", path.display()))?;
            info!(path = %path.display(), "wrote output");
        }
        None => print_stdout(&(serde_json::to_string_pretty(value)? + "\n"))?,
    }
    Ok(())
}
