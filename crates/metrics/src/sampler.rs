//! A background GPU sampler: power, energy, clocks, utilisation and throttling over time.
//!
//! [`GpuSampler::start`] spawns one thread that reads NVML every `interval` (100 ms by
//! default, [`DEFAULT_INTERVAL`]) and [`GpuSampler::stop`] joins it and returns a
//! [`GpuTrace`]: the time series ([`GpuSample`]) and its [`GpuTraceSummary`]. Dropping a
//! running sampler stops and joins the thread too.
//!
//! | quantity | source |
//! |---|---|
//! | GPU / memory utilisation (%) | `nvmlDeviceGetUtilizationRates` (busy fraction over the driver's last sample period) |
//! | memory used (bytes) | `nvmlDeviceGetMemoryInfo_v2` |
//! | power (W) | `nvmlDeviceGetPowerUsage` (mW; on recent GPUs already averaged over ~1 s) |
//! | energy counter (mJ) | `nvmlDeviceGetTotalEnergyConsumption`, millijoules since the driver loaded (Volta+) |
//! | temperature (°C) | `nvmlDeviceGetTemperature(GPU)` |
//! | SM / memory clock (MHz) | `nvmlDeviceGetClockInfo(SM / MEM)` |
//! | clock-event (throttle) reasons | `nvmlDeviceGetCurrentClocksEventReasons` bitmask |
//!
//! **Energy** over the trace is the energy counter's delta between the first and the last
//! sample ([`EnergySource::Counter`]); where the counter is not supported (or went
//! backwards) it is the trapezoidal integral of the power samples
//! ([`EnergySource::PowerIntegral`]), and [`GpuTraceSummary::energy_source`] says which.
//! A sample is taken when the thread starts and one more when it is stopped, so the
//! window covers the whole measured work.
//!
//! **Throttling**: `throttled` is true if any sample reports a clock-event reason other
//! than the benign `gpu_idle` and `applications_clocks_setting`; `throttle_reasons` lists
//! those reasons by name.
//!
//! On a machine without an NVIDIA GPU or driver, [`GpuSampler::start`] still succeeds: the
//! sampler is disabled, records nothing, and the trace carries the reason in
//! [`GpuTrace::unavailable`]. Any source of readings can be sampled with
//! [`GpuSampler::with_readout`] (used by the tests, and handy for replaying a trace).

mod readout;
mod summary;

pub use readout::{GpuReading, GpuReadout, NvmlReadout};
pub use summary::{EnergySource, GpuTraceSummary};

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The default sampling interval, 100 ms.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// One reading of the GPU, taken `t_s` seconds after the sampler started. Each field is
/// `None` when the GPU or driver does not support that query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// Seconds since the sampler started.
    pub t_s: f64,
    /// Percent of the last period in which a kernel was running.
    pub gpu_util_pct: Option<u32>,
    /// Percent of the last period in which device memory was read or written.
    pub mem_util_pct: Option<u32>,
    /// Device memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Board power draw, watts.
    pub power_w: Option<f64>,
    /// NVML total-energy counter, millijoules since the driver loaded.
    pub energy_mj: Option<u64>,
    /// GPU die temperature, °C.
    pub temperature_c: Option<u32>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    pub mem_clock_mhz: Option<u32>,
    /// NVML clock-event (throttle) reasons bitmask (`nvmlClocksEventReason*`).
    pub clock_event_mask: Option<u64>,
}

impl GpuSample {
    /// A sample at `t_s` from a reading.
    pub fn from_reading(t_s: f64, r: GpuReading) -> Self {
        GpuSample {
            t_s,
            gpu_util_pct: r.gpu_util_pct,
            mem_util_pct: r.mem_util_pct,
            memory_used_bytes: r.memory_used_bytes,
            power_w: r.power_w,
            energy_mj: r.energy_mj,
            temperature_c: r.temperature_c,
            sm_clock_mhz: r.sm_clock_mhz,
            mem_clock_mhz: r.mem_clock_mhz,
            clock_event_mask: r.clock_event_mask,
        }
    }
}

/// What a sampler recorded: the series and its summary, or why nothing was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuTrace {
    /// Why nothing was recorded (no GPU, no driver, bad index, ...); `None` when sampling ran.
    pub unavailable: Option<String>,
    /// The NVML index of the sampled GPU.
    pub device_index: u32,
    /// The requested sampling interval, milliseconds.
    pub interval_ms: f64,
    /// The time series, oldest first.
    pub samples: Vec<GpuSample>,
    /// Summary of `samples`; `None` when there are none.
    pub summary: Option<GpuTraceSummary>,
}

impl GpuTrace {
    fn without_samples(device_index: u32, interval: Duration, reason: String) -> Self {
        GpuTrace {
            unavailable: Some(reason),
            device_index,
            interval_ms: interval.as_secs_f64() * 1e3,
            samples: Vec::new(),
            summary: None,
        }
    }
}

/// A running (or disabled) background sampler; see the [module docs](self).
#[derive(Debug)]
pub struct GpuSampler {
    device_index: u32,
    interval: Duration,
    state: SamplerState,
}

#[derive(Debug)]
enum SamplerState {
    Disabled(String),
    Running {
        stop: Sender<()>,
        thread: JoinHandle<Vec<GpuSample>>,
    },
    Stopped,
}

impl GpuSampler {
    /// Starts sampling NVML device `device_index` every `interval`. Never fails: without a
    /// usable GPU the sampler is disabled, records nothing, and says why
    /// ([`GpuSampler::unavailable_reason`], [`GpuTrace::unavailable`]).
    pub fn start(device_index: u32, interval: Duration) -> GpuSampler {
        match NvmlReadout::open(device_index) {
            Ok(readout) => Self::with_readout(device_index, readout, interval),
            Err(reason) => {
                tracing::info!(%reason, "GPU sampler disabled");
                Self::disabled(device_index, interval, reason)
            }
        }
    }

    /// Starts sampling any [`GpuReadout`] every `interval` on a background thread.
    /// A zero `interval` is raised to 1 ms. If the thread cannot be spawned the sampler is
    /// disabled with that reason.
    pub fn with_readout<R: GpuReadout>(
        device_index: u32,
        readout: R,
        interval: Duration,
    ) -> GpuSampler {
        let interval = interval.max(Duration::from_millis(1));
        let (stop, stop_rx) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("gpu-sampler-{device_index}"))
            .spawn(move || sample_loop(readout, interval, &stop_rx));
        match spawned {
            Ok(thread) => GpuSampler {
                device_index,
                interval,
                state: SamplerState::Running { stop, thread },
            },
            Err(e) => Self::disabled(
                device_index,
                interval,
                format!("cannot start the sampler thread: {e}"),
            ),
        }
    }

    /// A sampler that records nothing, for `reason`.
    pub fn disabled(
        device_index: u32,
        interval: Duration,
        reason: impl Into<String>,
    ) -> GpuSampler {
        GpuSampler {
            device_index,
            interval,
            state: SamplerState::Disabled(reason.into()),
        }
    }

    /// Whether the sampling thread is running.
    pub fn is_running(&self) -> bool {
        matches!(self.state, SamplerState::Running { .. })
    }

    /// Why the sampler is disabled, if it is.
    pub fn unavailable_reason(&self) -> Option<&str> {
        match &self.state {
            SamplerState::Disabled(reason) => Some(reason),
            _ => None,
        }
    }

    /// Stops the thread (taking one last sample), joins it and returns the trace.
    pub fn stop(mut self) -> GpuTrace {
        let (index, interval) = (self.device_index, self.interval);
        match std::mem::replace(&mut self.state, SamplerState::Stopped) {
            SamplerState::Disabled(reason) => GpuTrace::without_samples(index, interval, reason),
            SamplerState::Stopped => {
                GpuTrace::without_samples(index, interval, "sampler already stopped".into())
            }
            SamplerState::Running { stop, thread } => match join(stop, thread) {
                Ok(samples) => GpuTrace {
                    unavailable: None,
                    device_index: index,
                    interval_ms: interval.as_secs_f64() * 1e3,
                    summary: GpuTraceSummary::from_samples(&samples),
                    samples,
                },
                Err(reason) => GpuTrace::without_samples(index, interval, reason),
            },
        }
    }
}

impl Drop for GpuSampler {
    fn drop(&mut self) {
        if let SamplerState::Running { stop, thread } =
            std::mem::replace(&mut self.state, SamplerState::Stopped)
        {
            if let Err(reason) = join(stop, thread) {
                tracing::warn!(%reason, "GPU sampler ended badly");
            }
        }
    }
}

fn join(stop: Sender<()>, thread: JoinHandle<Vec<GpuSample>>) -> Result<Vec<GpuSample>, String> {
    // A send error means the thread already ended; joining tells us how.
    let _ = stop.send(());
    thread
        .join()
        .map_err(|_| "the sampler thread panicked; no trace".to_string())
}

/// Reads every `interval` (a slow reading delays the next tick rather than bunching up)
/// until told to stop or the sender is dropped, then takes one final reading.
fn sample_loop<R: GpuReadout>(
    mut readout: R,
    interval: Duration,
    stop: &mpsc::Receiver<()>,
) -> Vec<GpuSample> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next = start;
    loop {
        let reading = readout.read();
        samples.push(GpuSample::from_reading(
            start.elapsed().as_secs_f64(),
            reading,
        ));
        let now = Instant::now();
        next += interval;
        if next <= now {
            next = now + interval;
        }
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let reading = readout.read();
    samples.push(GpuSample::from_reading(
        start.elapsed().as_secs_f64(),
        reading,
    ));
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A fake GPU drawing 100 W + 10 W per reading, energy counter in step.
    struct FakeGpu {
        reads: Arc<AtomicUsize>,
    }

    impl GpuReadout for FakeGpu {
        fn read(&mut self) -> GpuReading {
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            GpuReading {
                power_w: Some(100.0 + 10.0 * n as f64),
                energy_mj: Some(1_000_000 + 1_000 * n as u64),
                sm_clock_mhz: Some(1980),
                ..GpuReading::default()
            }
        }
    }

    #[test]
    fn samples_until_stopped_and_takes_a_final_sample() {
        let reads = Arc::new(AtomicUsize::new(0));
        let s = GpuSampler::with_readout(
            0,
            FakeGpu {
                reads: reads.clone(),
            },
            Duration::from_millis(5),
        );
        assert!(s.is_running());
        std::thread::sleep(Duration::from_millis(60));
        let trace = s.stop();
        let n = reads.load(Ordering::SeqCst);
        assert_eq!(trace.samples.len(), n);
        assert!(n >= 3, "only {n} samples");
        assert!(trace.unavailable.is_none());
        assert!(trace.samples.windows(2).all(|w| w[0].t_s <= w[1].t_s));
        let summary = trace.summary.unwrap();
        assert_eq!(summary.energy_source, EnergySource::Counter);
        // Counter rises 1 J per reading.
        assert_eq!(summary.energy_j, Some((n - 1) as f64));
        assert_eq!(summary.max_power_w, Some(100.0 + 10.0 * (n - 1) as f64));
    }

    #[test]
    fn drop_stops_and_joins_the_thread() {
        let reads = Arc::new(AtomicUsize::new(0));
        let s = GpuSampler::with_readout(
            0,
            FakeGpu {
                reads: reads.clone(),
            },
            Duration::from_millis(2),
        );
        std::thread::sleep(Duration::from_millis(10));
        drop(s);
        let after_drop = reads.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            reads.load(Ordering::SeqCst),
            after_drop,
            "thread still sampling"
        );
        // The Arc's only other owner (the thread's readout) is gone: it was joined.
        assert_eq!(Arc::strong_count(&reads), 1);
    }

    #[test]
    fn disabled_sampler_records_nothing_and_says_why() {
        let s = GpuSampler::disabled(3, DEFAULT_INTERVAL, "no NVIDIA GPU: test");
        assert!(!s.is_running());
        assert_eq!(s.unavailable_reason(), Some("no NVIDIA GPU: test"));
        let trace = s.stop();
        assert_eq!(trace.unavailable.as_deref(), Some("no NVIDIA GPU: test"));
        assert!(trace.samples.is_empty() && trace.summary.is_none());
        assert_eq!(trace.device_index, 3);
        assert_eq!(trace.interval_ms, 100.0);
    }

    #[test]
    fn start_on_this_machine_never_fails() {
        // With a GPU it samples; without one it is disabled with a reason. Either is fine.
        let s = GpuSampler::start(0, Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(30));
        let running = s.is_running();
        let trace = s.stop();
        assert_eq!(running, trace.unavailable.is_none());
        if let Some(reason) = &trace.unavailable {
            assert!(!reason.is_empty());
            assert!(trace.samples.is_empty());
        } else {
            assert!(trace.samples.len() >= 2);
        }
    }

    #[test]
    fn trace_serialises() {
        let s = GpuSampler::with_readout(
            1,
            FakeGpu {
                reads: Arc::new(AtomicUsize::new(0)),
            },
            Duration::from_millis(1),
        );
        std::thread::sleep(Duration::from_millis(5));
        let trace = s.stop();
        let json = serde_json::to_string(&trace).unwrap();
        let back: GpuTrace = serde_json::from_str(&json).unwrap();
        assert_eq!(back.samples.len(), trace.samples.len());
        assert_eq!(back.device_index, 1);
    }
}
