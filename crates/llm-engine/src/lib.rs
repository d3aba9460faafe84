//! `llm_engine`: an LLM inference engine on candle — GPT-2, OPT and the Llama family
//! (Llama-2, Llama-3 with GQA and llama3 rope scaling; Mistral/Qwen2 configs), a paged KV
//! cache and continuous batching, after vLLM's design — so every gpubench figure comes
//! from code we can explain.
//!
//! Weights come from a Hugging Face folder (`config.json`, single or sharded
//! `*.safetensors`, `tokenizer.json`), from the local HF cache by model id (offline), or
//! are random "dummy" weights of a built-in preset (`tiny-llama`, the CPU default; `gpt2`,
//! `opt-1.3b`, `llama-2-7b`, `llama-3-8b`). f32, f16 and bf16; CPU always, CUDA behind the
//! `cuda` feature. The tensor-free parts (block pool, prefix cache, scheduler) are plain
//! Rust, tested with property tests; the models are checked against transformers' logits
//! (golden fixtures in `tests/fixtures/`, made by `make_fixtures.py`).
//!
//! | Concept | What it is |
//! |---|---|
//! | [`Engine`], [`EngineConfig`] | `add_request` / `step` / `abort` / `generate`, KV sizing, stats |
//! | [`SamplingParams`], [`sampling`] | greedy, temperature, top-k/p, min-p, seeds, stop ids/strings, `ignore_eos` |
//! | [`scheduler`] | continuous batching: FCFS, `max_num_seqs` / `max_num_batched_tokens`, chunked prefill, preemption by recompute |
//! | [`block_pool::KvBlockPool`], [`prefix_cache`] | O(1) block allocate/free with ref counts; full-block prefix caching with copy-on-write |
//! | [`PagedKvStorage`], [`KvCacheDtype`] | the per-layer K/V tensors the blocks index into, in the model dtype or fp8 E4M3 |
//! | [`CausalLm`], [`SeqSlice`], [`load_model`] | a model's forward over a mixed batch of prefill chunks and decodes |
//! | [`ModelConfig`], [`presets`] | HF configs and the built-in presets |
//!
//! ```
//! use llm_engine::{Engine, EngineConfig, LoadFormat, Prompt, SamplingParams};
//!
//! # fn main() -> llm_engine::Result<()> {
//! let mut engine = Engine::new(EngineConfig {
//!     model: "tiny-llama".into(),          // built-in preset, random weights, CPU
//!     load_format: LoadFormat::Dummy,
//!     max_model_len: Some(64),
//!     kv_cache_bytes: Some(8 << 20),
//!     ..EngineConfig::default()
//! })?;
//! let params = SamplingParams { ignore_eos: true, ..SamplingParams::greedy(3) };
//! let done = engine.generate(&[Prompt::Tokens(vec![1, 2, 3])], &params)?;
//! assert_eq!(done[0].output_token_ids.len(), 3);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod attention;
pub mod block_pool;
pub mod config;
mod cpu_simd;
#[cfg(feature = "cuda")]
pub mod cuda;
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
pub use engine::{
    CompletedRequest, Engine, EngineConfig, KvCacheDtype, KvCacheInfo, RequestOutput,
};
pub use error::{EngineError, Result};
pub use kv_cache_storage::PagedKvStorage;
pub use models::{
    load_model, resolve_model, CausalLm, LoadFormat, LoadedModel, ModelSource, SeqSlice,
};
pub use request::{FinishReason, Prompt, RequestId};
pub use sampling::{RequestOutputKind, SamplingParams};
