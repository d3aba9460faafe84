//! `metrics`: Latency statistics, serving metrics (TTFT, TPOT, ITL), a GPU power/clock sampler, run manifests and atomic result writers.
//!
//! This crate is being built; see the workspace README for its place in gpubench.
#![deny(missing_docs)]
