//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Result alias used throughout `metrics`.
pub type Result<T> = std::result::Result<T, MetricsError>;

/// Everything that can go wrong in `metrics`.
///
/// A machine without a GPU is *not* an error here: the sampler and the manifest
/// record the reason as data instead.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A statistic was asked of an empty set of samples.
    #[error("no samples: cannot summarise an empty set")]
    EmptySamples,

    /// A sample was NaN or infinite.
    #[error("sample {index} is not a finite number ({value})")]
    NonFiniteSample {
        /// Position of the offending sample in the input slice.
        index: usize,
        /// The offending value.
        value: f64,
    },

    /// A percentile outside `0..=100` (or NaN) was requested.
    #[error("percentile {0} is outside 0..=100")]
    InvalidPercentile(f64),

    /// A request timeline is inconsistent (times out of order, before arrival, ...).
    #[error("request {index}: {reason}")]
    InvalidTimeline {
        /// Position of the request in the input slice.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// The benchmark duration is not a positive, finite number of seconds.
    #[error("benchmark duration must be a positive, finite number of seconds, got {0}")]
    InvalidDuration(f64),

    /// A service-level objective string could not be parsed.
    #[error("invalid SLO {input:?}: {reason} (expected e.g. \"ttft:200,tpot:50,e2el:2000\", values in ms)")]
    InvalidSlo {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A flat (vLLM-style) result map could not be turned back into metrics.
    #[error("invalid serving-metrics record: {0}")]
    InvalidRecord(String),

    /// The directory an output file should go to does not exist.
    #[error("output directory {} does not exist", path.display())]
    DirectoryNotFound {
        /// The missing directory.
        path: PathBuf,
    },

    /// The output path's parent exists but is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path that should have been a directory.
        path: PathBuf,
    },

    /// The output directory exists but a file cannot be created in it.
    #[error("cannot write to directory {}: {source}", path.display())]
    DirectoryNotWritable {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error (usually permission denied).
        source: io::Error,
    },

    /// Writing or renaming the output file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// A value could not be serialised as JSON.
    #[error("cannot serialise JSON for {}: {source}", path.display())]
    Json {
        /// The file being written.
        path: PathBuf,
        /// The serde_json error.
        source: serde_json::Error,
    },

    /// Rows could not be serialised as CSV (e.g. nested structs or maps).
    #[error("cannot serialise CSV for {}: {source}", path.display())]
    Csv {
        /// The file being written.
        path: PathBuf,
        /// The csv error.
        source: csv::Error,
    },
}
