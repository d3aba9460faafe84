//! Energy of a benchmark run: joules per output token and per request, average and peak
//! power, and the split between prefill and decode.
//!
//! An [`EnergyMeter`] runs a [`GpuSampler`] (NVML power and energy counter, clocks,
//! throttle reasons) beside the run. The run records one [`StepWindow`] per engine step: its
//! start and end on the engine clock and the prefill and decode tokens it computed
//! (`Engine::last_step_stats`). [`attribute`] then integrates the sampled power — linear
//! between samples, held flat before the first and after the last — over each window: a
//! step that computed any prefill token counts as **prefill**, a decode-only step as
//! **decode**, and time between steps as **idle**. The total energy is the NVML counter's
//! delta where the GPU has one (else the integral of power, see
//! [`metrics::sampler::GpuTraceSummary`]); the phases come from the power integral, so they
//! need not add up to the counter's total exactly. NVML's power reading is itself averaged
//! over a short window by the driver, so phases shorter than a sample interval are
//! approximate.
//!
//! The samples inside each phase's steps also say whether it ran at full clock or at the
//! board's power limit ([`ClocksByPhase`]): a power-bound phase gains from less work per
//! token, hardly from faster kernels.
//!
//! On a CPU (or without NVML) nothing is sampled: every energy figure is `null` and
//! `unavailable` says why — never zero.

mod phase_clocks;

use std::time::Duration;

use llm_engine::engine::DeviceSpec;
use llm_engine::Engine;
use metrics::sampler::{GpuSample, GpuSampler, GpuTrace};
use serde::{Deserialize, Serialize};

pub use phase_clocks::{
    clocks_by_phase, is_power_bound_fraction, ClocksByPhase, PhaseClocks, POWER_BOUND_FRACTION,
};

/// How often the meter samples the GPU.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// One engine step: when it ran (engine-clock seconds) and what it computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepWindow {
    /// Start of the step.
    pub start_s: f64,
    /// End of the step.
    pub end_s: f64,
    /// Prompt tokens computed in the step.
    pub prefill_tokens: usize,
    /// Decode tokens computed in the step.
    pub decode_tokens: usize,
}

impl StepWindow {
    /// Whether the step counts as prefill (it computed any prompt token).
    pub fn is_prefill(&self) -> bool {
        self.prefill_tokens > 0
    }
}

/// Energy (J) attributed to each phase and the time (s) each took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseEnergy {
    /// Energy over steps with prefill tokens.
    pub prefill_j: f64,
    /// Energy over decode-only steps.
    pub decode_j: f64,
    /// Energy between the first and last sample outside any step.
    pub idle_j: f64,
    /// Time in prefill steps.
    pub prefill_s: f64,
    /// Time in decode-only steps.
    pub decode_s: f64,
    /// Prompt tokens computed in prefill steps (decode tokens batched into them included
    /// in `decode_tokens_in_prefill_steps`).
    pub prefill_tokens: usize,
    /// Decode tokens computed in decode-only steps.
    pub decode_tokens: usize,
    /// Decode tokens that ran in steps counted as prefill (mixed batches).
    pub decode_tokens_in_prefill_steps: usize,
}

/// The energy figures of one run. Every figure is `None` (`null`) when the GPU could not be
/// sampled, and `unavailable` says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReport {
    /// Why there are no energy figures (no GPU, no NVML, CPU device), if there are none.
    pub unavailable: Option<String>,
    /// Energy over the run (J).
    pub energy_j: Option<f64>,
    /// Where `energy_j` came from: `counter` (NVML total energy) or `power_integral`.
    pub energy_source: Option<String>,
    /// `energy_j / output tokens`.
    pub joules_per_output_token: Option<f64>,
    /// `energy_j / completed requests`.
    pub joules_per_request: Option<f64>,
    /// Mean of the sampled power (W).
    pub avg_power_w: Option<f64>,
    /// Highest sampled power (W).
    pub peak_power_w: Option<f64>,
    /// The prefill/decode split, when steps were recorded.
    pub phases: Option<PhaseEnergy>,
    /// Prefill energy per prompt token computed (J).
    pub prefill_joules_per_token: Option<f64>,
    /// Decode energy per decode token computed (J).
    pub decode_joules_per_token: Option<f64>,
    /// Lowest and highest SM clock seen (MHz).
    pub min_sm_clock_mhz: Option<u32>,
    /// Highest SM clock seen (MHz).
    pub max_sm_clock_mhz: Option<u32>,
    /// Whether the GPU reported a throttling clock event (not idle / app clocks).
    pub throttled: bool,
    /// The throttle reasons seen.
    pub throttle_reasons: Vec<String>,
    /// Samples taken.
    pub samples: usize,
    /// SM clock and power-limit events of the prefill and of the decode steps: whether each
    /// phase ran at full clock or at the board's power limit (absent in older result files).
    #[serde(default)]
    pub clocks_by_phase: ClocksByPhase,
}

impl EnergyReport {
    /// A report with every figure `null`, for `reason`.
    pub fn unavailable(reason: impl Into<String>) -> EnergyReport {
        EnergyReport {
            unavailable: Some(reason.into()),
            energy_j: None,
            energy_source: None,
            joules_per_output_token: None,
            joules_per_request: None,
            avg_power_w: None,
            peak_power_w: None,
            phases: None,
            prefill_joules_per_token: None,
            decode_joules_per_token: None,
            min_sm_clock_mhz: None,
            max_sm_clock_mhz: None,
            throttled: false,
            throttle_reasons: Vec::new(),
            samples: 0,
            clocks_by_phase: ClocksByPhase::default(),
        }
    }

    /// The report of `trace` (sample times shifted by `offset_s` onto the engine clock) for
    /// a run with these step windows, output tokens and completed requests.
    pub fn from_trace(
        trace: &GpuTrace,
        offset_s: f64,
        windows: &[StepWindow],
        output_tokens: usize,
        requests: usize,
    ) -> EnergyReport {
        if let Some(reason) = &trace.unavailable {
            return EnergyReport::unavailable(reason.clone());
        }
        let Some(summary) = &trace.summary else {
            return EnergyReport::unavailable("the GPU sampler took no sample");
        };
        let per = |total: Option<f64>, n: usize| total.filter(|_| n > 0).map(|e| e / n as f64);
        let phases = attribute(&trace.samples, offset_s, windows);
        let source = serde_json::to_value(summary.energy_source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string));
        EnergyReport {
            unavailable: summary
                .energy_j
                .is_none()
                .then(|| "the GPU reports neither an energy counter nor power".to_string()),
            energy_j: summary.energy_j,
            energy_source: summary.energy_j.and(source),
            joules_per_output_token: per(summary.energy_j, output_tokens),
            joules_per_request: per(summary.energy_j, requests),
            avg_power_w: summary.mean_power_w,
            peak_power_w: summary.max_power_w,
            prefill_joules_per_token: phases.and_then(|p| per(Some(p.prefill_j), p.prefill_tokens)),
            decode_joules_per_token: phases.and_then(|p| per(Some(p.decode_j), p.decode_tokens)),
            phases,
            min_sm_clock_mhz: summary.min_sm_clock_mhz,
            max_sm_clock_mhz: summary.max_sm_clock_mhz,
            throttled: summary.throttled,
            throttle_reasons: summary.throttle_reasons.clone(),
            samples: summary.samples,
            clocks_by_phase: clocks_by_phase(&trace.samples, offset_s, windows),
        }
    }
}

/// Integrates the samples' power over each step window (see the [module docs](self)).
/// `offset_s` is the engine-clock time of the samples' `t_s = 0`. `None` when fewer than
/// one sample carries power or no window was recorded.
pub fn attribute(
    samples: &[GpuSample],
    offset_s: f64,
    windows: &[StepWindow],
) -> Option<PhaseEnergy> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.power_w.map(|p| (s.t_s + offset_s, p)))
        .collect();
    if points.is_empty() || windows.is_empty() {
        return None;
    }
    let mut out = PhaseEnergy::default();
    let mut in_steps = 0.0;
    for w in windows {
        let (a, b) = (w.start_s, w.end_s.max(w.start_s));
        let e = integrate(&points, a, b);
        in_steps += integrate_clipped(&points, a, b);
        if w.is_prefill() {
            out.prefill_j += e;
            out.prefill_s += b - a;
            out.prefill_tokens += w.prefill_tokens;
            out.decode_tokens_in_prefill_steps += w.decode_tokens;
        } else {
            out.decode_j += e;
            out.decode_s += b - a;
            out.decode_tokens += w.decode_tokens;
        }
    }
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    out.idle_j = (integrate(&points, first, last) - in_steps).max(0.0);
    Some(out)
}

/// Power at `t`: linear between samples, flat outside them.
fn power_at(points: &[(f64, f64)], t: f64) -> f64 {
    let i = points.partition_point(|&(pt, _)| pt <= t);
    if i == 0 {
        return points[0].1;
    }
    if i == points.len() {
        return points[i - 1].1;
    }
    let ((t0, p0), (t1, p1)) = (points[i - 1], points[i]);
    if t1 <= t0 {
        return p1;
    }
    p0 + (p1 - p0) * (t - t0) / (t1 - t0)
}

/// ∫ power dt over `[a, b]`, exact for the piecewise-linear power.
fn integrate(points: &[(f64, f64)], a: f64, b: f64) -> f64 {
    if b <= a {
        return 0.0;
    }
    let mut knots = vec![a];
    knots.extend(points.iter().map(|&(t, _)| t).filter(|&t| t > a && t < b));
    knots.push(b);
    knots
        .windows(2)
        .map(|k| (k[1] - k[0]) * (power_at(points, k[0]) + power_at(points, k[1])) / 2.0)
        .sum()
}

/// [`integrate`] over the part of `[a, b]` inside the sampled span (for the idle remainder).
fn integrate_clipped(points: &[(f64, f64)], a: f64, b: f64) -> f64 {
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    integrate(points, a.max(first), b.min(last))
}

/// Samples the GPU around a run; see the [module docs](self).
#[derive(Debug)]
pub struct EnergyMeter {
    sampler: GpuSampler,
    offset_s: f64,
}

impl EnergyMeter {
    /// Starts sampling the engine's GPU, or a disabled meter on the CPU.
    pub fn start(engine: &Engine) -> EnergyMeter {
        let sampler = match engine.device_spec() {
            DeviceSpec::Cuda(i) => GpuSampler::start(i as u32, SAMPLE_INTERVAL),
            DeviceSpec::Cpu => GpuSampler::disabled(
                0,
                SAMPLE_INTERVAL,
                "the run is on the CPU: no GPU power or energy to sample",
            ),
        };
        // The sampler's t = 0 is taken on its thread right after start; the engine clock
        // read here is within a thread start-up (tens of µs) of it.
        EnergyMeter {
            sampler,
            offset_s: engine.now_s(),
        }
    }

    /// A meter over any sampler (tests use a fake GPU); `offset_s` is the engine-clock time
    /// of the sampler's start.
    pub fn with_sampler(sampler: GpuSampler, offset_s: f64) -> EnergyMeter {
        EnergyMeter { sampler, offset_s }
    }

    /// Stops sampling and reports the run.
    pub fn finish(
        self,
        windows: &[StepWindow],
        output_tokens: usize,
        requests: usize,
    ) -> EnergyReport {
        let trace = self.sampler.stop();
        EnergyReport::from_trace(&trace, self.offset_s, windows, output_tokens, requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, power_w: f64) -> GpuSample {
        GpuSample {
            t_s,
            gpu_util_pct: None,
            mem_util_pct: None,
            memory_used_bytes: None,
            power_w: Some(power_w),
            energy_mj: None,
            temperature_c: None,
            sm_clock_mhz: None,
            mem_clock_mhz: None,
            clock_event_mask: None,
        }
    }

    /// A step window (also used by the phase-clock tests).
    pub(super) fn window(start_s: f64, end_s: f64, prefill: usize, decode: usize) -> StepWindow {
        StepWindow {
            start_s,
            end_s,
            prefill_tokens: prefill,
            decode_tokens: decode,
        }
    }

    #[test]
    fn constant_power_splits_by_time() {
        let samples: Vec<GpuSample> = (0..=10).map(|i| sample(i as f64 * 0.1, 200.0)).collect();
        // Engine clock = sample clock + 5 s.
        let windows = [
            window(5.0, 5.2, 64, 0), // prefill, 0.2 s
            window(5.2, 5.5, 0, 8),  // decode, 0.3 s
            window(5.6, 5.8, 16, 7), // mixed -> prefill, 0.2 s
            window(5.8, 6.0, 0, 8),  // decode, 0.2 s
        ];
        let p = attribute(&samples, 5.0, &windows).expect("attributed");
        approx::assert_abs_diff_eq!(p.prefill_j, 80.0, epsilon = 1e-9);
        approx::assert_abs_diff_eq!(p.decode_j, 100.0, epsilon = 1e-9);
        approx::assert_abs_diff_eq!(p.idle_j, 20.0, epsilon = 1e-9); // 5.5..5.6
        approx::assert_abs_diff_eq!(p.prefill_s, 0.4, epsilon = 1e-12);
        assert_eq!((p.prefill_tokens, p.decode_tokens), (80, 16));
        assert_eq!(p.decode_tokens_in_prefill_steps, 7);
    }

    #[test]
    fn ramp_is_integrated_exactly_between_and_beyond_samples() {
        // Power 100 W at t=0 rising to 300 W at t=1 (sample clock), samples at 0, 0.5, 1.
        let samples = [sample(0.0, 100.0), sample(0.5, 200.0), sample(1.0, 300.0)];
        let windows = [
            window(0.25, 0.75, 10, 0), // mean power 200 W over 0.5 s
            window(0.75, 1.25, 0, 4),  // 0.25 s of ramp 250->300 plus 0.25 s held at 300
        ];
        let p = attribute(&samples, 0.0, &windows).expect("attributed");
        approx::assert_abs_diff_eq!(p.prefill_j, 100.0, epsilon = 1e-9);
        approx::assert_abs_diff_eq!(p.decode_j, 0.25 * 275.0 + 0.25 * 300.0, epsilon = 1e-9);
        // Sampled span 0..1 holds 200 J; 0.25..1 is in steps (the part inside the span).
        approx::assert_abs_diff_eq!(p.idle_j, 200.0 - (100.0 + 0.25 * 275.0), epsilon = 1e-9);
        assert!(attribute(&samples, 0.0, &[]).is_none());
        assert!(attribute(&[], 0.0, &windows).is_none());
    }

    #[test]
    fn report_from_a_fake_trace_and_a_cpu_report_is_null_not_zero() {
        let mut samples: Vec<GpuSample> = (0..=4).map(|i| sample(i as f64 * 0.5, 250.0)).collect();
        for (i, s) in samples.iter_mut().enumerate() {
            s.energy_mj = Some(1_000_000 + 125_000 * i as u64); // 250 W for 2 s = 500 J
            s.sm_clock_mhz = Some(1980);
        }
        let trace = GpuTrace {
            unavailable: None,
            device_index: 0,
            interval_ms: 500.0,
            summary: metrics::GpuTraceSummary::from_samples(&samples),
            samples,
        };
        let windows = [window(0.0, 0.5, 100, 0), window(0.5, 2.0, 0, 50)];
        let r = EnergyReport::from_trace(&trace, 0.0, &windows, 50, 10);
        assert_eq!(r.unavailable, None);
        assert_eq!(r.energy_j, Some(500.0));
        assert_eq!(r.energy_source.as_deref(), Some("counter"));
        assert_eq!(r.joules_per_output_token, Some(10.0));
        assert_eq!(r.joules_per_request, Some(50.0));
        assert_eq!(r.peak_power_w, Some(250.0));
        approx::assert_abs_diff_eq!(
            r.prefill_joules_per_token.unwrap_or(0.0),
            1.25,
            epsilon = 1e-9
        );
        approx::assert_abs_diff_eq!(
            r.decode_joules_per_token.unwrap_or(0.0),
            7.5,
            epsilon = 1e-9
        );

        let cpu =
            EnergyMeter::with_sampler(GpuSampler::disabled(0, SAMPLE_INTERVAL, "no GPU here"), 0.0)
                .finish(&windows, 50, 10);
        assert_eq!(cpu.unavailable.as_deref(), Some("no GPU here"));
        let v = serde_json::to_value(&cpu).expect("json");
        for k in [
            "energy_j",
            "joules_per_output_token",
            "avg_power_w",
            "peak_power_w",
        ] {
            assert!(v[k].is_null(), "{k} should be null: {v}");
        }
    }
}
