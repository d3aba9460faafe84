//! [`GpuTraceSummary`]: what a series of [`GpuSample`]s adds up to.

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use serde::{Deserialize, Serialize};

use super::GpuSample;

/// Clock-event reasons that do not mean the GPU was held back: idle, and clocks set on
/// purpose by the administrator.
const BENIGN_CLOCK_EVENTS: u64 =
    ThrottleReasons::GPU_IDLE.bits() | ThrottleReasons::APPLICATIONS_CLOCKS_SETTING.bits();

/// How [`GpuTraceSummary::energy_j`] was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergySource {
    /// Delta of NVML's total-energy counter between the first and last sample (exact to
    /// the counter's resolution).
    Counter,
    /// Trapezoidal integral of the power samples over time (the counter was unsupported or
    /// went backwards); only as good as the sampling interval.
    PowerIntegral,
    /// Neither the counter nor two power samples were available.
    Unavailable,
}

/// Summary of a [`GpuTrace`](super::GpuTrace). Fields are `None` when no sample carried
/// that reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuTraceSummary {
    /// Number of samples.
    pub samples: usize,
    /// Time from the first to the last sample, seconds.
    pub duration_s: f64,
    /// Arithmetic mean of the power samples, watts.
    pub mean_power_w: Option<f64>,
    /// Highest power sample, watts.
    pub max_power_w: Option<f64>,
    /// Energy over the trace, joules (see [`EnergySource`]).
    pub energy_j: Option<f64>,
    /// Where `energy_j` came from.
    pub energy_source: EnergySource,
    /// Lowest SM clock seen, MHz.
    pub min_sm_clock_mhz: Option<u32>,
    /// Highest SM clock seen, MHz.
    pub max_sm_clock_mhz: Option<u32>,
    /// Highest memory clock seen, MHz.
    pub max_mem_clock_mhz: Option<u32>,
    /// Highest die temperature, °C.
    pub max_temperature_c: Option<u32>,
    /// Whether any sample had a clock-event reason other than `gpu_idle` /
    /// `applications_clocks_setting`.
    pub throttled: bool,
    /// Fraction of samples (with a reason mask) that were throttled, `0..=1`.
    pub throttled_fraction: f64,
    /// The non-benign reasons seen, by name (e.g. `sw_power_cap`, `hw_thermal`; names from
    /// [`gpu_probe::throttle_reason_names`]).
    pub throttle_reasons: Vec<String>,
    /// Mean GPU utilisation, percent.
    pub mean_gpu_util_pct: Option<f64>,
    /// Mean memory utilisation, percent.
    pub mean_mem_util_pct: Option<f64>,
    /// Most device memory in use, bytes.
    pub max_memory_used_bytes: Option<u64>,
}

impl GpuTraceSummary {
    /// Summarises `samples` (oldest first); `None` if there are none.
    pub fn from_samples(samples: &[GpuSample]) -> Option<GpuTraceSummary> {
        let (first, last) = (samples.first()?, samples.last()?);

        let powers: Vec<f64> = samples.iter().filter_map(|s| s.power_w).collect();
        let (energy_j, energy_source) = energy(samples);

        let masks: Vec<u64> = samples.iter().filter_map(|s| s.clock_event_mask).collect();
        let bad: Vec<u64> = masks
            .iter()
            .map(|m| m & !BENIGN_CLOCK_EVENTS)
            .filter(|&m| m != 0)
            .collect();
        let union = bad.iter().fold(0u64, |acc, m| acc | m);

        Some(GpuTraceSummary {
            samples: samples.len(),
            duration_s: last.t_s - first.t_s,
            mean_power_w: mean(&powers),
            max_power_w: powers.iter().copied().reduce(f64::max),
            energy_j,
            energy_source,
            min_sm_clock_mhz: samples.iter().filter_map(|s| s.sm_clock_mhz).min(),
            max_sm_clock_mhz: samples.iter().filter_map(|s| s.sm_clock_mhz).max(),
            max_mem_clock_mhz: samples.iter().filter_map(|s| s.mem_clock_mhz).max(),
            max_temperature_c: samples.iter().filter_map(|s| s.temperature_c).max(),
            throttled: union != 0,
            throttled_fraction: if masks.is_empty() {
                0.0
            } else {
                bad.len() as f64 / masks.len() as f64
            },
            throttle_reasons: gpu_probe::throttle_reason_names(ThrottleReasons::from_bits_retain(
                union,
            )),
            mean_gpu_util_pct: mean(&pct(samples, |s| s.gpu_util_pct)),
            mean_mem_util_pct: mean(&pct(samples, |s| s.mem_util_pct)),
            max_memory_used_bytes: samples.iter().filter_map(|s| s.memory_used_bytes).max(),
        })
    }
}

fn pct(samples: &[GpuSample], f: fn(&GpuSample) -> Option<u32>) -> Vec<f64> {
    samples.iter().filter_map(f).map(f64::from).collect()
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Counter delta if the first and last samples both carry a non-decreasing counter,
/// else the trapezoidal integral over consecutive samples that both carry power.
fn energy(samples: &[GpuSample]) -> (Option<f64>, EnergySource) {
    let first = samples.first().and_then(|s| s.energy_mj);
    let last = samples.last().and_then(|s| s.energy_mj);
    if let (Some(a), Some(b)) = (first, last) {
        if b >= a {
            return (Some((b - a) as f64 / 1e3), EnergySource::Counter);
        }
        tracing::warn!(
            first_mj = a,
            last_mj = b,
            "energy counter went backwards; integrating power"
        );
    }
    let with_power: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.power_w.map(|p| (s.t_s, p)))
        .collect();
    if with_power.len() < 2 {
        return (None, EnergySource::Unavailable);
    }
    let joules = with_power
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum();
    (Some(joules), EnergySource::PowerIntegral)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn sample(t_s: f64) -> GpuSample {
        GpuSample {
            t_s,
            gpu_util_pct: None,
            mem_util_pct: None,
            memory_used_bytes: None,
            power_w: None,
            energy_mj: None,
            temperature_c: None,
            sm_clock_mhz: None,
            mem_clock_mhz: None,
            clock_event_mask: None,
        }
    }

    #[test]
    fn energy_from_counter_delta() {
        let mut a = sample(0.0);
        a.energy_mj = Some(5_000_000);
        a.power_w = Some(999.0); // ignored: the counter wins
        let mut b = sample(2.0);
        b.energy_mj = Some(5_700_500);
        b.power_w = Some(999.0);
        let s = GpuTraceSummary::from_samples(&[a, sample(1.0), b]).unwrap();
        assert_eq!(s.energy_source, EnergySource::Counter);
        assert_relative_eq!(s.energy_j.unwrap(), 700.5);
        assert_eq!(s.duration_s, 2.0);
        assert_eq!(s.samples, 3);
    }

    #[test]
    fn energy_falls_back_to_trapezoid() {
        // Power 100 W → 300 W linearly over 1 s, then 300 W for 1 s: 200 + 300 = 500 J.
        let powers = [(0.0, 100.0), (0.5, 200.0), (1.0, 300.0), (2.0, 300.0)];
        let samples: Vec<GpuSample> = powers
            .iter()
            .map(|&(t, p)| GpuSample {
                power_w: Some(p),
                ..sample(t)
            })
            .collect();
        let s = GpuTraceSummary::from_samples(&samples).unwrap();
        assert_eq!(s.energy_source, EnergySource::PowerIntegral);
        assert_relative_eq!(s.energy_j.unwrap(), 500.0);
        assert_relative_eq!(s.mean_power_w.unwrap(), 225.0);
        assert_eq!(s.max_power_w, Some(300.0));
    }

    #[test]
    fn counter_going_backwards_is_not_trusted() {
        let mut a = sample(0.0);
        a.energy_mj = Some(10_000);
        a.power_w = Some(50.0);
        let mut b = sample(1.0);
        b.energy_mj = Some(1_000);
        b.power_w = Some(50.0);
        let s = GpuTraceSummary::from_samples(&[a, b]).unwrap();
        assert_eq!(s.energy_source, EnergySource::PowerIntegral);
        assert_relative_eq!(s.energy_j.unwrap(), 50.0);
    }

    #[test]
    fn no_power_no_energy() {
        let s = GpuTraceSummary::from_samples(&[sample(0.0), sample(1.0)]).unwrap();
        assert_eq!(
            (s.energy_j, s.energy_source),
            (None, EnergySource::Unavailable)
        );
        assert_eq!(s.mean_power_w, None);
        assert!(GpuTraceSummary::from_samples(&[]).is_none());
    }

    #[test]
    fn benign_clock_events_do_not_count_as_throttling() {
        let idle = ThrottleReasons::GPU_IDLE.bits();
        let app = ThrottleReasons::APPLICATIONS_CLOCKS_SETTING.bits();
        let cap = ThrottleReasons::SW_POWER_CAP.bits();
        let hot = ThrottleReasons::HW_THERMAL_SLOWDOWN.bits();

        let masked = |m: &[u64]| -> Vec<GpuSample> {
            m.iter()
                .enumerate()
                .map(|(i, &mask)| GpuSample {
                    clock_event_mask: Some(mask),
                    ..sample(i as f64)
                })
                .collect()
        };
        let calm = GpuTraceSummary::from_samples(&masked(&[idle, app | idle, 0])).unwrap();
        assert!(!calm.throttled);
        assert!(calm.throttle_reasons.is_empty());
        assert_eq!(calm.throttled_fraction, 0.0);

        let busy =
            GpuTraceSummary::from_samples(&masked(&[idle, cap, cap | hot | app, 0])).unwrap();
        assert!(busy.throttled);
        assert_relative_eq!(busy.throttled_fraction, 0.5);
        assert_eq!(busy.throttle_reasons, ["sw_power_cap", "hw_thermal"]);
        assert_eq!(
            busy.throttle_reasons.len(),
            2,
            "{:?}",
            busy.throttle_reasons
        );
    }

    #[test]
    fn clocks_temperature_utilisation_memory() {
        let mk = |t: f64, sm: u32, temp: u32, util: u32, mem: u64| GpuSample {
            sm_clock_mhz: Some(sm),
            mem_clock_mhz: Some(2619),
            temperature_c: Some(temp),
            gpu_util_pct: Some(util),
            mem_util_pct: Some(util / 2),
            memory_used_bytes: Some(mem),
            ..sample(t)
        };
        let s = GpuTraceSummary::from_samples(&[
            mk(0.0, 1980, 40, 0, 1 << 30),
            mk(0.1, 1755, 61, 100, 70 << 30),
            mk(0.2, 1980, 55, 50, 2 << 30),
        ])
        .unwrap();
        assert_eq!(
            (s.min_sm_clock_mhz, s.max_sm_clock_mhz),
            (Some(1755), Some(1980))
        );
        assert_eq!(s.max_mem_clock_mhz, Some(2619));
        assert_eq!(s.max_temperature_c, Some(61));
        assert_relative_eq!(s.mean_gpu_util_pct.unwrap(), 50.0);
        assert_relative_eq!(s.mean_mem_util_pct.unwrap(), 25.0);
        assert_eq!(s.max_memory_used_bytes, Some(70 << 30));
    }
}
