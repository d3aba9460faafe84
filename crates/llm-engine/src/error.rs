//! The engine's error type.

/// Everything that can go wrong in `llm-engine`.
///
/// Each variant's message is one line a user can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A tensor operation failed inside candle.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration or a request is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A model name is neither a folder, a built-in preset, nor (for dummy weights) known.
    #[error("unknown preset `{name}`; built-in presets: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The presets we have, comma-separated.
        known: String,
    },
    /// A model folder has no `config.json`.
    #[error("{0}: no config.json in this folder (expected a Hugging Face model folder)")]
    MissingModelConfig(std::path::PathBuf),
    /// A `config.json` could not be parsed or lacks a required field.
    #[error("{path}: malformed model config: {reason}")]
    MalformedModelConfig {
        /// The config file (or a description of where the config came from).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The config names a `model_type` we do not implement.
    #[error("unsupported model_type `{model_type}`; supported: {supported}")]
    UnsupportedModelType {
        /// The `model_type` found.
        model_type: String,
        /// The supported ones, comma-separated.
        supported: String,
    },
    /// A weight the model needs is not in the checkpoint.
    #[error("missing tensor `{name}` in {source_desc}")]
    MissingTensor {
        /// The tensor name (as in the checkpoint).
        name: String,
        /// Where we looked (files).
        source_desc: String,
    },
    /// A weight in the checkpoint has the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShapeMismatch {
        /// The tensor name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A model id is not in the local Hugging Face cache (we never download at run time).
    #[error("model `{model_id}` is not in the Hugging Face cache ({cache_dir}); downloads are not done at run time: fetch it first (e.g. `huggingface-cli download {model_id}`) or pass a local folder")]
    NotInHfCache {
        /// The model id.
        model_id: String,
        /// The cache folder searched.
        cache_dir: String,
    },
    /// `tokenizer.json` could not be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A forward batch is inconsistent with the model or the KV storage (a bug in the caller).
    #[error("invalid forward batch: {0}")]
    InvalidBatch(String),
    /// Sampling parameters out of range.
    #[error("invalid sampling parameters: {0}")]
    InvalidSamplingParams(String),
    /// The KV block pool has fewer free blocks than an allocation needs.
    #[error("KV cache out of blocks: need {needed}, {free} free")]
    OutOfKvBlocks {
        /// Blocks asked for.
        needed: usize,
        /// Blocks free.
        free: usize,
    },
    /// A KV block was freed more times than it was allocated or shared (a bug in the caller).
    #[error("KV block {block} freed twice (its reference count is already 0)")]
    KvBlockDoubleFree {
        /// The block.
        block: u32,
    },
    /// A KV block id outside the pool (a bug in the caller).
    #[error("KV block {block} does not exist (the pool has {num_blocks} blocks)")]
    UnknownKvBlock {
        /// The block.
        block: u32,
        /// Blocks in the pool.
        num_blocks: usize,
    },
    /// The KV cache cannot hold even one sequence of `max_model_len` tokens.
    #[error("KV cache needs {needed} blocks for one sequence of max_model_len ({max_model_len}) tokens, have {have}; lower --max-model-len or raise the budget")]
    KvCacheTooSmall {
        /// Blocks one `max_model_len` sequence needs.
        needed: usize,
        /// Blocks the budget gives.
        have: usize,
        /// The engine's `max_model_len`.
        max_model_len: usize,
    },
    /// A prompt does not fit in `max_model_len`.
    #[error("prompt of {len} tokens is longer than max_model_len ({max_model_len})")]
    PromptTooLong {
        /// Prompt tokens.
        len: usize,
        /// The engine's `max_model_len`.
        max_model_len: usize,
    },
    /// A prompt has no tokens.
    #[error("prompt is empty (it needs at least one token)")]
    EmptyPrompt,
    /// A prompt token id is outside the model's vocabulary.
    #[error("prompt token id {token} is outside the vocabulary (size {vocab_size})")]
    TokenOutOfVocab {
        /// The token id.
        token: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A text prompt or stop strings need a tokenizer and the model has none.
    #[error("model `{model}` has no tokenizer (dummy weights or no tokenizer.json): pass token ids instead of text, or a model folder with tokenizer.json")]
    NoTokenizer {
        /// The model's name.
        model: String,
    },
    /// The device string asks for CUDA but the crate was built without it.
    #[error("device `{device}` needs CUDA support: rebuild with --features cuda")]
    CudaNotCompiled {
        /// The device asked for.
        device: String,
    },
    /// A device string that is neither `cpu` nor `cuda[:N]`.
    #[error("unknown device `{0}`; use cpu, cuda or cuda:N")]
    UnknownDevice(String),
    /// A request id the engine does not know (never added, or already finished).
    #[error("unknown request {0}")]
    UnknownRequest(u64),
    /// A device memory query failed (CUDA driver).
    #[error("device memory query failed: {0}")]
    DeviceQuery(String),
    /// One of this crate's CUDA kernels could not be loaded or launched, or was given tensors
    /// it cannot use.
    #[error("CUDA kernel `{kernel}`: {reason}")]
    CudaKernel {
        /// The kernel's name.
        kernel: String,
        /// What went wrong.
        reason: String,
    },
    /// The scheduler could not make progress although requests are unfinished (a bug).
    #[error("engine stalled: {waiting} waiting and {running} running requests but nothing could be scheduled")]
    Stalled {
        /// Waiting requests.
        waiting: usize,
        /// Running requests.
        running: usize,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
