//! Service-level objectives for goodput, parsed like vLLM's `--goodput ttft:200 tpot:50`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::MetricsError;

/// Latency objectives in milliseconds; a request is *good* when it meets every one set.
///
/// Parses from `"ttft:200,tpot:50,e2el:2000"` (commas and/or spaces between pairs; any
/// subset of the three keys, at least one; values non-negative milliseconds).
///
/// ```
/// use metrics::serving::Slo;
/// let slo: Slo = "ttft:200, tpot:50".parse()?;
/// assert_eq!(slo.ttft_ms, Some(200.0));
/// assert_eq!(slo.e2el_ms, None);
/// assert_eq!(slo.to_string(), "ttft:200,tpot:50");
/// # Ok::<(), metrics::MetricsError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Time-to-first-token objective (ms).
    pub ttft_ms: Option<f64>,
    /// Time-per-output-token objective (ms).
    pub tpot_ms: Option<f64>,
    /// End-to-end latency objective (ms).
    pub e2el_ms: Option<f64>,
}

impl Slo {
    /// Whether a request with these latencies (ms) meets every objective that is set.
    pub fn is_met(&self, ttft_ms: f64, tpot_ms: f64, e2el_ms: f64) -> bool {
        let ok = |limit: Option<f64>, value: f64| limit.is_none_or(|l| value <= l);
        ok(self.ttft_ms, ttft_ms) && ok(self.tpot_ms, tpot_ms) && ok(self.e2el_ms, e2el_ms)
    }

    /// The same test in seconds, compared exactly as vLLM does (`limit_ms / 1000 >= value_s`),
    /// so requests right at a limit are classified the same way.
    pub(crate) fn is_met_seconds(&self, ttft_s: f64, tpot_s: f64, e2el_s: f64) -> bool {
        let ok = |limit: Option<f64>, value: f64| limit.is_none_or(|l| l / 1000.0 >= value);
        ok(self.ttft_ms, ttft_s) && ok(self.tpot_ms, tpot_s) && ok(self.e2el_ms, e2el_s)
    }

    /// Whether no objective is set.
    pub fn is_empty(&self) -> bool {
        self.ttft_ms.is_none() && self.tpot_ms.is_none() && self.e2el_ms.is_none()
    }
}

impl FromStr for Slo {
    type Err = MetricsError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| MetricsError::InvalidSlo {
            input: input.to_string(),
            reason,
        };
        let mut slo = Slo::default();
        for pair in input
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let (name, value) = pair
                .split_once(':')
                .ok_or_else(|| err(format!("{pair:?} is not NAME:MILLISECONDS")))?;
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| err(format!("{value:?} is not a number")))?;
            if !value.is_finite() || value < 0.0 {
                return Err(err(format!(
                    "{name} must be a non-negative number of ms, got {value}"
                )));
            }
            let slot = match name.trim() {
                "ttft" => &mut slo.ttft_ms,
                "tpot" => &mut slo.tpot_ms,
                "e2el" => &mut slo.e2el_ms,
                other => {
                    return Err(err(format!(
                        "unknown metric {other:?}; use ttft, tpot or e2el"
                    )))
                }
            };
            if slot.replace(value).is_some() {
                return Err(err(format!("{name} given twice")));
            }
        }
        if slo.is_empty() {
            return Err(err("no objective given".to_string()));
        }
        Ok(slo)
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("ttft", self.ttft_ms),
            ("tpot", self.tpot_ms),
            ("e2el", self.e2el_ms),
        ]
        .iter()
        .filter_map(|(name, v)| v.map(|v| format!("{name}:{v}")))
        .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_three() {
        let slo: Slo = "ttft:200,tpot:50,e2el:2000".parse().unwrap();
        assert_eq!(
            slo,
            Slo {
                ttft_ms: Some(200.0),
                tpot_ms: Some(50.0),
                e2el_ms: Some(2000.0)
            }
        );
        assert_eq!(slo.to_string(), "ttft:200,tpot:50,e2el:2000");
        let spaced: Slo = " ttft:200  tpot:50.5 ".parse().unwrap();
        assert_eq!(spaced.tpot_ms, Some(50.5));
        assert_eq!(spaced.e2el_ms, None);
    }

    #[test]
    fn rejects_bad_text() {
        for bad in [
            "",
            "ttft",
            "ttft:abc",
            "ttft:-1",
            "ttft:inf",
            "itl:5",
            "ttft:1,ttft:2",
            ",,",
        ] {
            let e = bad.parse::<Slo>().unwrap_err();
            assert!(
                matches!(e, MetricsError::InvalidSlo { .. }),
                "{bad:?} gave {e}"
            );
        }
    }

    #[test]
    fn is_met_checks_only_set_objectives() {
        let slo: Slo = "ttft:100".parse().unwrap();
        assert!(slo.is_met(100.0, 1e9, 1e9));
        assert!(!slo.is_met(100.1, 0.0, 0.0));
    }
}
