//! gpubench's benchmark suite: what the `llm-bench`, `batch-sweep`, `config-tune`,
//! `compare-models`, `bench-all` and `compare` binaries run, as a library.
//!
//! | concept | where |
//! |---|---|
//! | workloads: synthetic lengths, JSONL datasets, the seed's prompts | [`dataset`] |
//! | request arrivals: Poisson / gamma with burstiness | [`arrival`] |
//! | run modes: offline throughput, latency, serving | [`modes`] |
//! | sweeps with per-point files and resume | [`sweep`] |
//! | result folders, summaries, plots, merging machines | [`results`], [`plots`] |
//! | prefill and decode held against the measured GEMM and bandwidth roofline | [`roofline`] |
//!
//! Every module works on the CPU with the built-in `tiny-llama` model; the same code runs on
//! a GPU when `llm-engine` is built with its `cuda` feature.
#![deny(missing_docs)]

pub mod arrival;
pub mod dataset;
pub mod energy;
pub mod error;
pub mod model_compare;
pub mod modes;
pub mod plots;
pub mod results;
pub mod roofline;
pub mod sweep;
pub mod tune;

pub use error::{BenchError, Result};
