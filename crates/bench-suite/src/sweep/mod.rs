//! Sweeps: a list of points (a batch size, a configuration, a model), each run once, each
//! finished point written to disk at once so an interrupted sweep keeps its work.
//!
//! | concept | what it is |
//! |---|---|
//! | [`SweepPoint`] | a small serializable configuration with a stable key (its file name) |
//! | [`SweepStore`] | a folder: `sweep.json` (what is swept, format version, the fixed settings) and `points/<key>.json`, one per finished point, each written atomically |
//! | [`StoreMode`] | a new folder, `--force` (start over) or `--resume` (keep the finished points) |
//! | [`PointRecord`], [`PointStatus`] | one point's outcome: `ok` with its result, `out_of_memory` or `error` with the message |
//! | [`run_sweep`] | runs the points not yet finished, records each, goes on after a failed point |
//! | [`EngineSlot`] | one loaded engine shared by the points, reloaded after a run that failed half-way |
//! | [`batch`] | the batch-size sweep (`batch-sweep`, the seed's Exercise 5) |
//!
//! A point that runs out of memory (the engine's KV-cache errors, a CUDA out-of-memory, a
//! batch that cannot fit) is recorded as `{"status": "out_of_memory", "error": ...}` and the
//! sweep goes on, as the seed's batch script intended; any other failure of a point is
//! recorded as `"status": "error"`. On `--resume`, `ok` and `out_of_memory` points are kept
//! and `error` points run again (an error may have been transient).
//!
//! ```
//! use bench_suite::sweep::{run_sweep, SweepHeader, SweepPoint, SweepStore, StoreMode};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Size(usize);
//! impl SweepPoint for Size {
//!     fn key(&self) -> String { format!("size-{}", self.0) }
//! }
//!
//! # fn main() -> bench_suite::Result<()> {
//! let dir = tempfile::tempdir().map_err(|e| bench_suite::BenchError::Io { path: "tmp".into(), error: e })?;
//! let points = [Size(1), Size(2)];
//! let header = SweepHeader::new("example", &["size"], &points, serde_json::Map::new());
//! let store = SweepStore::open(dir.path(), header, StoreMode::New)?;
//! let records = run_sweep(Some(&store), &points, |p| Ok(p.0 * 10), |_, _| {})?;
//! assert_eq!(records[1].result, Some(20));
//! assert!(dir.path().join("points/size-2.json").is_file());
//! # Ok(())
//! # }
//! ```

pub mod batch;
mod engine_slot;
mod record;
mod runner;
mod store;
#[cfg(test)]
mod tests;

pub use engine_slot::EngineSlot;
pub use record::{is_out_of_memory, PointRecord, PointStatus};
pub use runner::run_sweep;
pub use store::{
    point_file_stem, StoreMode, SweepHeader, SweepPoint, SweepStore, SWEEP_FORMAT_VERSION,
};
