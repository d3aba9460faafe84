//! GPU clocks, power and throttle reasons sampled while a measurement runs (metrics' sampler).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::device::DeviceInfo;

/// How often the GPU sampler reads clocks and power during a measurement.
pub const CLOCK_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// GPU clocks, power and throttling seen while a measurement ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockTrace {
    /// The sampler's summary, when it could read the GPU.
    pub summary: Option<metrics::sampler::GpuTraceSummary>,
    /// Why nothing was sampled, if nothing was.
    pub unavailable: Option<String>,
}

/// A running sampler for one measurement (none for the CPU).
pub(crate) struct ClockSampler(metrics::sampler::GpuSampler);

impl ClockSampler {
    /// Starts sampling the GPU behind `info`, if it is a GPU NVML knows.
    pub(crate) fn start(info: &DeviceInfo) -> Option<Self> {
        info.nvml_index.map(|i| {
            Self(metrics::sampler::GpuSampler::start(
                i,
                CLOCK_SAMPLE_INTERVAL,
            ))
        })
    }

    /// Stops sampling and summarises.
    pub(crate) fn stop(self) -> ClockTrace {
        let trace = self.0.stop();
        ClockTrace {
            summary: trace.summary,
            unavailable: trace.unavailable,
        }
    }
}
