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
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
