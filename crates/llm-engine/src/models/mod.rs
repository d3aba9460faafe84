//! The models (GPT-2, OPT, Llama) and the interface the engine drives them through.
//!
//! Every model implements [`CausalLm`]: one forward pass over a mixed batch of
//! [`SeqSlice`]s (prefill chunks and decode steps of different sequences), writing their K/V
//! into the paged cache ([`PagedKvStorage`]) and returning logits for the last token of each
//! slice that asks for them. The dense work (embeddings, projections, MLPs, LM head) runs once
//! over all tokens of all slices concatenated, so a batch reads each weight once; only
//! attention is per sequence, through the one shared path in [`crate::attention`].
//!
//! | type | what it is |
//! |---|---|
//! | [`ModelSource`] | a preset (dummy weights), a local Hugging Face folder, or a cached hub id |
//! | [`LoadFormat`] | `auto`, `safetensors` or `dummy` (vLLM's `--load-format`) |
//! | [`load_model`] → [`LoadedModel`] | the model, its config, tokenizer and load time |
//! | [`SeqSlice`] | one sequence's new tokens, where they start, and its KV block table |
//! | [`CausalLm::forward`] | a mixed batch of slices → f32 logits of each slice's last token |
//!
//! ```
//! use candle_core::{DType, Device};
//! use llm_engine::models::{load_model, LoadFormat, ModelSource, SeqSlice};
//! use llm_engine::PagedKvStorage;
//!
//! # fn main() -> llm_engine::Result<()> {
//! let dev = Device::Cpu;
//! let m = load_model(&ModelSource::Preset("tiny-llama".into()), LoadFormat::Dummy, DType::F32, &dev, 0)?;
//! // 8 blocks of 16 tokens; this sequence owns blocks 5 and 2, in that order.
//! let mut kv = PagedKvStorage::new(&m.config, 8, 16, DType::F32, &dev)?;
//! let table = vec![5, 2];
//! let prompt: Vec<u32> = (1..=20).collect();
//! let prefill = SeqSlice { token_ids: prompt, start_pos: 0, block_table: table.clone(), want_logits: true };
//! let logits = m.model.forward(&[prefill], &mut kv)?;
//! assert_eq!(logits.dims(), [1, m.config.vocab_size]);
//! let next = logits.argmax(1)?.to_vec1::<u32>()?[0];
//! // One decode step: position 20, the prompt's K/V come from the cache.
//! let decode = SeqSlice { token_ids: vec![next], start_pos: 20, block_table: table, want_logits: true };
//! let logits = m.model.forward(&[decode], &mut kv)?;
//! assert_eq!(logits.dims(), [1, m.config.vocab_size]);
//! # Ok(())
//! # }
//! ```

mod batch;
mod gpt2;
mod layers;
mod llama;
mod load;
mod opt;
mod packed_linear;
mod rope;

use candle_core::{DType, Device, Tensor};

pub use crate::config::{Architecture, ModelConfig};
pub use crate::kv_cache_storage::PagedKvStorage;
pub use batch::{BatchLayout, FixedLayout};
pub use gpt2::Gpt2;
pub use llama::Llama;
pub use load::{build_model, load_model, resolve_model, LoadFormat, LoadedModel, ModelSource};
pub use opt::Opt;

use crate::error::Result;

/// One sequence's slice of work in a forward pass: `token_ids` are new tokens at positions
/// `start_pos .. start_pos + token_ids.len()`; positions `0 .. start_pos` are already in the
/// KV cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqSlice {
    /// The new tokens (a prefill chunk, or one token for a decode step).
    pub token_ids: Vec<u32>,
    /// Position of the first new token; the cache holds positions `0..start_pos`.
    pub start_pos: usize,
    /// The sequence's KV blocks, in order: position `p` lives in block `block_table[p / block_size]`.
    /// It must cover positions `0 .. start_pos + token_ids.len()`.
    pub block_table: Vec<u32>,
    /// Whether to return logits for the slice's last token (false for a non-final prefill chunk).
    pub want_logits: bool,
}

/// A causal LM over the paged KV cache (GPT-2, OPT, Llama all implement it).
pub trait CausalLm: Send {
    /// Runs the new tokens of every slice (a mixed batch of prefill chunks and decodes), writes
    /// their K/V into the cache blocks named by each block table, and returns f32 logits
    /// `[n, vocab]` for the LAST token of each slice with `want_logits`, in slice order.
    ///
    /// # Errors
    /// [`crate::EngineError::InvalidBatch`] for an empty slice, a token id outside the
    /// vocabulary, a position past `max_position_embeddings`, or a block table that does not
    /// cover the slice; candle errors from the tensor work.
    fn forward(&self, batch: &[SeqSlice], kv: &mut PagedKvStorage) -> Result<Tensor>;

    /// Like [`CausalLm::forward`], but returns f32 logits `[total_new_tokens, vocab]` for EVERY
    /// new token of every slice, in order (for tests and scoring; `want_logits` is ignored).
    ///
    /// # Errors
    /// As [`CausalLm::forward`].
    fn forward_all_logits(&self, batch: &[SeqSlice], kv: &mut PagedKvStorage) -> Result<Tensor>;

    /// [`CausalLm::forward`] over a batch whose layout the caller built (and uploaded) itself,
    /// e.g. into persistent buffers with [`BatchLayout::new_fixed`] for a CUDA graph; the
    /// logits rows are the layout's output rows.
    ///
    /// # Errors
    /// As [`CausalLm::forward`].
    fn forward_layout(&self, layout: &BatchLayout<'_>, kv: &mut PagedKvStorage) -> Result<Tensor>;

    /// The model's configuration.
    fn config(&self) -> &ModelConfig;

    /// The device the weights live on.
    fn device(&self) -> &Device;

    /// The dtype of the weights and of the computation.
    fn dtype(&self) -> DType;
}
