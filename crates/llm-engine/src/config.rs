//! Model configuration: one [`ModelConfig`] for every architecture, parsed from a Hugging Face
//! `config.json` (GPT-2, OPT, Llama, Mistral, Qwen2) or taken from a built-in preset.
//!
//! Hugging Face configs come in two rope spellings; both are accepted:
//! legacy (`rope_theta` + `rope_scaling: {type|rope_type, factor, ...}`) and transformers 5
//! (`rope_parameters: {rope_theta, rope_type, factor, ...}`).

use std::path::Path;

use candle_core::DType;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};

/// The `model_type` values of `config.json` that we implement.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["gpt2", "opt", "llama", "mistral", "qwen2"];

/// The model family: which forward pass and which weight names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// GPT-2: learned positions, pre-norm LayerNorm, Conv1D (transposed) weights, tied head.
    Gpt2,
    /// OPT: learned positions with an offset of 2, LayerNorm before or after, ReLU MLP.
    Opt,
    /// Llama (and Mistral, Qwen2): rotary positions, RMSNorm, SwiGLU MLP, grouped-query attention.
    Llama,
}

/// The MLP's activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// GELU, tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// GELU with the exact erf (`gelu`).
    GeluErf,
    /// ReLU.
    Relu,
    /// SiLU (Swish), used gated in Llama's SwiGLU.
    Silu,
}

impl Activation {
    fn from_hf(name: &str, origin: &str) -> Result<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "gelu" => Ok(Self::GeluErf),
            "relu" => Ok(Self::Relu),
            "silu" | "swish" => Ok(Self::Silu),
            other => Err(malformed(
                origin,
                format!("unsupported activation `{other}` (supported: gelu_new, gelu, relu, silu)"),
            )),
        }
    }
}

/// How rotary position frequencies are scaled for long contexts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "rope_type", rename_all = "lowercase")]
pub enum RopeScaling {
    /// Plain RoPE.
    Default,
    /// Positions divided by `factor` (all frequencies divided by `factor`).
    Linear {
        /// The scaling factor.
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        /// The scaling factor for low frequencies.
        factor: f64,
        /// Wavelengths longer than `original_max_position_embeddings / low_freq_factor` are scaled fully.
        low_freq_factor: f64,
        /// Wavelengths shorter than `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: usize,
    },
}

/// Everything the engine needs to know about a model's shape and math.
///
/// Fields that apply to one architecture only say so; they hold neutral values for the others.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    /// The model family.
    pub architecture: Architecture,
    /// The `model_type` string (`gpt2`, `opt`, `llama`, `mistral`, `qwen2`).
    pub model_type: String,
    /// Vocabulary size (rows of the embedding and of the LM head).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (`< num_heads` for grouped-query attention).
    pub num_kv_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Longest sequence the position encoding supports.
    pub max_position_embeddings: usize,
    /// The end-of-sequence token (the first one when the config lists several).
    pub eos_token_id: Option<u32>,
    /// Every end-of-sequence token the config lists (Llama-3 instruct lists several).
    pub eos_token_ids: Vec<u32>,
    /// The beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// Epsilon of the LayerNorm / RMSNorm.
    pub norm_eps: f64,
    /// The MLP's activation.
    pub activation: Activation,
    /// Whether the LM head shares the token embedding's weights.
    pub tie_word_embeddings: bool,
    /// Biases on the q, k, v projections.
    pub attention_qkv_bias: bool,
    /// Bias on the attention output projection.
    pub attention_out_bias: bool,
    /// Biases on the MLP's linear layers.
    pub mlp_bias: bool,
    /// Llama family: RoPE base frequency.
    pub rope_theta: f64,
    /// Llama family: RoPE frequency scaling.
    pub rope_scaling: RopeScaling,
    /// Mistral: each token attends to at most this many previous tokens (itself included).
    pub sliding_window: Option<usize>,
    /// OPT: LayerNorm before attention/MLP (true) or after the residual add (false, opt-350m).
    pub do_layer_norm_before: bool,
    /// OPT: embedding width; when it differs from `hidden_size` the model has project_in/out.
    pub word_embed_proj_dim: usize,
    /// OPT: whether the decoder has a final LayerNorm.
    pub has_final_layer_norm: bool,
}

impl ModelConfig {
    /// Parses a Hugging Face `config.json` file.
    ///
    /// # Errors
    /// [`EngineError::MissingModelConfig`] when the file does not exist,
    /// [`EngineError::MalformedModelConfig`] when it is not valid JSON or lacks a field,
    /// [`EngineError::UnsupportedModelType`] for a `model_type` we do not implement.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            let dir = path.parent().unwrap_or(path).to_path_buf();
            return Err(EngineError::MissingModelConfig(dir));
        }
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses the text of a Hugging Face `config.json`; `origin` names it in error messages.
    ///
    /// # Errors
    /// As [`ModelConfig::from_file`], except for the missing file.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| malformed(origin, format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| malformed(origin, "top level is not a JSON object".into()))?;
        let f = Fields { obj, origin };
        let model_type = f
            .str("model_type")?
            .ok_or_else(|| malformed(origin, "missing field `model_type`".into()))?;
        let cfg = match model_type {
            "gpt2" => parse_gpt2(&f)?,
            "opt" => parse_opt(&f)?,
            "llama" | "mistral" | "qwen2" => parse_llama(&f, model_type)?,
            other => {
                return Err(EngineError::UnsupportedModelType {
                    model_type: other.to_string(),
                    supported: SUPPORTED_MODEL_TYPES.join(", "),
                })
            }
        };
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Checks that the sizes are consistent (heads divide the width, kv heads divide heads, ...).
    ///
    /// # Errors
    /// [`EngineError::MalformedModelConfig`] naming the first inconsistency.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(malformed(origin, format!("`{name}` must be positive")));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(malformed(
                origin,
                format!(
                    "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                    self.num_heads, self.num_kv_heads
                ),
            ));
        }
        if self.architecture != Architecture::Llama
            && self.num_heads * self.head_dim != self.hidden_size
        {
            return Err(malformed(
                origin,
                format!(
                    "hidden size {} is not divisible by {} heads",
                    self.hidden_size, self.num_heads
                ),
            ));
        }
        if self.architecture == Architecture::Llama && !self.head_dim.is_multiple_of(2) {
            return Err(malformed(
                origin,
                format!("head_dim {} must be even for RoPE", self.head_dim),
            ));
        }
        Ok(())
    }

    /// Width of the query projection's output (`num_heads * head_dim`).
    pub fn q_size(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Width of the key (and value) projection's output (`num_kv_heads * head_dim`).
    pub fn kv_size(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Number of parameters, counting tied weights once.
    pub fn num_parameters(&self) -> u64 {
        let h = self.hidden_size as u64;
        let i = self.intermediate_size as u64;
        let v = self.vocab_size as u64;
        let q = self.q_size() as u64;
        let kv = self.kv_size() as u64;
        let l = self.num_layers as u64;
        let b = |on: bool, n: u64| if on { n } else { 0 };
        let attn = h * q
            + 2 * h * kv
            + q * h
            + b(self.attention_qkv_bias, q + 2 * kv)
            + b(self.attention_out_bias, h);
        let (per_layer, outer) = match self.architecture {
            Architecture::Gpt2 => {
                let mlp = 2 * h * i + i + h;
                let norms = 4 * h;
                let outer = v * h + self.max_position_embeddings as u64 * h + 2 * h;
                (attn + mlp + norms, outer)
            }
            Architecture::Opt => {
                let mlp = 2 * h * i + b(self.mlp_bias, i + h);
                let norms = 4 * h;
                let e = self.word_embed_proj_dim as u64;
                let proj = if e != h { 2 * e * h } else { 0 };
                let final_norm = if self.has_final_layer_norm { 2 * h } else { 0 };
                let outer =
                    v * e + (self.max_position_embeddings as u64 + 2) * h + proj + final_norm;
                (attn + mlp + norms, outer)
            }
            Architecture::Llama => {
                let mlp = 3 * h * i + b(self.mlp_bias, 2 * i + h);
                let norms = 2 * h;
                (attn + mlp + norms, v * h + h)
            }
        };
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        per_layer * l + outer + head
    }

    /// Bytes the weights take in `dtype`.
    pub fn weight_bytes(&self, dtype: DType) -> u64 {
        self.num_parameters() * dtype.size_in_bytes() as u64
    }
}

fn malformed(origin: &str, reason: String) -> EngineError {
    EngineError::MalformedModelConfig {
        path: origin.to_string(),
        reason,
    }
}

/// Typed access to a JSON object with error messages that name the field.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    origin: &'a str,
}

impl<'a> Fields<'a> {
    fn present(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn usize(&self, key: &str) -> Result<Option<usize>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    malformed(
                        self.origin,
                        format!("`{key}` is not a non-negative integer: {v}"),
                    )
                }),
        }
    }

    fn req_usize(&self, keys: &[&str]) -> Result<usize> {
        for key in keys {
            if let Some(v) = self.usize(key)? {
                return Ok(v);
            }
        }
        Err(malformed(
            self.origin,
            format!("missing field `{}`", keys.join("` or `")),
        ))
    }

    fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| malformed(self.origin, format!("`{key}` is not a number: {v}"))),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.present(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| malformed(self.origin, format!("`{key}` is not a boolean: {v}"))),
        }
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| malformed(self.origin, format!("`{key}` is not a string: {v}"))),
        }
    }

    /// A token id that may be a number or a list of numbers (first = primary).
    fn token_ids(&self, key: &str) -> Result<Vec<u32>> {
        let bad = || {
            malformed(
                self.origin,
                format!("`{key}` is not a token id or list of token ids"),
            )
        };
        let one = |v: &Value| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(bad)
        };
        match self.present(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(one).collect(),
            Some(v) => Ok(vec![one(v)?]),
        }
    }

    fn nested(&self, key: &str) -> Result<Option<Fields<'a>>> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Object(obj)) => Ok(Some(Fields {
                obj,
                origin: self.origin,
            })),
            Some(v) => Err(malformed(
                self.origin,
                format!("`{key}` is not an object: {v}"),
            )),
        }
    }
}

/// Fields common to every architecture; the parsers fill in the rest.
fn base(f: &Fields<'_>, architecture: Architecture, model_type: &str) -> Result<ModelConfig> {
    let eos = f.token_ids("eos_token_id")?;
    let bos = f.token_ids("bos_token_id")?;
    Ok(ModelConfig {
        architecture,
        model_type: model_type.to_string(),
        vocab_size: f.req_usize(&["vocab_size"])?,
        hidden_size: 0,
        intermediate_size: 0,
        num_layers: 0,
        num_heads: 0,
        num_kv_heads: 0,
        head_dim: 0,
        max_position_embeddings: 0,
        eos_token_id: eos.first().copied(),
        eos_token_ids: eos,
        bos_token_id: bos.first().copied(),
        norm_eps: 1e-5,
        activation: Activation::GeluTanh,
        tie_word_embeddings: f.bool("tie_word_embeddings", true)?,
        attention_qkv_bias: true,
        attention_out_bias: true,
        mlp_bias: true,
        rope_theta: 10_000.0,
        rope_scaling: RopeScaling::Default,
        sliding_window: None,
        do_layer_norm_before: true,
        word_embed_proj_dim: 0,
        has_final_layer_norm: true,
    })
}

fn parse_gpt2(f: &Fields<'_>) -> Result<ModelConfig> {
    let mut c = base(f, Architecture::Gpt2, "gpt2")?;
    c.hidden_size = f.req_usize(&["n_embd", "hidden_size"])?;
    c.num_layers = f.req_usize(&["n_layer", "num_hidden_layers"])?;
    c.num_heads = f.req_usize(&["n_head", "num_attention_heads"])?;
    c.num_kv_heads = c.num_heads;
    c.head_dim = c.hidden_size.checked_div(c.num_heads).unwrap_or(0);
    c.intermediate_size = f.usize("n_inner")?.unwrap_or(4 * c.hidden_size);
    c.max_position_embeddings = f.req_usize(&["n_positions", "max_position_embeddings"])?;
    c.norm_eps = f.f64("layer_norm_epsilon")?.unwrap_or(1e-5);
    c.activation = Activation::from_hf(
        f.str("activation_function")?.unwrap_or("gelu_new"),
        f.origin,
    )?;
    c.tie_word_embeddings = true;
    if f.bool("scale_attn_by_inverse_layer_idx", false)? {
        return Err(malformed(
            f.origin,
            "`scale_attn_by_inverse_layer_idx: true` is not supported".into(),
        ));
    }
    Ok(c)
}

fn parse_opt(f: &Fields<'_>) -> Result<ModelConfig> {
    let mut c = base(f, Architecture::Opt, "opt")?;
    c.hidden_size = f.req_usize(&["hidden_size"])?;
    c.num_layers = f.req_usize(&["num_hidden_layers"])?;
    c.num_heads = f.req_usize(&["num_attention_heads"])?;
    c.num_kv_heads = c.num_heads;
    c.head_dim = c.hidden_size.checked_div(c.num_heads).unwrap_or(0);
    c.intermediate_size = f.req_usize(&["ffn_dim"])?;
    c.max_position_embeddings = f.req_usize(&["max_position_embeddings"])?;
    c.activation = Activation::from_hf(f.str("activation_function")?.unwrap_or("relu"), f.origin)?;
    let bias = f.bool("enable_bias", true)?;
    c.attention_qkv_bias = bias;
    c.attention_out_bias = bias;
    c.mlp_bias = bias;
    if !f.bool("layer_norm_elementwise_affine", true)? {
        return Err(malformed(
            f.origin,
            "`layer_norm_elementwise_affine: false` is not supported".into(),
        ));
    }
    c.do_layer_norm_before = f.bool("do_layer_norm_before", true)?;
    c.word_embed_proj_dim = f.usize("word_embed_proj_dim")?.unwrap_or(c.hidden_size);
    c.has_final_layer_norm =
        c.do_layer_norm_before && !f.bool("_remove_final_layer_norm", false)?;
    Ok(c)
}

fn parse_llama(f: &Fields<'_>, model_type: &str) -> Result<ModelConfig> {
    let mut c = base(f, Architecture::Llama, model_type)?;
    c.hidden_size = f.req_usize(&["hidden_size"])?;
    c.intermediate_size = f.req_usize(&["intermediate_size"])?;
    c.num_layers = f.req_usize(&["num_hidden_layers"])?;
    c.num_heads = f.req_usize(&["num_attention_heads"])?;
    c.num_kv_heads = f.usize("num_key_value_heads")?.unwrap_or(c.num_heads);
    c.head_dim = match f.usize("head_dim")? {
        Some(d) => d,
        None => c.hidden_size.checked_div(c.num_heads).unwrap_or(0),
    };
    c.max_position_embeddings = f.req_usize(&["max_position_embeddings"])?;
    c.norm_eps = f.f64("rms_norm_eps")?.unwrap_or(1e-6);
    c.activation = Activation::from_hf(f.str("hidden_act")?.unwrap_or("silu"), f.origin)?;
    c.tie_word_embeddings = f.bool("tie_word_embeddings", false)?;
    let (qkv_bias, out_bias) = match model_type {
        // Qwen2 has biases on q/k/v only.
        "qwen2" => (true, false),
        _ => {
            let b = f.bool("attention_bias", false)?;
            (b, b)
        }
    };
    c.attention_qkv_bias = qkv_bias;
    c.attention_out_bias = out_bias;
    c.mlp_bias = f.bool("mlp_bias", false)?;
    c.sliding_window = match model_type {
        "mistral" => f.usize("sliding_window")?,
        "qwen2" if f.bool("use_sliding_window", false)? => f.usize("sliding_window")?,
        _ => None,
    };
    let (theta, scaling) = parse_rope(f)?;
    c.rope_theta = theta;
    c.rope_scaling = scaling;
    Ok(c)
}

/// Reads the rope base and scaling from either spelling.
fn parse_rope(f: &Fields<'_>) -> Result<(f64, RopeScaling)> {
    // transformers 5: everything in `rope_parameters`; legacy: `rope_theta` + `rope_scaling`.
    let params = f.nested("rope_parameters")?;
    let theta = match &params {
        Some(p) => p.f64("rope_theta")?,
        None => None,
    }
    .or(f.f64("rope_theta")?)
    .unwrap_or(10_000.0);
    let scaling = match params {
        Some(p) => Some(p),
        None => f.nested("rope_scaling")?,
    };
    let Some(s) = scaling else {
        return Ok((theta, RopeScaling::Default));
    };
    let kind = s.str("rope_type")?.or(s.str("type")?).unwrap_or("default");
    let factor = || {
        s.f64("factor")?
            .ok_or_else(|| malformed(f.origin, format!("rope scaling `{kind}` needs `factor`")))
    };
    let scaling = match kind {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear { factor: factor()? },
        "llama3" => RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: s.f64("low_freq_factor")?.unwrap_or(1.0),
            high_freq_factor: s.f64("high_freq_factor")?.unwrap_or(4.0),
            original_max_position_embeddings: s.req_usize(&["original_max_position_embeddings"])?,
        },
        other => {
            return Err(malformed(
                f.origin,
                format!("unsupported rope type `{other}` (supported: default, linear, llama3)"),
            ))
        }
    };
    Ok((theta, scaling))
}
