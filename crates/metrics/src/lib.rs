//! wip
#![deny(missing_docs)]

pub mod error;
pub mod serving;
pub mod stats;
pub mod writers;

pub use error::{MetricsError, Result};
pub use stats::{percentile, Percentile, Summary, DEFAULT_PERCENTILES};
