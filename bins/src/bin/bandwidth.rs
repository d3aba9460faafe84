//! bandwidth: how many GB/s this device's memory really moves — a device-to-device copy
//! (bytes read + written), our read-only and write-only kernels, and host↔device transfers
//! from pinned and pageable memory; on the CPU, memcpy/read/write over all cores. Every test
//! is verified before it is timed. All logic lives in the `matmul-flops` crate.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use matmul_flops::bandwidth::{mib_to_bytes, DEFAULT_CPU_BUFFER_MIB, DEFAULT_GPU_BUFFER_MIB};
use matmul_flops::result::BandwidthCsvRow;
use matmul_flops::{
    open_bandwidth_backend, run_bandwidth, BandwidthResult, BandwidthTest, BenchDevice, DeviceInfo,
    StopRule,
};
use serde::Serialize;

/// Measure memory bandwidth: copy (read + written bytes), read, write, host<->device.
///
/// GPU tests: copy (cuMemcpyDtoDAsync), copy_kernel, read, write (our kernels, compiled with
/// NVRTC, grid size tuned), h2d_pinned, h2d_pageable, d2h_pinned, d2h_pageable. CPU tests:
/// copy, read, write on all cores. Each test is verified (copied bytes, read sum, written
/// pattern) before it is timed; GB/s are 10^9 bytes per second, % of peak uses the
/// architecture's memory bandwidth from gpu-probe.
#[derive(Debug, Parser)]
#[command(name = "bandwidth", version, about, long_about)]
struct Args {
    /// Device: cpu, cuda (= cuda:0) or cuda:N. Default: cuda:0 in a CUDA build, else cpu.
    #[arg(long, short = 'd', value_name = "DEVICE")]
    device: Option<String>,

    /// Buffer size in MiB (a copy moves it once: 2x counted). Default: 2048 on a GPU (as
    /// torch_peers.py copy), 256 on the CPU.
    #[arg(long, value_name = "MIB", allow_hyphen_values = true)]
    size_mib: Option<u64>,

    /// Comma-separated tests to run (copy, copy_kernel, read, write, h2d_pinned,
    /// h2d_pageable, d2h_pinned, d2h_pageable). Default: all the device has.
    #[arg(long, value_name = "LIST")]
    tests: Option<String>,

    /// Most timed passes per test.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    iters: u64,

    /// Fewest timed passes before the noise rule may stop.
    #[arg(long, value_name = "N", default_value_t = 10)]
    min_iters: u64,

    /// Stop once the coefficient of variation of the pass times is at most this.
    #[arg(long, value_name = "CV", default_value_t = 0.01)]
    target_cv: f64,

    /// Seconds of timed passes per test after which timing stops (with >= 3 samples).
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    time_budget: f64,

    #[command(flatten)]
    out: gpubench::MachineOutput,
}

/// The JSON document `--json` writes.
#[derive(Serialize)]
struct BandwidthJson<'a> {
    tool: &'static str,
    device: &'a DeviceInfo,
    manifest: metrics::manifest::RunManifest,
    stop_rule: &'a StopRule,
    results: &'a [BandwidthResult],
}

fn main() -> ExitCode {
    gpubench::init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => gpubench::fail(&err),
    }
}

fn run(args: Args) -> Result<()> {
    let device: BenchDevice = match &args.device {
        Some(d) => d.parse()?,
        None => BenchDevice::default_for_build(),
    };
    let default_mib = if device == BenchDevice::Cpu {
        DEFAULT_CPU_BUFFER_MIB
    } else {
        DEFAULT_GPU_BUFFER_MIB
    };
    let bytes = mib_to_bytes(args.size_mib.unwrap_or(default_mib))?;
    let tests: Vec<BandwidthTest> = match &args.tests {
        Some(list) => list
            .split(',')
            .map(str::parse)
            .collect::<matmul_flops::Result<_>>()?,
        None => BandwidthTest::for_device(device),
    };
    if !args.time_budget.is_finite() || args.time_budget <= 0.0 {
        bail!(
            "--time-budget must be a number of seconds above 0, got {}",
            args.time_budget
        );
    }
    let rule = StopRule {
        warmup_iters: 3,
        warmup_time: Duration::from_millis(100),
        min_iters: usize::try_from(args.min_iters.min(args.iters))?,
        max_iters: usize::try_from(args.iters)?,
        target_cv: args.target_cv,
        time_budget: Duration::from_secs_f64(args.time_budget),
    };
    rule.validate()?;

    let mut backend = open_bandwidth_backend(device)?;
    let info = backend.device().clone();
    eprintln!("device: {} ({})", info.device, info.name);
    for &t in &tests {
        backend.ensure_fits(t, bytes)?;
    }

    let bar = ProgressBar::new(tests.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut results = Vec::new();
    for &t in &tests {
        bar.set_message(t.name());
        let r = run_bandwidth(backend.as_mut(), t, bytes, &rule);
        match r {
            Ok(r) => results.push(r),
            Err(e) => {
                bar.finish_and_clear();
                return Err(e.into());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let csv = args.out.wants_csv();
    let table = matmul_flops::report::bandwidth_table(&results);
    let rows: Vec<BandwidthCsvRow> = results.iter().map(BandwidthCsvRow::from).collect();
    let doc = BandwidthJson {
        tool: "bandwidth",
        device: &info,
        manifest: metrics::manifest::RunManifest::capture(),
        stop_rule: &rule,
        results: &results,
    };
    match &args.out.output {
        Some(path) => {
            if csv {
                metrics::writers::write_csv_atomic(path, &rows)?;
            } else {
                metrics::writers::write_json_atomic(path, &doc)?;
            }
            print!("{table}");
            eprintln!("wrote {}", path.display());
        }
        None if csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            for row in &rows {
                w.serialize(row)?;
            }
            w.flush()?;
        }
        None if args.out.json => println!("{}", serde_json::to_string_pretty(&doc)?),
        None => print!("{table}"),
    }
    Ok(())
}
