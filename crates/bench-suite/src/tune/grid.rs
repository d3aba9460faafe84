//! The configuration grid of `config-tune`: comma lists per engine setting, validated, and
//! their cross product as [`TunePoint`]s.

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::sweep::SweepPoint;

/// Largest `--max-num-batched-tokens` accepted.
pub const MAX_BATCHED_TOKENS: usize = 1 << 20;
/// Largest `--max-num-seqs` accepted.
pub const MAX_NUM_SEQS: usize = 65_536;
/// Largest `--block-size` accepted.
pub const MAX_BLOCK_SIZE: usize = 1024;

/// One configuration of the engine to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunePoint {
    /// Fraction of GPU memory for weights, activations and KV cache.
    pub gpu_memory_utilization: f64,
    /// Most tokens in one forward pass.
    pub max_num_batched_tokens: usize,
    /// Most requests running at once.
    pub max_num_seqs: usize,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
    /// Tokens per KV block.
    pub block_size: usize,
}

impl SweepPoint for TunePoint {
    fn key(&self) -> String {
        format!(
            "gmu{}-mnbt{}-mns{}-{}-bs{}",
            self.gpu_memory_utilization,
            self.max_num_batched_tokens,
            self.max_num_seqs,
            self.dtype,
            self.block_size
        )
    }
}

/// The values to try for each setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneGrid {
    /// `--gpu-memory-utilization` values, each in (0, 1].
    pub gpu_memory_utilization: Vec<f64>,
    /// `--max-num-batched-tokens` values, each in 1..=[`MAX_BATCHED_TOKENS`].
    pub max_num_batched_tokens: Vec<usize>,
    /// `--max-num-seqs` values, each in 1..=[`MAX_NUM_SEQS`].
    pub max_num_seqs: Vec<usize>,
    /// `--dtype` values: `f32`, `f16`, `bf16` (normalised spellings).
    pub dtype: Vec<String>,
    /// `--block-size` values, each in 1..=[`MAX_BLOCK_SIZE`].
    pub block_size: Vec<usize>,
}

/// Splits a comma list, trimming blanks.
fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim)
}

fn bad(flag: &str, msg: String) -> BenchError {
    BenchError::InvalidArgument(format!("{flag}: {msg}"))
}

fn check_list<T: PartialEq + std::fmt::Display>(flag: &str, values: &[T]) -> Result<()> {
    if values.is_empty() {
        return Err(bad(flag, "needs at least one value".into()));
    }
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(bad(flag, format!("{v} is listed twice")));
        }
    }
    Ok(())
}

/// Parses a comma list of integers in `range` for `flag` (e.g. `--max-num-seqs 64,128`).
///
/// # Errors
/// [`BenchError::InvalidArgument`] naming the flag and the value: not a number, out of
/// range, empty list or a value listed twice.
pub fn parse_usize_list(
    flag: &str,
    text: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<Vec<usize>> {
    let values = items(text)
        .map(|s| {
            let v: usize = s
                .parse()
                .map_err(|_| bad(flag, format!("`{s}` is not a whole number")))?;
            if !range.contains(&v) {
                return Err(bad(
                    flag,
                    format!("{v} is out of range ({}..={})", range.start(), range.end()),
                ));
            }
            Ok(v)
        })
        .collect::<Result<Vec<_>>>()?;
    check_list(flag, &values)?;
    Ok(values)
}

/// Parses `--gpu-memory-utilization` values, each in (0, 1].
///
/// # Errors
/// [`BenchError::InvalidArgument`] naming the flag and the value.
pub fn parse_utilization_list(flag: &str, text: &str) -> Result<Vec<f64>> {
    let values = items(text)
        .map(|s| {
            let v: f64 = s
                .parse()
                .map_err(|_| bad(flag, format!("`{s}` is not a number")))?;
            if !(v > 0.0 && v <= 1.0) {
                return Err(bad(flag, format!("{s} is out of range (0, 1]")));
            }
            Ok(v)
        })
        .collect::<Result<Vec<_>>>()?;
    check_list(flag, &values)?;
    Ok(values)
}

/// Parses `--dtype` values into `f32`, `f16`, `bf16` (accepting `float16`, `half`,
/// `bfloat16`...).
///
/// # Errors
/// [`BenchError::InvalidArgument`] naming the flag and the value (e.g. `int8`, which the
/// engine does not run).
pub fn parse_dtype_list(flag: &str, text: &str) -> Result<Vec<String>> {
    let values = items(text)
        .map(|s| {
            let dt = llm_engine::engine::parse_dtype(s).map_err(|_| {
                bad(
                    flag,
                    format!("`{s}` is not a dtype the engine runs (f32, f16, bf16)"),
                )
            })?;
            Ok(format!("{dt:?}").to_ascii_lowercase())
        })
        .collect::<Result<Vec<_>>>()?;
    check_list(flag, &values)?;
    Ok(values)
}

impl TuneGrid {
    /// Parses the five comma lists (flag names in errors are `config-tune`'s).
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] naming the flag and the value at fault.
    pub fn parse(
        gpu_memory_utilization: &str,
        max_num_batched_tokens: &str,
        max_num_seqs: &str,
        dtype: &str,
        block_size: &str,
    ) -> Result<TuneGrid> {
        Ok(TuneGrid {
            gpu_memory_utilization: parse_utilization_list(
                "--gpu-memory-utilization",
                gpu_memory_utilization,
            )?,
            max_num_batched_tokens: parse_usize_list(
                "--max-num-batched-tokens",
                max_num_batched_tokens,
                1..=MAX_BATCHED_TOKENS,
            )?,
            max_num_seqs: parse_usize_list("--max-num-seqs", max_num_seqs, 1..=MAX_NUM_SEQS)?,
            dtype: parse_dtype_list("--dtype", dtype)?,
            block_size: parse_usize_list("--block-size", block_size, 1..=MAX_BLOCK_SIZE)?,
        })
    }

    /// Every combination, in a stable order (dtype outermost, then block size, utilization,
    /// batched tokens, sequences).
    pub fn points(&self) -> Vec<TunePoint> {
        let mut out = Vec::new();
        for dtype in &self.dtype {
            for &block_size in &self.block_size {
                for &gmu in &self.gpu_memory_utilization {
                    for &mnbt in &self.max_num_batched_tokens {
                        for &mns in &self.max_num_seqs {
                            out.push(TunePoint {
                                gpu_memory_utilization: gmu,
                                max_num_batched_tokens: mnbt,
                                max_num_seqs: mns,
                                dtype: dtype.clone(),
                                block_size,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}
