//! Clocks and power-limit events by phase: did prefill and decode run at full clock, or did
//! the board hold them at its power limit?
//!
//! A phase that spends most of its samples at the power limit (NVML's `sw_power_cap` or
//! `hw_power_brake` clock event) is bound by energy, not by any one kernel: the card already
//! draws all the power it may, so a kernel that does the same work faster mostly lowers the
//! clock elsewhere; only less work (fewer FLOPs, fewer bytes moved) per token raises the
//! throughput. [`PhaseClocks::is_power_bound`] says so for a phase.

use gpu_probe::nvml_wrapper::bitmasks::device::ThrottleReasons;
use metrics::sampler::GpuSample;
use serde::{Deserialize, Serialize};

use super::StepWindow;

/// Share of a phase's samples at the power limit from which the phase counts as power-bound.
pub const POWER_BOUND_FRACTION: f64 = 0.8;

/// Whether a phase with this share of its samples at the power limit counts as power-bound
/// (at least [`POWER_BOUND_FRACTION`]; `None`, no reason masks, never does).
pub fn is_power_bound_fraction(power_capped_fraction: Option<f64>) -> bool {
    power_capped_fraction.is_some_and(|f| f >= POWER_BOUND_FRACTION)
}

/// The clock events that mean "held down to stay within the board's power limit".
const POWER_LIMIT_EVENTS: u64 =
    ThrottleReasons::SW_POWER_CAP.bits() | ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN.bits();

/// How the GPU ran during one phase, from the samples taken inside its steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhaseClocks {
    /// Samples taken inside the phase's steps.
    pub samples: usize,
    /// Median SM clock of those samples, MHz.
    pub median_sm_clock_mhz: Option<u32>,
    /// Mean board power of those samples, W.
    pub mean_power_w: Option<f64>,
    /// Fraction of the samples with a clock-event mask in which the GPU was held at its power
    /// limit (`sw_power_cap` or `hw_power_brake`), `0..=1`.
    pub power_capped_fraction: Option<f64>,
}

impl PhaseClocks {
    /// Whether the phase ran at the power limit in at least [`POWER_BOUND_FRACTION`] of its
    /// samples.
    pub fn is_power_bound(&self) -> bool {
        is_power_bound_fraction(self.power_capped_fraction)
    }

    fn from_samples(samples: &[&GpuSample]) -> Option<PhaseClocks> {
        if samples.is_empty() {
            return None;
        }
        let mut clocks: Vec<u32> = samples.iter().filter_map(|s| s.sm_clock_mhz).collect();
        clocks.sort_unstable();
        let powers: Vec<f64> = samples.iter().filter_map(|s| s.power_w).collect();
        let masks: Vec<u64> = samples.iter().filter_map(|s| s.clock_event_mask).collect();
        let capped = masks
            .iter()
            .filter(|&&m| m & POWER_LIMIT_EVENTS != 0)
            .count();
        Some(PhaseClocks {
            samples: samples.len(),
            median_sm_clock_mhz: clocks.get(clocks.len() / 2).copied(),
            mean_power_w: (!powers.is_empty())
                .then(|| powers.iter().sum::<f64>() / powers.len() as f64),
            power_capped_fraction: (!masks.is_empty()).then(|| capped as f64 / masks.len() as f64),
        })
    }
}

/// [`PhaseClocks`] of the prefill steps and of the decode-only steps (see
/// [`StepWindow::is_prefill`]); `None` for a phase no sample fell in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ClocksByPhase {
    /// Samples inside steps that computed prompt tokens.
    pub prefill: Option<PhaseClocks>,
    /// Samples inside decode-only steps.
    pub decode: Option<PhaseClocks>,
}

/// Sorts each sample into the step it fell in (sample time + `offset_s` on the engine clock;
/// `windows` in the order the steps ran) and summarises the prefill and decode samples.
pub fn clocks_by_phase(
    samples: &[GpuSample],
    offset_s: f64,
    windows: &[StepWindow],
) -> ClocksByPhase {
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for s in samples {
        let t = s.t_s + offset_s;
        let i = windows.partition_point(|w| w.start_s <= t);
        let Some(w) = i.checked_sub(1).map(|i| &windows[i]) else {
            continue;
        };
        if t >= w.end_s {
            continue; // between steps
        }
        if w.is_prefill() {
            prefill.push(s);
        } else {
            decode.push(s);
        }
    }
    ClocksByPhase {
        prefill: PhaseClocks::from_samples(&prefill),
        decode: PhaseClocks::from_samples(&decode),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::window;
    use super::*;

    fn sample(t_s: f64, clock: u32, power: f64, mask: u64) -> GpuSample {
        GpuSample {
            t_s,
            gpu_util_pct: None,
            mem_util_pct: None,
            memory_used_bytes: None,
            power_w: Some(power),
            energy_mj: None,
            temperature_c: None,
            sm_clock_mhz: Some(clock),
            mem_clock_mhz: None,
            clock_event_mask: Some(mask),
        }
    }

    #[test]
    fn samples_go_to_the_step_they_fell_in() {
        let cap = ThrottleReasons::SW_POWER_CAP.bits();
        let idle = ThrottleReasons::GPU_IDLE.bits();
        // Engine clock = sample clock + 10 s. Prefill 10.0-10.3, gap, decode 10.4-11.0.
        let windows = [window(10.0, 10.3, 512, 0), window(10.4, 11.0, 0, 64)];
        let samples = [
            sample(-0.5, 1980, 80.0, idle),  // before the run: nowhere
            sample(0.0, 1400, 700.0, cap),   // prefill
            sample(0.1, 1500, 690.0, cap),   // prefill
            sample(0.2, 1450, 695.0, 0),     // prefill, not capped
            sample(0.35, 1980, 300.0, idle), // the gap between steps
            sample(0.5, 1750, 690.0, cap),   // decode
            sample(0.7, 1800, 700.0, cap),   // decode
            sample(0.9, 1700, 695.0, cap),   // decode
            sample(1.2, 1980, 90.0, idle),   // after the run
        ];
        let c = clocks_by_phase(&samples, 10.0, &windows);
        let p = c.prefill.expect("prefill samples");
        assert_eq!(p.samples, 3);
        assert_eq!(p.median_sm_clock_mhz, Some(1450));
        approx::assert_abs_diff_eq!(p.mean_power_w.unwrap_or(0.0), 695.0, epsilon = 1e-9);
        approx::assert_abs_diff_eq!(
            p.power_capped_fraction.unwrap_or(0.0),
            2.0 / 3.0,
            epsilon = 1e-12
        );
        assert!(!p.is_power_bound());
        let d = c.decode.expect("decode samples");
        assert_eq!((d.samples, d.median_sm_clock_mhz), (3, Some(1750)));
        assert_eq!(d.power_capped_fraction, Some(1.0));
        assert!(d.is_power_bound());
    }

    #[test]
    fn no_samples_or_no_steps_give_no_phase() {
        let c = clocks_by_phase(&[], 0.0, &[window(0.0, 1.0, 0, 8)]);
        assert_eq!(c, ClocksByPhase::default());
        let c = clocks_by_phase(&[sample(0.5, 1980, 100.0, 0)], 0.0, &[]);
        assert_eq!(c, ClocksByPhase::default());
        // A sample without a clock-event mask says nothing about the power limit.
        let mut s = sample(0.5, 1980, 100.0, 0);
        s.clock_event_mask = None;
        let c = clocks_by_phase(&[s], 0.0, &[window(0.0, 1.0, 0, 8)]);
        let d = c.decode.expect("decode sample");
        assert_eq!(d.power_capped_fraction, None);
        assert!(!d.is_power_bound());
    }
}
