//! The one error type of the `bench-suite` crate.

/// Everything that can go wrong while preparing, running or recording a benchmark. Each
/// variant renders as one line that names the input at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A benchmark option is out of range or inconsistent (names the option and the value).
    #[error("{0}")]
    InvalidArgument(String),

    /// The engine failed (load, a step, a bad request).
    #[error(transparent)]
    Engine(#[from] llm_engine::EngineError),

    /// A run does not fit in memory (a batch larger than the KV cache, a model larger than
    /// the device): says what was needed and what there is.
    #[error("out of memory: {0}")]
    OutOfMemory(String),

    /// Writing or reading a result file failed.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),

    /// A GEMM or bandwidth measurement failed.
    #[error(transparent)]
    Matmul(#[from] matmul_flops::MatmulError),

    /// Pricing failed (catalog, unknown instance).
    #[error(transparent)]
    Pricing(#[from] pricing::PricingError),

    /// A chart could not be drawn (names the chart).
    #[error("plot {chart}: {reason}")]
    Plot {
        /// The chart.
        chart: String,
        /// What went wrong.
        reason: String,
    },

    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file at fault.
        path: String,
        /// The underlying error.
        error: std::io::Error,
    },

    /// A prompt dataset is unreadable or malformed: names the file and, where it applies,
    /// the 1-based line (or JSON array element).
    #[error("{path}{}: {reason}", .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Dataset {
        /// The dataset file.
        path: String,
        /// The line at fault, when one is.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`BenchError`].
pub type Result<T> = std::result::Result<T, BenchError>;
