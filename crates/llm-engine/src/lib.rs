//! `llm_engine`: an LLM inference engine on candle: GPT-2, OPT and Llama models, a paged KV
//! cache and continuous batching (vLLM's design).
//!
//! This crate is being built; see the workspace README for its place in gpubench.
#![deny(missing_docs)]

pub mod error;

pub use error::{EngineError, Result};
