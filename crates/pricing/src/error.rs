//! The one error type of the `pricing` crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading prices, reading benchmark results or doing
/// the cost math. Each variant renders as one line that names the file, row or record at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    /// A file could not be read (missing, unreadable, a directory, ...).
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file that was asked for.
        path: PathBuf,
        /// The underlying I/O error (part of the message, so not repeated as a `source`).
        error: std::io::Error,
    },

    /// A price file (or the built-in catalog) is empty or has no `[[instance]]` rows.
    #[error("{origin}: price file is empty (expected at least one [[instance]] row)")]
    EmptyPriceFile {
        /// Where the prices came from (a path, or "built-in catalog").
        origin: String,
    },

    /// A price file is not valid TOML/JSON for the schema: syntax error, unknown field,
    /// wrong field type, missing field. `line`/`column` are 1-based, from the parser.
    #[error("{origin}:{line}:{column}: {message}")]
    PriceFileSyntax {
        /// Where the prices came from.
        origin: String,
        /// 1-based line of the error (0 if the parser gave none).
        line: usize,
        /// 1-based column of the error (0 if the parser gave none).
        column: usize,
        /// The parser's message (e.g. "unknown field `foo`").
        message: String,
    },

    /// The built-in catalog (`data/instances.toml`, compiled in) failed to load. Its unit
    /// test should make this impossible in a released build.
    #[error("built-in price catalog is invalid: {message}")]
    BuiltinCatalog {
        /// The load error, rendered.
        message: String,
    },

    /// More than one provider sells an instance type of this name.
    #[error("instance `{name}` is ambiguous; name one of: {}", candidates.join(", "))]
    AmbiguousInstance {
        /// The name that was asked for.
        name: String,
        /// The qualified `provider/instance_type` names that match.
        candidates: Vec<String>,
    },

    /// A price row parsed but its values make no sense (zero or negative price, no GPUs, ...).
    #[error("{origin}: row {row}: {reason}")]
    InvalidOffer {
        /// Where the prices came from.
        origin: String,
        /// The row, as `provider/instance_type` (or its 1-based index if those are empty).
        row: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No catalog row matches the instance name that was asked for.
    #[error("unknown instance `{name}`{}", suggestion_suffix(suggestions))]
    UnknownInstance {
        /// The name that was asked for.
        name: String,
        /// The closest names in the catalog, best first (may be empty).
        suggestions: Vec<String>,
    },

    /// A results file has nothing in it.
    #[error("{}: results file is empty", path.display())]
    EmptyResults {
        /// The results file.
        path: PathBuf,
    },

    /// A results file is not valid JSON.
    #[error("{}:{line}:{column}: malformed JSON: {message}", path.display())]
    MalformedResults {
        /// The results file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },

    /// A results file is valid JSON but holds no record with `throughput_tokens_per_sec`.
    #[error("{}: no record has a `throughput_tokens_per_sec` value", path.display())]
    NoThroughput {
        /// The results file.
        path: PathBuf,
    },

    /// One record of a results file is unusable (non-numeric or non-positive throughput,
    /// missing model name, not an object, ...).
    #[error("{}: record {index} ({model}): {reason}", path.display())]
    InvalidRecord {
        /// The results file.
        path: PathBuf,
        /// 0-based index of the record in the file.
        index: usize,
        /// The record's `model` (or `?` if it has none).
        model: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A cost-math argument is out of range (e.g. zero throughput, more GPUs used than the
    /// instance has).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which quantity was wrong.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// Writing CSV output failed.
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),

    /// Writing JSON output failed.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn suggestion_suffix(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        " (run with --list-instances to see the catalog)".to_string()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

/// `Result` with [`PricingError`].
pub type Result<T> = std::result::Result<T, PricingError>;
