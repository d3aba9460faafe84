//! Samples a GPU for a few seconds and prints the power / energy series and its summary.
//!
//! ```text
//! cargo run -p metrics --example sample_gpu -- --seconds 5
//! cargo run -p metrics --example sample_gpu -- --seconds 10 --interval-ms 50 --busy-cpu 4
//! ```
//! Run it while something loads the GPU (e.g. `gpubench tflops` in another shell) to see
//! power and the energy counter climb. Without a GPU it says so and exits 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use metrics::sampler::GpuSampler;

/// Sample NVML power, energy, clocks and throttling for a while and print the trace.
#[derive(Parser)]
struct Args {
    /// How long to sample, seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Sampling interval, milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// NVML index of the GPU to sample.
    #[arg(long, default_value_t = 0)]
    device: u32,
    /// Keep this many CPU threads busy while sampling (0 = none).
    #[arg(long, default_value_t = 0)]
    busy_cpu: usize,
    /// Also print the whole trace as JSON.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds < 86_400.0) {
        eprintln!(
            "error: --seconds must be between 0 and 86400, got {}",
            args.seconds
        );
        std::process::exit(2);
    }
    let sampler = GpuSampler::start(args.device, Duration::from_millis(args.interval_ms));
    match sampler.unavailable_reason() {
        Some(reason) => println!("GPU sampler disabled: {reason}"),
        None => println!(
            "sampling GPU {} every {} ms for {} s ...",
            args.device, args.interval_ms, args.seconds
        ),
    }

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..args.busy_cpu)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let trace = sampler.stop();
    let wall = start.elapsed().as_secs_f64();

    if let Some(reason) = &trace.unavailable {
        println!("no samples recorded ({reason}); waited {wall:.2} s");
        return;
    }
    println!(
        "{:>7} {:>8} {:>14} {:>9} {:>6} {:>5} {:>5} {:>6} {:>9}  throttle",
        "t_s", "power_W", "energy_mJ", "dE_J", "SM_MHz", "util", "temp", "mem_GB", "mask"
    );
    let first_energy = trace.samples.first().and_then(|s| s.energy_mj);
    for s in &trace.samples {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let reasons = s
            .clock_event_mask
            .map(|m| {
                gpu_probe::throttle_reason_names(
                    gpu_probe::nvml_wrapper::bitmasks::device::ThrottleReasons::from_bits_retain(m),
                )
                .join(",")
            })
            .unwrap_or_default();
        println!(
            "{:>7.3} {:>8} {:>14} {:>9} {:>6} {:>5} {:>5} {:>6} {:>9}  {}",
            s.t_s,
            opt(s.power_w.map(|p| format!("{p:.1}"))),
            opt(s.energy_mj.map(|e| e.to_string())),
            opt(s
                .energy_mj
                .zip(first_energy)
                .map(|(e, e0)| format!("{:.2}", (e.saturating_sub(e0)) as f64 / 1e3))),
            opt(s.sm_clock_mhz.map(|c| c.to_string())),
            opt(s.gpu_util_pct.map(|u| format!("{u}%"))),
            opt(s.temperature_c.map(|t| t.to_string())),
            opt(s
                .memory_used_bytes
                .map(|b| format!("{:.2}", b as f64 / 1e9))),
            opt(s.clock_event_mask.map(|m| format!("{m:#x}"))),
            reasons
        );
    }
    if let Some(sum) = &trace.summary {
        let w = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        println!(
            "\n{} samples over {:.2} s | power mean {} W, max {} W | energy {} J ({:?}) | \
             SM clock {}..{} MHz | max temp {} C | mean util {}% | throttled: {} {:?} ({:.0}% of samples)",
            sum.samples,
            sum.duration_s,
            w(sum.mean_power_w),
            w(sum.max_power_w),
            w(sum.energy_j),
            sum.energy_source,
            sum.min_sm_clock_mhz.map_or("-".into(), |c| c.to_string()),
            sum.max_sm_clock_mhz.map_or("-".into(), |c| c.to_string()),
            sum.max_temperature_c.map_or("-".into(), |c| c.to_string()),
            w(sum.mean_gpu_util_pct),
            sum.throttled,
            sum.throttle_reasons,
            sum.throttled_fraction * 100.0,
        );
        if let (Some(e), Some(p)) = (sum.energy_j, sum.mean_power_w) {
            println!(
                "check: mean power x duration = {:.1} J vs energy {:.1} J",
                p * sum.duration_s,
                e
            );
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&trace) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print JSON: {e}"),
        }
    }
}
