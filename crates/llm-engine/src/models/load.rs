//! Loading a model: from a built-in preset (dummy weights), a local Hugging Face folder, or
//! the local Hugging Face cache by model id; timed.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use tokenizers::Tokenizer;

use super::{CausalLm, Gpt2, Llama, Opt};
use crate::config::{Architecture, ModelConfig};
use crate::error::{EngineError, Result};
use crate::presets::{preset, preset_hf_id, preset_names};
use crate::tokenizer::load_tokenizer;
use crate::weights::{DummyWeights, HfCacheModel, SafetensorsWeights, Weights};

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A built-in preset ([`crate::presets::preset_names`]); weights are random unless the
    /// load format asks for safetensors (then the preset's Hugging Face id is looked up in the cache).
    Preset(String),
    /// A local Hugging Face folder (`config.json`, `*.safetensors`, optional `tokenizer.json`).
    Dir(PathBuf),
    /// A model id in the local Hugging Face cache (never downloaded at run time).
    HfCache {
        /// The model id, e.g. `facebook/opt-1.3b`.
        model_id: String,
        /// A branch or tag (`main` when `None`).
        revision: Option<String>,
    },
}

/// How to get the weights (vLLM's `--load-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadFormat {
    /// Dummy for presets, safetensors for folders and cached models.
    #[default]
    Auto,
    /// Read `*.safetensors` files.
    Safetensors,
    /// Random weights of the right shapes (seeded).
    Dummy,
}

impl FromStr for LoadFormat {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "safetensors" => Ok(Self::Safetensors),
            "dummy" => Ok(Self::Dummy),
            other => Err(EngineError::InvalidConfig(format!(
                "unknown load format `{other}` (use auto, safetensors or dummy)"
            ))),
        }
    }
}

/// A loaded model with what the engine needs around it.
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn CausalLm>,
    /// Its configuration.
    pub config: ModelConfig,
    /// Its tokenizer, when the model folder has a `tokenizer.json`.
    pub tokenizer: Option<Tokenizer>,
    /// Wall time of the whole load (config, weights, tokenizer).
    pub load_time: Duration,
    /// A display name (preset name, folder name or model id).
    pub name: String,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("has_tokenizer", &self.tokenizer.is_some())
            .field("load_time", &self.load_time)
            .finish()
    }
}

/// Maps a `--model` argument to a source: an existing folder → [`ModelSource::Dir`], a
/// preset name → [`ModelSource::Preset`], anything else → [`ModelSource::HfCache`].
pub fn resolve_model(name_or_path: &str) -> ModelSource {
    if Path::new(name_or_path).is_dir() {
        ModelSource::Dir(PathBuf::from(name_or_path))
    } else if preset(name_or_path).is_some() {
        ModelSource::Preset(name_or_path.to_string())
    } else {
        ModelSource::HfCache {
            model_id: name_or_path.to_string(),
            revision: None,
        }
    }
}

/// Loads a model onto `device` in `dtype`; `seed` seeds dummy weights.
///
/// # Errors
/// [`EngineError::UnknownPreset`], [`EngineError::MissingModelConfig`],
/// [`EngineError::MalformedModelConfig`], [`EngineError::UnsupportedModelType`],
/// [`EngineError::MissingTensor`], [`EngineError::TensorShapeMismatch`],
/// [`EngineError::NotInHfCache`], [`EngineError::Tokenizer`], [`EngineError::Io`] as the
/// case may be; candle errors (e.g. out of memory).
pub fn load_model(
    source: &ModelSource,
    format: LoadFormat,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> Result<LoadedModel> {
    let start = Instant::now();
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(EngineError::InvalidConfig(format!(
            "dtype {dtype:?} is not supported (use f32, f16 or bf16)"
        )));
    }
    let (name, config, dir) = match source {
        ModelSource::Preset(name) => {
            let config = preset(name).ok_or_else(|| unknown_preset(name))?;
            match format {
                LoadFormat::Auto | LoadFormat::Dummy => (name.clone(), config, None),
                LoadFormat::Safetensors => {
                    let id = preset_hf_id(name).ok_or_else(|| unknown_preset(name))?;
                    let cached = HfCacheModel::find(id, None)?;
                    let config = ModelConfig::from_file(&cached.snapshot_dir.join("config.json"))?;
                    (id.to_string(), config, Some(cached.snapshot_dir))
                }
            }
        }
        ModelSource::Dir(dir) => {
            if !dir.is_dir() {
                return Err(EngineError::Io {
                    path: dir.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "model folder not found",
                    ),
                });
            }
            let config = ModelConfig::from_file(&dir.join("config.json"))?;
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string());
            (name, config, Some(dir.clone()))
        }
        ModelSource::HfCache { model_id, revision } => {
            let cached = match HfCacheModel::find(model_id, revision.as_deref()) {
                Ok(c) => c,
                // A bare word that is neither a preset nor cached is most likely a mistyped preset.
                Err(EngineError::NotInHfCache { .. }) if !model_id.contains('/') => {
                    return Err(unknown_preset(model_id));
                }
                Err(e) => return Err(e),
            };
            let config = ModelConfig::from_file(&cached.snapshot_dir.join("config.json"))?;
            (model_id.clone(), config, Some(cached.snapshot_dir))
        }
    };
    let weights = match (&dir, format) {
        (Some(dir), LoadFormat::Auto | LoadFormat::Safetensors) => {
            let files = SafetensorsWeights::files_in_dir(dir)?;
            Weights::new(
                Box::new(SafetensorsWeights::open(files, device)?),
                dtype,
                device.clone(),
            )
        }
        _ => Weights::new(
            Box::new(DummyWeights::new(seed, dtype, device)),
            dtype,
            device.clone(),
        ),
    };
    tracing::info!(model = %name, source = %weights.describe(), ?dtype, "loading model");
    let model = build_model(&config, &weights)?;
    let tokenizer = match &dir {
        Some(dir) => load_tokenizer(dir)?,
        None => None,
    };
    let load_time = start.elapsed();
    tracing::info!(model = %name, params = config.num_parameters(), secs = load_time.as_secs_f64(), "model loaded");
    Ok(LoadedModel {
        model,
        config,
        tokenizer,
        load_time,
        name,
    })
}

/// Builds the model of `cfg`'s architecture from `weights`.
///
/// # Errors
/// As the models' constructors: missing or misshapen tensors, candle errors.
pub fn build_model(cfg: &ModelConfig, weights: &Weights) -> Result<Box<dyn CausalLm>> {
    Ok(match cfg.architecture {
        Architecture::Gpt2 => Box::new(Gpt2::new(cfg, weights)?),
        Architecture::Opt => Box::new(Opt::new(cfg, weights)?),
        Architecture::Llama => Box::new(Llama::new(cfg, weights)?),
    })
}

fn unknown_preset(name: &str) -> EngineError {
    EngineError::UnknownPreset {
        name: name.to_string(),
        known: preset_names().join(", "),
    }
}
