//! [`compute`]: request timelines → [`ServingMetrics`].

use crate::error::{MetricsError, Result};
use crate::serving::{RequestTimeline, Slo};
use crate::stats::Summary;

/// Serving metrics of one benchmark run (definitions in the [module docs](crate::serving)).
///
/// Latency summaries are in milliseconds and are `None` when no request contributed a
/// sample. Serialises to a flat map with vLLM's key names (`mean_ttft_ms`,
/// `p99_itl_ms`, `request_goodput`, ...); see [`ServingMetrics::to_flat_map`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServingMetrics {
    /// Wall-clock length of the run, in seconds (the denominator of every throughput).
    pub duration_s: f64,
    /// Requests that produced at least one token.
    pub completed: usize,
    /// Requests that produced no token.
    pub failed: usize,
    /// Σ prompt tokens over completed requests.
    pub total_input_tokens: usize,
    /// Σ output tokens over completed requests.
    pub total_output_tokens: usize,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Requests per second that met every SLO; `None` when no SLO was given.
    pub request_goodput: Option<f64>,
    /// Output tokens per second.
    pub output_throughput: f64,
    /// Prompt + output tokens per second.
    pub total_token_throughput: f64,
    /// Most output tokens produced within one whole second (from the first arrival).
    pub max_output_tokens_per_s: f64,
    /// Most requests in flight at the same time.
    pub max_concurrent_requests: usize,
    /// The SLO goodput was measured against.
    pub slo: Option<Slo>,
    /// The percentiles reported in each summary.
    pub percentiles: Vec<f64>,
    /// Time to first token (ms).
    pub ttft_ms: Option<Summary>,
    /// Time per output token excluding the first (ms); requests with > 1 output token.
    pub tpot_ms: Option<Summary>,
    /// Inter-token latency, every gap pooled (ms).
    pub itl_ms: Option<Summary>,
    /// End-to-end latency (ms).
    pub e2el_ms: Option<Summary>,
    /// Wait before first being scheduled (ms); requests that report `first_scheduled_s`.
    pub queue_ms: Option<Summary>,
}

/// Computes the serving metrics of `timelines` over a run of `duration_s` seconds,
/// reporting `percentiles` (each in `0..=100`, e.g. [`DEFAULT_PERCENTILES`]) for every
/// latency, and goodput against `slo` if given.
///
/// [`DEFAULT_PERCENTILES`]: crate::stats::DEFAULT_PERCENTILES
///
/// # Errors
/// - [`MetricsError::InvalidDuration`] if `duration_s` is not positive and finite;
/// - [`MetricsError::InvalidPercentile`] for a percentile outside `0..=100`;
/// - [`MetricsError::InvalidTimeline`] (naming the request) for a non-finite time, token
///   times out of order or before arrival, `output_tokens < token_times_s.len()`, output
///   tokens claimed without any token time, or `first_scheduled_s` before arrival or after
///   the first token.
pub fn compute(
    timelines: &[RequestTimeline],
    duration_s: f64,
    percentiles: &[f64],
    slo: Option<&Slo>,
) -> Result<ServingMetrics> {
    if !duration_s.is_finite() || duration_s <= 0.0 {
        return Err(MetricsError::InvalidDuration(duration_s));
    }
    if let Some(&p) = percentiles.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(MetricsError::InvalidPercentile(p));
    }
    for (index, t) in timelines.iter().enumerate() {
        validate(t).map_err(|reason| MetricsError::InvalidTimeline { index, reason })?;
    }

    let mut ttfts = Vec::new();
    let mut tpots = Vec::new();
    let mut itls = Vec::new();
    let mut e2els = Vec::new();
    let mut queues = Vec::new();
    let (mut completed, mut failed, mut good) = (0usize, 0usize, 0usize);
    let (mut input_tokens, mut output_tokens) = (0usize, 0usize);

    for t in timelines {
        let (Some(&first), Some(&last)) = (t.token_times_s.first(), t.token_times_s.last()) else {
            failed += 1;
            continue;
        };
        completed += 1;
        input_tokens += t.prompt_tokens;
        output_tokens += t.output_tokens;

        let ttft = first - t.arrival_s;
        let e2el = last - t.arrival_s;
        // vLLM: TPOT only for > 1 output token; counts as 0 for the goodput test otherwise.
        let tpot = if t.output_tokens > 1 {
            let v = (e2el - ttft) / (t.output_tokens - 1) as f64;
            tpots.push(v);
            v
        } else {
            0.0
        };
        ttfts.push(ttft);
        e2els.push(e2el);
        itls.extend(t.token_times_s.windows(2).map(|w| w[1] - w[0]));
        if let Some(s) = t.first_scheduled_s {
            queues.push(s - t.arrival_s);
        }
        if slo.is_some_and(|slo| slo.is_met_seconds(ttft, tpot, e2el)) {
            good += 1;
        }
    }
    if completed == 0 && !timelines.is_empty() {
        tracing::warn!("all {} requests failed (no output token)", timelines.len());
    }

    let summary_ms = |xs: &[f64]| -> Result<Option<Summary>> {
        if xs.is_empty() {
            Ok(None)
        } else {
            Ok(Some(
                Summary::with_percentiles(xs, percentiles)?.scaled(1e3),
            ))
        }
    };
    let (max_output_tokens_per_s, max_concurrent_requests) = peaks(timelines);

    Ok(ServingMetrics {
        duration_s,
        completed,
        failed,
        total_input_tokens: input_tokens,
        total_output_tokens: output_tokens,
        request_throughput: completed as f64 / duration_s,
        request_goodput: slo.map(|_| good as f64 / duration_s),
        output_throughput: output_tokens as f64 / duration_s,
        total_token_throughput: (input_tokens + output_tokens) as f64 / duration_s,
        max_output_tokens_per_s,
        max_concurrent_requests,
        slo: slo.copied(),
        percentiles: percentiles.to_vec(),
        ttft_ms: summary_ms(&ttfts)?,
        tpot_ms: summary_ms(&tpots)?,
        itl_ms: summary_ms(&itls)?,
        e2el_ms: summary_ms(&e2els)?,
        queue_ms: summary_ms(&queues)?,
    })
}

fn validate(t: &RequestTimeline) -> std::result::Result<(), String> {
    if !t.arrival_s.is_finite() {
        return Err(format!("arrival_s is not finite ({})", t.arrival_s));
    }
    let mut previous = t.arrival_s;
    for (i, &time) in t.token_times_s.iter().enumerate() {
        if !time.is_finite() {
            return Err(format!("token_times_s[{i}] is not finite ({time})"));
        }
        if time < previous {
            return Err(if i == 0 {
                format!("first token at {time} s is before arrival at {previous} s")
            } else {
                format!(
                    "token_times_s[{i}] = {time} s is before token_times_s[{}] = {previous} s",
                    i - 1
                )
            });
        }
        previous = time;
    }
    if t.output_tokens < t.token_times_s.len() {
        return Err(format!(
            "output_tokens = {} but {} token times",
            t.output_tokens,
            t.token_times_s.len()
        ));
    }
    if t.token_times_s.is_empty() && t.output_tokens > 0 {
        return Err(format!(
            "output_tokens = {} but no token times",
            t.output_tokens
        ));
    }
    if let Some(s) = t.first_scheduled_s {
        if !s.is_finite() || s < t.arrival_s {
            return Err(format!(
                "first_scheduled_s = {s} is not a time at or after arrival ({} s)",
                t.arrival_s
            ));
        }
        if let Some(&first) = t.token_times_s.first() {
            if s > first {
                return Err(format!(
                    "first_scheduled_s = {s} s is after the first token ({first} s)"
                ));
            }
        }
    }
    Ok(())
}

/// vLLM's peak figures: tokens per whole-second bucket from the first arrival, and the
/// largest number of requests in flight (half-open `[arrival, last token)`, a departure
/// at the same instant as an arrival is processed first).
fn peaks(timelines: &[RequestTimeline]) -> (f64, usize) {
    let done: Vec<&RequestTimeline> = timelines
        .iter()
        .filter(|t| !t.token_times_s.is_empty())
        .collect();
    let Some(start) = done.iter().map(|t| t.arrival_s).min_by(f64::total_cmp) else {
        return (0.0, 0);
    };
    let mut buckets: Vec<usize> = Vec::new();
    for &time in done.iter().flat_map(|t| t.token_times_s.iter()) {
        let b = (time - start).floor() as usize;
        if buckets.len() <= b {
            buckets.resize(b + 1, 0);
        }
        buckets[b] += 1;
    }
    let max_tokens = buckets.iter().copied().max().unwrap_or(0) as f64;

    let mut events: Vec<(f64, i32)> = done
        .iter()
        .flat_map(|t| {
            let end = t.token_times_s.last().copied().unwrap_or(t.arrival_s);
            [(t.arrival_s, 1), (end, -1)]
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        peak = peak.max(now);
    }
    (max_tokens, peak.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    /// Three requests, hand-computed:
    /// A: arrival 0, tokens at 0.1 0.2 0.3 0.4   → TTFT 100, E2E 400, TPOT 100, ITL 100×3
    /// B: arrival 0.5, tokens at 0.8 1.0        → TTFT 300, E2E 500, TPOT 200, ITL 200
    /// C: arrival 1.0, token at 1.05 (one token) → TTFT 50,  E2E 50,  no TPOT, no ITL
    fn three() -> Vec<RequestTimeline> {
        vec![
            RequestTimeline::new(0.0, vec![0.1, 0.2, 0.3, 0.4], 10),
            RequestTimeline::new(0.5, vec![0.8, 1.0], 20),
            RequestTimeline::new(1.0, vec![1.05], 30),
        ]
    }

    #[test]
    fn hand_computed_metrics() {
        let m = compute(&three(), 2.0, &[50.0, 99.0], None).unwrap();
        assert_eq!((m.completed, m.failed), (3, 0));
        assert_eq!((m.total_input_tokens, m.total_output_tokens), (60, 7));
        assert_relative_eq!(m.request_throughput, 1.5);
        assert_relative_eq!(m.output_throughput, 3.5);
        assert_relative_eq!(m.total_token_throughput, 33.5);
        assert_eq!(m.request_goodput, None);

        let ttft = m.ttft_ms.as_ref().unwrap();
        assert_eq!(ttft.count, 3);
        assert_relative_eq!(ttft.mean, 150.0, epsilon = 1e-9);
        assert_relative_eq!(ttft.median, 100.0, epsilon = 1e-9);
        // numpy.percentile([50, 100, 300], 99) = 296.0; np.std = 108.0123...
        assert_relative_eq!(ttft.percentile(99.0).unwrap(), 296.0, epsilon = 1e-9);
        assert_relative_eq!(
            ttft.population_stddev,
            (((50.0f64 - 150.0).powi(2) + 50.0f64.powi(2) + 150.0f64.powi(2)) / 3.0).sqrt(),
            epsilon = 1e-9
        );

        let tpot = m.tpot_ms.as_ref().unwrap();
        assert_eq!(tpot.count, 2);
        assert_relative_eq!(tpot.mean, 150.0, epsilon = 1e-9);

        let itl = m.itl_ms.as_ref().unwrap();
        assert_eq!(itl.count, 4);
        assert_relative_eq!(itl.mean, 125.0, epsilon = 1e-9); // (100+100+100+200)/4

        let e2el = m.e2el_ms.as_ref().unwrap();
        assert_relative_eq!(e2el.mean, (400.0 + 500.0 + 50.0) / 3.0, epsilon = 1e-9);
        assert_eq!(m.queue_ms, None);

        // Buckets from t=0: [0,1): 0.1 0.2 0.3 0.4 0.8 → 5; [1,2): 1.0 1.05 → 2.
        assert_relative_eq!(m.max_output_tokens_per_s, 5.0);
        // A [0,0.4), B [0.5,1.0), C [1.0,1.05): never two at once.
        assert_eq!(m.max_concurrent_requests, 1);
    }

    #[test]
    fn goodput_counts_requests_meeting_every_slo() {
        // TTFT ≤ 200 passes A, C; TPOT ≤ 150 passes A, C (C's TPOT counts as 0).
        let slo: Slo = "ttft:200,tpot:150".parse().unwrap();
        let m = compute(&three(), 2.0, &[], Some(&slo)).unwrap();
        assert_relative_eq!(m.request_goodput.unwrap(), 1.0);
        // E2EL ≤ 450 passes A and C only; with TTFT ≤ 60 only C.
        let slo: Slo = "ttft:60,e2el:450".parse().unwrap();
        let m = compute(&three(), 2.0, &[], Some(&slo)).unwrap();
        assert_relative_eq!(m.request_goodput.unwrap(), 0.5);
        // Limits are inclusive: TTFT of A is exactly 100 ms.
        let slo: Slo = "ttft:100,e2el:400".parse().unwrap();
        let m = compute(&three(), 2.0, &[], Some(&slo)).unwrap();
        assert_relative_eq!(m.request_goodput.unwrap(), 1.0); // A and C → 2 / 2 s
    }

    #[test]
    fn failed_requests_and_chunked_streams() {
        let mut chunked = RequestTimeline::new(0.0, vec![0.1, 0.5], 4);
        chunked.output_tokens = 5; // two chunks carrying 5 tokens
        chunked.first_scheduled_s = Some(0.02);
        let failed = RequestTimeline::new(0.0, vec![], 7);
        let m = compute(&[chunked, failed], 1.0, &[50.0], None).unwrap();
        assert_eq!((m.completed, m.failed), (1, 1));
        assert_eq!(m.total_input_tokens, 4);
        assert_eq!(m.total_output_tokens, 5);
        // TPOT = (500 - 100) / (5 - 1) = 100 ms; one ITL gap of 400 ms.
        assert_relative_eq!(m.tpot_ms.unwrap().mean, 100.0, epsilon = 1e-9);
        assert_relative_eq!(m.itl_ms.unwrap().mean, 400.0, epsilon = 1e-9);
        assert_relative_eq!(m.queue_ms.unwrap().mean, 20.0, epsilon = 1e-9);
    }

    #[test]
    fn all_failed_or_empty_is_not_an_error() {
        let m = compute(&[RequestTimeline::new(0.0, vec![], 3)], 1.0, &[99.0], None).unwrap();
        assert_eq!((m.completed, m.failed), (0, 1));
        assert!(m.ttft_ms.is_none() && m.tpot_ms.is_none() && m.itl_ms.is_none());
        assert_eq!(m.request_throughput, 0.0);
        let m = compute(&[], 1.0, &[99.0], None).unwrap();
        assert_eq!((m.completed, m.max_concurrent_requests), (0, 0));
    }

    #[test]
    fn overlapping_requests_count_as_concurrent() {
        let ts = vec![
            RequestTimeline::new(0.0, vec![1.0, 2.0], 1),
            RequestTimeline::new(0.5, vec![1.5], 1),
            RequestTimeline::new(0.6, vec![0.7], 1),
            RequestTimeline::new(2.0, vec![2.5], 1), // starts when the first ends
        ];
        let m = compute(&ts, 3.0, &[], None).unwrap();
        assert_eq!(m.max_concurrent_requests, 3);
    }

    #[test]
    fn rejects_inconsistent_timelines() {
        let bad = |t: RequestTimeline| compute(&[three()[0].clone(), t], 1.0, &[], None);
        let before_arrival = RequestTimeline::new(1.0, vec![0.5], 1);
        let out_of_order = RequestTimeline::new(0.0, vec![0.5, 0.4], 1);
        let nan = RequestTimeline::new(0.0, vec![f64::NAN], 1);
        let mut too_few = RequestTimeline::new(0.0, vec![0.1, 0.2], 1);
        too_few.output_tokens = 1;
        let mut tokens_no_times = RequestTimeline::new(0.0, vec![], 1);
        tokens_no_times.output_tokens = 3;
        let mut sched_late = RequestTimeline::new(0.0, vec![0.1], 1);
        sched_late.first_scheduled_s = Some(0.2);
        for t in [
            before_arrival,
            out_of_order,
            nan,
            too_few,
            tokens_no_times,
            sched_late,
        ] {
            let e = bad(t.clone()).unwrap_err();
            assert!(
                matches!(e, MetricsError::InvalidTimeline { index: 1, .. }),
                "{t:?}: {e}"
            );
        }
        assert!(matches!(
            compute(&three(), 0.0, &[], None),
            Err(MetricsError::InvalidDuration(_))
        ));
        assert!(matches!(
            compute(&three(), f64::NAN, &[], None),
            Err(MetricsError::InvalidDuration(_))
        ));
        assert!(matches!(
            compute(&three(), 1.0, &[-5.0], None),
            Err(MetricsError::InvalidPercentile(_))
        ));
    }
}
