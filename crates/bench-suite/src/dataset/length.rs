//! Token lengths of synthetic requests: fixed, a uniform range, or a clamped normal.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// How long (in tokens) each synthetic prompt or output is.
///
/// Parses from `"128"` (fixed), `"64..256"` (uniform, both ends included) or
/// `"normal:128,32"` (normal with mean 128 and std 32, rounded and clamped to ≥ 1).
///
/// ```
/// use bench_suite::dataset::LengthSpec;
/// assert_eq!("128".parse::<LengthSpec>()?, LengthSpec::Fixed(128));
/// assert_eq!("64..256".parse::<LengthSpec>()?, LengthSpec::Uniform { min: 64, max: 256 });
/// // vLLM's --random-range-ratio 0.5 around 100 tokens:
/// assert_eq!(LengthSpec::with_range_ratio(100, 0.5)?, LengthSpec::Uniform { min: 50, max: 150 });
/// # Ok::<(), bench_suite::BenchError>(())
/// ```
///
/// In JSON a fixed length is a number (`128`), the others their text (`"64..256"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "LengthRepr", try_from = "LengthRepr")]
pub enum LengthSpec {
    /// Every request this long.
    Fixed(usize),
    /// Uniform over `min..=max`.
    Uniform {
        /// Shortest.
        min: usize,
        /// Longest.
        max: usize,
    },
    /// Normal, rounded to the nearest integer, clamped to at least 1.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

/// The JSON form of a [`LengthSpec`]: a number or its text.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LengthRepr {
    Fixed(usize),
    Text(String),
}

impl From<LengthSpec> for LengthRepr {
    fn from(l: LengthSpec) -> Self {
        match l {
            LengthSpec::Fixed(n) => LengthRepr::Fixed(n),
            other => LengthRepr::Text(other.to_string()),
        }
    }
}

impl TryFrom<LengthRepr> for LengthSpec {
    type Error = BenchError;

    fn try_from(r: LengthRepr) -> Result<Self> {
        match r {
            LengthRepr::Fixed(n) => Ok(LengthSpec::Fixed(n)),
            LengthRepr::Text(t) => t.parse(),
        }
    }
}

impl LengthSpec {
    /// vLLM's `--random-range-ratio r`: uniform over `[⌊len·(1−r)⌋, ⌈len·(1+r)⌉]`, at least 1;
    /// `r = 0` is `Fixed(len)`.
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] when `len` is 0 or `r` is outside `[0, 1)`.
    pub fn with_range_ratio(len: usize, ratio: f64) -> Result<LengthSpec> {
        if len == 0 {
            return Err(BenchError::InvalidArgument(
                "a length must be at least 1 token".into(),
            ));
        }
        if !(0.0..1.0).contains(&ratio) {
            return Err(BenchError::InvalidArgument(format!(
                "--random-range-ratio must be in [0, 1), got {ratio}"
            )));
        }
        if ratio == 0.0 {
            return Ok(LengthSpec::Fixed(len));
        }
        let min = ((len as f64 * (1.0 - ratio)).floor() as usize).max(1);
        let max = (len as f64 * (1.0 + ratio)).ceil() as usize;
        Ok(LengthSpec::Uniform { min, max })
    }

    /// One length, ≥ 1.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        match *self {
            LengthSpec::Fixed(n) => n.max(1),
            LengthSpec::Uniform { min, max } => rng.random_range(min..=max).max(1),
            LengthSpec::Normal { mean, std } => match Normal::new(mean, std) {
                Ok(d) => d.sample(rng).round().max(1.0) as usize,
                Err(_) => mean.round().max(1.0) as usize,
            },
        }
    }

    /// The mean length before clamping (the fixed value, the range's midpoint, the mean).
    pub fn mean(&self) -> f64 {
        match *self {
            LengthSpec::Fixed(n) => n as f64,
            LengthSpec::Uniform { min, max } => (min + max) as f64 / 2.0,
            LengthSpec::Normal { mean, .. } => mean,
        }
    }

    /// The longest length it can give, `None` for a normal (unbounded).
    pub fn max(&self) -> Option<usize> {
        match *self {
            LengthSpec::Fixed(n) => Some(n),
            LengthSpec::Uniform { max, .. } => Some(max),
            LengthSpec::Normal { .. } => None,
        }
    }
}

impl FromStr for LengthSpec {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            BenchError::InvalidArgument(format!(
                "bad length {s:?}: {why} (use N, MIN..MAX or normal:MEAN,STD)"
            ))
        };
        let int = |t: &str| -> Result<usize> {
            match t.trim().parse::<usize>() {
                Ok(0) => Err(bad("lengths must be at least 1")),
                Ok(n) => Ok(n),
                Err(_) => Err(bad(&format!("{:?} is not a whole number", t.trim()))),
            }
        };
        let t = s.trim();
        if let Some(rest) = t.strip_prefix("normal:") {
            let (m, d) = rest
                .split_once(',')
                .ok_or_else(|| bad("normal needs MEAN,STD"))?;
            let num = |x: &str| {
                x.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| bad(&format!("{:?} is not a number", x.trim())))
            };
            let (mean, std) = (num(m)?, num(d)?);
            if mean < 1.0 || std < 0.0 {
                return Err(bad("mean must be ≥ 1 and std ≥ 0"));
            }
            return Ok(LengthSpec::Normal { mean, std });
        }
        if let Some((a, b)) = t.split_once("..") {
            let (min, max) = (int(a)?, int(b.trim_start_matches('='))?);
            if min > max {
                return Err(bad("MIN is larger than MAX"));
            }
            return Ok(LengthSpec::Uniform { min, max });
        }
        Ok(LengthSpec::Fixed(int(t)?))
    }
}

impl fmt::Display for LengthSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LengthSpec::Fixed(n) => write!(f, "{n}"),
            LengthSpec::Uniform { min, max } => write!(f, "{min}..{max}"),
            LengthSpec::Normal { mean, std } => write!(f, "normal:{mean},{std}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn parses_and_prints() -> Result<()> {
        for s in ["7", "3..9", "normal:100,20"] {
            assert_eq!(s.parse::<LengthSpec>()?.to_string(), s);
        }
        assert_eq!(
            "3..=9".parse::<LengthSpec>()?,
            LengthSpec::Uniform { min: 3, max: 9 }
        );
        for bad in [
            "",
            "0",
            "x",
            "9..3",
            "1..0",
            "normal:5",
            "normal:0,1",
            "normal:5,-1",
        ] {
            assert!(bad.parse::<LengthSpec>().is_err(), "{bad:?} parsed");
        }
        Ok(())
    }

    #[test]
    fn json_is_a_number_when_fixed_else_text() {
        let v = serde_json::to_value([
            LengthSpec::Fixed(32),
            LengthSpec::Uniform { min: 1, max: 4 },
        ])
        .expect("json");
        assert_eq!(v, serde_json::json!([32, "1..4"]));
        let back: Vec<LengthSpec> = serde_json::from_value(v).expect("parse back");
        assert_eq!(back[1], LengthSpec::Uniform { min: 1, max: 4 });
        assert!(serde_json::from_value::<LengthSpec>(serde_json::json!("0")).is_err());
    }

    #[test]
    fn range_ratio_follows_vllm() -> Result<()> {
        assert_eq!(
            LengthSpec::with_range_ratio(10, 0.0)?,
            LengthSpec::Fixed(10)
        );
        assert_eq!(
            LengthSpec::with_range_ratio(10, 0.25)?,
            LengthSpec::Uniform { min: 7, max: 13 }
        );
        assert_eq!(
            LengthSpec::with_range_ratio(1, 0.99)?,
            LengthSpec::Uniform { min: 1, max: 2 }
        );
        assert!(LengthSpec::with_range_ratio(10, 1.0).is_err());
        assert!(LengthSpec::with_range_ratio(10, -0.1).is_err());
        assert!(LengthSpec::with_range_ratio(0, 0.1).is_err());
        Ok(())
    }

    #[test]
    fn samples_stay_in_bounds_and_normal_is_clamped() {
        let mut rng = StdRng::seed_from_u64(1);
        let u = LengthSpec::Uniform { min: 4, max: 6 };
        let xs: Vec<usize> = (0..1000).map(|_| u.sample(&mut rng)).collect();
        assert!(xs.iter().all(|x| (4..=6).contains(x)));
        assert!(
            [4, 5, 6].iter().all(|v| xs.contains(v)),
            "every value drawn"
        );
        let n = LengthSpec::Normal {
            mean: 2.0,
            std: 10.0,
        };
        let ys: Vec<usize> = (0..2000).map(|_| n.sample(&mut rng)).collect();
        assert!(ys.iter().all(|&y| y >= 1));
        assert!(
            ys.iter().filter(|&&y| y == 1).count() > 500,
            "clamped mass at 1"
        );
        let wide = LengthSpec::Normal {
            mean: 200.0,
            std: 20.0,
        };
        let mean = (0..4000).map(|_| wide.sample(&mut rng) as f64).sum::<f64>() / 4000.0;
        assert!((mean - 200.0).abs() < 2.0, "mean {mean}");
    }
}
