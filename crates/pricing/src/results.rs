//! Reading benchmark result files.
//!
//! A results file is JSON: one record object, or an array of them. The keys of the seed
//! tutorial's `vllm_benchmark.py` are understood (`model`, `throughput_tokens_per_sec`,
//! `total_tokens`, `inference_time_s`, ...), and so are the optional keys richer gpubench
//! binaries write: `output_throughput`, `avg_power_w`, `energy_j`, `gpu` (a name, or an
//! object with `name`), `manifest` (an object that may hold `gpu`), `device`. Other keys are
//! ignored. Records without `throughput_tokens_per_sec` are skipped (reported in
//! [`BenchmarkResults::skipped`]); a file where every record lacks it is an error.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::energy::{tokens_per_joule_from_energy, tokens_per_joule_from_power};
use crate::error::{PricingError, Result};
use crate::units::{Joules, TokensPerJoule, TokensPerSecond, Watts};

/// The key holding the throughput that is costed.
pub const THROUGHPUT_KEY: &str = "throughput_tokens_per_sec";

/// One usable benchmark record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchmarkRecord {
    /// Model name (`model`).
    pub model: String,
    /// Generated tokens per second (`throughput_tokens_per_sec`), > 0.
    pub throughput: TokensPerSecond,
    /// `output_throughput`, if present (kept for reports; not used in the cost math).
    pub output_throughput: Option<f64>,
    /// `total_tokens`, if present.
    pub total_tokens: Option<f64>,
    /// `inference_time_s`, if present.
    pub inference_time_s: Option<f64>,
    /// Average GPU power during the run (`avg_power_w`), if present.
    pub avg_power: Option<Watts>,
    /// GPU energy of the run (`energy_j`), if present.
    pub energy: Option<Joules>,
    /// GPU name from `gpu` or `manifest.gpu`, if present.
    pub gpu: Option<String>,
    /// gpu-probe architecture key of that GPU: the `arch` (or `key`) of a `gpu` object, else
    /// [`gpu_probe::find_arch`] applied to the name (`"Tesla T4"` → `"t4"`).
    pub gpu_arch: Option<String>,
    /// `device`, if present.
    pub device: Option<String>,
}

impl BenchmarkRecord {
    /// Tokens per joule of the run, if the record has the data: from `avg_power_w`
    /// (throughput ÷ power), else from `energy_j` with `total_tokens` (or, lacking that,
    /// throughput × `inference_time_s`).
    #[must_use]
    pub fn tokens_per_joule(&self) -> Option<TokensPerJoule> {
        if let Some(power) = self.avg_power {
            return Some(tokens_per_joule_from_power(self.throughput, power));
        }
        let energy = self.energy?;
        let tokens = self.total_tokens.or_else(|| {
            self.inference_time_s
                .map(|seconds| self.throughput.value() * seconds)
        })?;
        (tokens > 0.0).then(|| tokens_per_joule_from_energy(tokens, energy))
    }
}

/// A record that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    /// 0-based index in the file.
    pub index: usize,
    /// Its model name, or `?`.
    pub model: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The usable records of one results file.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkResults {
    /// The file they came from.
    pub path: PathBuf,
    /// Records with a valid throughput, in file order.
    pub records: Vec<BenchmarkRecord>,
    /// Records without a throughput.
    pub skipped: Vec<SkippedRecord>,
}

impl BenchmarkResults {
    /// Reads and checks a results file.
    ///
    /// # Errors
    /// [`PricingError::Io`] (missing/unreadable), [`PricingError::EmptyResults`],
    /// [`PricingError::MalformedResults`] (with line and column), and as
    /// [`BenchmarkResults::parse`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| PricingError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Parses results JSON; `path` only labels errors.
    ///
    /// # Errors
    /// [`PricingError::EmptyResults`] for blank text or an empty array,
    /// [`PricingError::MalformedResults`] for invalid JSON, [`PricingError::InvalidRecord`]
    /// for a record that is not an object, has no string `model`, or has a throughput (or
    /// power/energy) that is not a number > 0, and [`PricingError::NoThroughput`] when no
    /// record has a throughput.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let empty = || PricingError::EmptyResults {
            path: path.to_path_buf(),
        };
        if text.trim().is_empty() {
            return Err(empty());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| PricingError::MalformedResults {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: strip_position(&e.to_string()),
            })?;
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        if items.is_empty() {
            return Err(empty());
        }
        let mut records = Vec::new();
        let mut skipped = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let invalid = |model: &str, reason: String| PricingError::InvalidRecord {
                path: path.to_path_buf(),
                index,
                model: model.to_string(),
                reason,
            };
            let Value::Object(map) = item else {
                return Err(invalid("?", format!("is not a JSON object but {item}")));
            };
            // Keys starting with `_` are comments (e.g. "_note"); a comment-only object is
            // not a record.
            if map.keys().all(|k| k.starts_with('_')) {
                continue;
            }
            let model = match map.get("model") {
                Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
                _ => return Err(invalid("?", "has no string `model`".to_string())),
            };
            match map.get(THROUGHPUT_KEY) {
                None | Some(Value::Null) => {
                    skipped.push(SkippedRecord {
                        index,
                        model,
                        reason: format!("no `{THROUGHPUT_KEY}`"),
                    });
                }
                Some(raw) => {
                    let record = parse_record(map, raw, model.clone())
                        .map_err(|reason| invalid(&model, reason))?;
                    records.push(record);
                }
            }
        }
        if records.is_empty() {
            return Err(PricingError::NoThroughput {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            records,
            skipped,
        })
    }
}

fn parse_record(
    map: &Map<String, Value>,
    raw_throughput: &Value,
    model: String,
) -> std::result::Result<BenchmarkRecord, String> {
    let throughput = positive(THROUGHPUT_KEY, raw_throughput)?;
    let optional_positive = |key: &str| -> std::result::Result<Option<f64>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => positive(key, v).map(Some),
        }
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
    let gpu_value = map
        .get("gpu")
        .or_else(|| map.get("manifest").and_then(|m| m.get("gpu")));
    let gpu = gpu_name(gpu_value);
    let gpu_arch = gpu_arch_key(gpu_value, gpu.as_deref());
    let into = |what: &str, v: f64| format!("`{what}` {v} rejected");
    Ok(BenchmarkRecord {
        model,
        throughput: TokensPerSecond::new(throughput)
            .map_err(|_| into(THROUGHPUT_KEY, throughput))?,
        output_throughput: optional_positive("output_throughput")?,
        total_tokens: optional_positive("total_tokens")?,
        inference_time_s: optional_positive("inference_time_s")?,
        avg_power: optional_positive("avg_power_w")?
            .map(Watts::new)
            .transpose()
            .map_err(|e| e.to_string())?,
        energy: optional_positive("energy_j")?
            .map(Joules::new)
            .transpose()
            .map_err(|e| e.to_string())?,
        gpu,
        gpu_arch,
        device: text("device"),
    })
}

/// A JSON number that is finite and > 0, or a message naming `key`.
fn positive(key: &str, value: &Value) -> std::result::Result<f64, String> {
    match value.as_f64() {
        Some(v) if v.is_finite() && v > 0.0 => Ok(v),
        Some(v) => Err(format!("`{key}` must be > 0, got {v}")),
        None => Err(format!("`{key}` is not a number: {value}")),
    }
}

fn gpu_name(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// The architecture key: an explicit `arch`/`key` of a `gpu` object if gpu-probe knows it,
/// else gpu-probe's match of the GPU name.
fn gpu_arch_key(value: Option<&Value>, name: Option<&str>) -> Option<String> {
    let explicit = value
        .and_then(|v| v.get("arch").or_else(|| v.get("key")))
        .and_then(Value::as_str);
    explicit
        .into_iter()
        .chain(name)
        .find_map(gpu_probe::find_arch)
        .map(|arch| arch.key.to_string())
}

fn strip_position(rendered: &str) -> String {
    rendered
        .rfind(" at line ")
        .map_or(rendered, |cut| &rendered[..cut])
        .to_string()
}

#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;
