//! The engine's error type.

/// Everything that can go wrong in `llm-engine`.
///
/// Each variant's message is one line a user can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A tensor operation failed inside candle.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration or a request is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
