//! `llm_engine`: An LLM inference engine on candle: GPT-2, OPT and Llama models, a paged KV cache and continuous batching.
//!
//! This crate is being built; see the workspace README for its place in gpubench.
#![deny(missing_docs)]
