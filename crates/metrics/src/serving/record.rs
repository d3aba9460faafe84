//! The flat, vLLM-keyed form of [`ServingMetrics`] (`mean_ttft_ms`, `p99_itl_ms`, ...),
//! used by its `Serialize`/`Deserialize`.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{MetricsError, Result};
use crate::serving::{ServingMetrics, Slo};
use crate::stats::{Percentile, Summary};

/// The latency metrics of a record, in key order.
const LATENCY_METRICS: [&str; 5] = ["ttft", "tpot", "itl", "e2el", "queue"];

/// vLLM's spelling of a percentile in a key: `99` → `"99"`, `99.9` → `"99.9"`.
pub(crate) fn percentile_word(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn opt(x: Option<f64>) -> Value {
    x.map_or(Value::Null, num)
}

impl ServingMetrics {
    /// The metric's summary by its key name (`"ttft"`, `"tpot"`, `"itl"`, `"e2el"`, `"queue"`).
    pub fn latency(&self, metric: &str) -> Option<&Summary> {
        match metric {
            "ttft" => self.ttft_ms.as_ref(),
            "tpot" => self.tpot_ms.as_ref(),
            "itl" => self.itl_ms.as_ref(),
            "e2el" => self.e2el_ms.as_ref(),
            "queue" => self.queue_ms.as_ref(),
            _ => None,
        }
    }

    fn latency_slot(&mut self, metric: &str) -> Option<&mut Option<Summary>> {
        match metric {
            "ttft" => Some(&mut self.ttft_ms),
            "tpot" => Some(&mut self.tpot_ms),
            "itl" => Some(&mut self.itl_ms),
            "e2el" => Some(&mut self.e2el_ms),
            "queue" => Some(&mut self.queue_ms),
            _ => None,
        }
    }

    /// The flat record, in a stable order, with vLLM's key names: `duration` (s),
    /// `completed`, `failed`, `total_input_tokens`, `total_output_tokens`,
    /// `request_throughput`, `request_goodput` (`null` without SLO), `output_throughput`,
    /// `total_token_throughput`, `max_output_tokens_per_s`, `max_concurrent_requests`,
    /// `slo_ttft_ms`/`slo_tpot_ms`/`slo_e2el_ms`, then for each of `ttft`, `tpot`, `itl`,
    /// `e2el`, `queue`: `mean_*_ms`, `median_*_ms`, `std_*_ms` (population, as vLLM),
    /// `p{P}_*_ms` per percentile, `sample_std_*_ms`, `min_*_ms`, `max_*_ms`, `cv_*`,
    /// `count_*`. Every key is always present (`null` when there is no sample), so records
    /// of different runs line up as table columns.
    pub fn to_flat_map(&self) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = vec![
            ("duration".into(), num(self.duration_s)),
            ("completed".into(), self.completed.into()),
            ("failed".into(), self.failed.into()),
            ("total_input_tokens".into(), self.total_input_tokens.into()),
            (
                "total_output_tokens".into(),
                self.total_output_tokens.into(),
            ),
            ("request_throughput".into(), num(self.request_throughput)),
            ("request_goodput".into(), opt(self.request_goodput)),
            ("output_throughput".into(), num(self.output_throughput)),
            (
                "total_token_throughput".into(),
                num(self.total_token_throughput),
            ),
            (
                "max_output_tokens_per_s".into(),
                num(self.max_output_tokens_per_s),
            ),
            (
                "max_concurrent_requests".into(),
                self.max_concurrent_requests.into(),
            ),
            ("slo_ttft_ms".into(), opt(self.slo.and_then(|s| s.ttft_ms))),
            ("slo_tpot_ms".into(), opt(self.slo.and_then(|s| s.tpot_ms))),
            ("slo_e2el_ms".into(), opt(self.slo.and_then(|s| s.e2el_ms))),
        ];
        for m in LATENCY_METRICS {
            let s = self.latency(m);
            let field = |f: fn(&Summary) -> f64| opt(s.map(f));
            out.push((format!("mean_{m}_ms"), field(|s| s.mean)));
            out.push((format!("median_{m}_ms"), field(|s| s.median)));
            out.push((format!("std_{m}_ms"), field(|s| s.population_stddev)));
            for &p in &self.percentiles {
                let v = s.and_then(|s| s.percentile(p));
                out.push((format!("p{}_{m}_ms", percentile_word(p)), opt(v)));
            }
            out.push((format!("sample_std_{m}_ms"), field(|s| s.stddev)));
            out.push((format!("min_{m}_ms"), field(|s| s.min)));
            out.push((format!("max_{m}_ms"), field(|s| s.max)));
            out.push((format!("cv_{m}"), field(|s| s.cv)));
            out.push((
                format!("count_{m}"),
                s.map_or(Value::Null, |s| s.count.into()),
            ));
        }
        out
    }

    /// Rebuilds metrics from a flat record as written by [`ServingMetrics::to_flat_map`]
    /// (keys in any order; percentiles come back sorted ascending; a `null` `cv_*` with
    /// samples present reads as `+inf`).
    ///
    /// # Errors
    /// [`MetricsError::InvalidRecord`] naming the first missing or mistyped key.
    pub fn from_flat_map(map: &BTreeMap<String, Value>) -> Result<ServingMetrics> {
        let bad = |key: &str, what: &str| MetricsError::InvalidRecord(format!("{key}: {what}"));
        let opt_f = |key: &str| -> Result<Option<f64>> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(key, "not a number")),
            }
        };
        let f = |key: &str| opt_f(key)?.ok_or_else(|| bad(key, "missing"));
        let u = |key: &str| -> Result<usize> {
            map.get(key)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| bad(key, "missing or not a non-negative integer"))
        };

        let mut percentiles: Vec<f64> = map
            .keys()
            .filter_map(|k| k.strip_prefix('p')?.strip_suffix("_ttft_ms")?.parse().ok())
            .collect();
        percentiles.sort_by(f64::total_cmp);

        let slo = Slo {
            ttft_ms: opt_f("slo_ttft_ms")?,
            tpot_ms: opt_f("slo_tpot_ms")?,
            e2el_ms: opt_f("slo_e2el_ms")?,
        };
        let mut metrics = ServingMetrics {
            duration_s: f("duration")?,
            completed: u("completed")?,
            failed: u("failed")?,
            total_input_tokens: u("total_input_tokens")?,
            total_output_tokens: u("total_output_tokens")?,
            request_throughput: f("request_throughput")?,
            request_goodput: opt_f("request_goodput")?,
            output_throughput: f("output_throughput")?,
            total_token_throughput: f("total_token_throughput")?,
            max_output_tokens_per_s: f("max_output_tokens_per_s")?,
            max_concurrent_requests: u("max_concurrent_requests")?,
            slo: (!slo.is_empty()).then_some(slo),
            percentiles: percentiles.clone(),
            ttft_ms: None,
            tpot_ms: None,
            itl_ms: None,
            e2el_ms: None,
            queue_ms: None,
        };
        for m in LATENCY_METRICS {
            if opt_f(&format!("mean_{m}_ms"))?.is_none() {
                continue;
            }
            let key = |stat: &str| format!("{stat}_{m}_ms");
            let summary = Summary {
                count: u(&format!("count_{m}"))?,
                mean: f(&key("mean"))?,
                stddev: f(&key("sample_std"))?,
                population_stddev: f(&key("std"))?,
                min: f(&key("min"))?,
                max: f(&key("max"))?,
                median: f(&key("median"))?,
                cv: opt_f(&format!("cv_{m}"))?.unwrap_or(f64::INFINITY),
                percentiles: percentiles
                    .iter()
                    .map(|&p| {
                        Ok(Percentile {
                            p,
                            value: f(&format!("p{}_{m}_ms", percentile_word(p)))?,
                        })
                    })
                    .collect::<Result<_>>()?,
            };
            if let Some(slot) = metrics.latency_slot(m) {
                *slot = Some(summary);
            }
        }
        Ok(metrics)
    }
}

impl Serialize for ServingMetrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let entries = self.to_flat_map();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (k, v) in &entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ServingMetrics {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let map = BTreeMap::<String, Value>::deserialize(deserializer)?;
        ServingMetrics::from_flat_map(&map).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::{compute, RequestTimeline};
    use approx::assert_relative_eq;

    fn sample() -> ServingMetrics {
        let mut a = RequestTimeline::new(0.0, vec![0.1, 0.25, 0.3], 5);
        a.first_scheduled_s = Some(0.01);
        let b = RequestTimeline::new(0.2, vec![0.9], 6);
        let slo: Slo = "ttft:500,e2el:1000".parse().unwrap();
        compute(&[a, b], 1.5, &[50.0, 99.0, 99.9], Some(&slo)).unwrap()
    }

    #[test]
    fn keys_follow_vllm() {
        let json = serde_json::to_value(sample()).unwrap();
        for key in [
            "duration",
            "completed",
            "request_throughput",
            "request_goodput",
            "output_throughput",
            "total_token_throughput",
            "mean_ttft_ms",
            "median_ttft_ms",
            "std_ttft_ms",
            "p99_ttft_ms",
            "p99.9_ttft_ms",
            "mean_tpot_ms",
            "p50_itl_ms",
            "mean_itl_ms",
            "mean_e2el_ms",
            "mean_queue_ms",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        // TTFTs 100 and 700 ms: np.std = 300, sample std = 424.26...
        assert_relative_eq!(json["std_ttft_ms"].as_f64().unwrap(), 300.0, epsilon = 1e-9);
        assert_relative_eq!(
            json["sample_std_ttft_ms"].as_f64().unwrap(),
            600.0 / 2f64.sqrt(),
            epsilon = 1e-9
        );
        // Only request a meets TTFT ≤ 500 and E2EL ≤ 1000: 1 / 1.5 s.
        assert_relative_eq!(json["request_goodput"].as_f64().unwrap(), 1.0 / 1.5);
        assert_eq!(json["completed"], 2);
        assert_eq!(json["count_tpot"], 1);
    }

    #[test]
    fn percentile_words() {
        assert_eq!(percentile_word(99.0), "99");
        assert_eq!(percentile_word(99.9), "99.9");
        assert_eq!(percentile_word(0.0), "0");
    }

    #[test]
    fn round_trips_through_json() {
        let m = sample();
        let text = serde_json::to_string_pretty(&m).unwrap();
        let back: ServingMetrics = serde_json::from_str(&text).unwrap();
        assert_eq!(back.percentiles, m.percentiles);
        assert_eq!(back.slo, m.slo);
        assert_eq!((back.completed, back.failed), (m.completed, m.failed));
        for metric in LATENCY_METRICS {
            match (m.latency(metric), back.latency(metric)) {
                (Some(a), Some(b)) => {
                    assert_eq!(a.count, b.count);
                    assert_relative_eq!(a.mean, b.mean, max_relative = 1e-12);
                    assert_relative_eq!(a.stddev, b.stddev, max_relative = 1e-12);
                    for (x, y) in a.percentiles.iter().zip(&b.percentiles) {
                        assert_relative_eq!(x.value, y.value, max_relative = 1e-12);
                    }
                }
                (None, None) => {}
                other => panic!("{metric}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_metric_is_null_and_reads_back_as_none() {
        let m = compute(
            &[RequestTimeline::new(0.0, vec![0.1], 1)],
            1.0,
            &[99.0],
            None,
        )
        .unwrap();
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["mean_tpot_ms"].is_null());
        assert!(json["p99_tpot_ms"].is_null());
        assert!(json["request_goodput"].is_null());
        let back: ServingMetrics = serde_json::from_value(json).unwrap();
        assert!(back.tpot_ms.is_none() && back.ttft_ms.is_some() && back.slo.is_none());
    }

    #[test]
    fn bad_record_names_the_key() {
        let mut map: BTreeMap<String, Value> = sample().to_flat_map().into_iter().collect();
        map.remove("failed");
        let e = ServingMetrics::from_flat_map(&map).unwrap_err();
        assert!(e.to_string().contains("failed"), "{e}");
    }
}
