//! `llm_engine`: an LLM inference engine on candle: GPT-2, OPT and Llama models, a paged KV
//! cache and continuous batching (vLLM's design).
//!
//! This crate is being built; see the workspace README for its place in gpubench.
#![deny(missing_docs)]

pub mod attention;
pub mod block_pool;
pub mod config;
pub mod engine;
pub mod error;
pub mod kv_cache_storage;
pub mod models;
pub mod prefix_cache;
pub mod presets;
pub mod request;
pub mod sampling;
pub mod scheduler;
pub mod stats;
pub mod tokenizer;
pub mod weights;

pub use config::{Architecture, ModelConfig};
pub use engine::{CompletedRequest, Engine, EngineConfig, KvCacheInfo, RequestOutput};
pub use error::{EngineError, Result};
pub use kv_cache_storage::PagedKvStorage;
pub use models::{
    load_model, resolve_model, CausalLm, LoadFormat, LoadedModel, ModelSource, SeqSlice,
};
pub use request::{FinishReason, Prompt, RequestId};
pub use sampling::SamplingParams;
