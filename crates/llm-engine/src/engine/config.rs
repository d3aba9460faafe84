//! [`EngineConfig`]: what to load and how to size and schedule it (vLLM's `EngineArgs`), and
//! the device string it names.

use std::str::FromStr;

use candle_core::{DType, Device};

use crate::engine::kv_cache_dtype::KvCacheDtype;
use crate::error::{EngineError, Result};
use crate::models::LoadFormat;

/// Default CPU KV-cache budget when none is given: 1 GiB (raised, if needed, to hold one
/// sequence of `max_model_len` tokens).
pub const DEFAULT_CPU_KV_CACHE_BYTES: u64 = 1 << 30;

/// The device the engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The host CPU.
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = EngineError;

    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        if t == "cuda" || t == "gpu" {
            return Ok(DeviceSpec::Cuda(0));
        }
        if let Some(n) = t.strip_prefix("cuda:") {
            return n
                .parse()
                .map(DeviceSpec::Cuda)
                .map_err(|_| EngineError::UnknownDevice(s.to_string()));
        }
        Err(EngineError::UnknownDevice(s.to_string()))
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device.
    ///
    /// # Errors
    /// [`EngineError::CudaNotCompiled`] for CUDA in a build without the `cuda` feature; a
    /// candle error if the CUDA device cannot be opened.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if cfg!(feature = "cuda") {
                    let device = Device::new_cuda(n)?;
                    #[cfg(feature = "cuda")]
                    if let Device::Cuda(cuda) = &device {
                        // cudarc creates two CUDA events for every allocation (every tensor)
                        // to order uses across streams; the engine runs everything on the
                        // device's one stream, so they are pure host overhead per op.
                        // SAFETY: only slices allocated after this call go untracked, and
                        // none of them is used on another stream: the engine, candle's ops
                        // and our kernels all use `cuda.cuda_stream()`.
                        unsafe { cuda.cuda_stream().context().disable_event_tracking() };
                    }
                    Ok(device)
                } else {
                    Err(EngineError::CudaNotCompiled {
                        device: self.to_string(),
                    })
                }
            }
        }
    }
}

/// Parses a dtype name: `f32`/`float32`, `f16`/`float16`/`half`, `bf16`/`bfloat16`.
///
/// # Errors
/// [`EngineError::InvalidConfig`] for anything else.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "float" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(EngineError::InvalidConfig(format!(
            "unknown dtype `{other}` (use f32, f16 or bf16)"
        ))),
    }
}

/// Everything [`crate::engine::Engine::new`] needs, with vLLM's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// A preset name, a local Hugging Face folder, or a model id in the Hugging Face cache.
    pub model: String,
    /// Where the weights come from (`Dummy`: random weights, no download).
    pub load_format: LoadFormat,
    /// Weight and activation dtype (and the KV cache's, with [`KvCacheDtype::Auto`]).
    pub dtype: DType,
    /// The dtype K/V are stored in (vLLM's `kv_cache_dtype`): the model's (`Auto`, the
    /// default) or FP8 E4M3 (half the bytes of f16/bf16, scale 1.0, saturating to ±448).
    pub kv_cache_dtype: KvCacheDtype,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Tokens per KV block (16).
    pub block_size: usize,
    /// Fraction of the GPU's memory the engine may use (weights + activations + KV cache), in
    /// (0, 1] (0.9). Ignored on the CPU.
    pub gpu_memory_utilization: f64,
    /// KV-cache byte budget on the CPU (`None`: [`DEFAULT_CPU_KV_CACHE_BYTES`]). On a GPU it
    /// caps the size computed from `gpu_memory_utilization`.
    pub kv_cache_bytes: Option<u64>,
    /// Use exactly this many KV blocks, whatever the budget (vLLM's `num_gpu_blocks_override`).
    pub num_kv_blocks_override: Option<usize>,
    /// Most requests in one batch (256).
    pub max_num_seqs: usize,
    /// Most tokens in one batch (8192).
    pub max_num_batched_tokens: usize,
    /// Longest sequence (prompt + output); `None`: the model's `max_position_embeddings`.
    pub max_model_len: Option<usize>,
    /// Seed of dummy weights and of requests without their own sampling seed.
    pub seed: u64,
    /// Reuse cached KV blocks of identical prompt prefixes (on by default, as in vLLM v1).
    pub enable_prefix_caching: bool,
    /// Split long prompts into chunks that share steps with decodes (on by default).
    pub enable_chunked_prefill: bool,
    /// Never replay decode steps from CUDA graphs (vLLM's `enforce_eager`; off by default).
    /// Without the `cuda` feature, or on the CPU, every step is eager anyway.
    pub enforce_eager: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            model: "tiny-llama".into(),
            load_format: LoadFormat::Auto,
            dtype: DType::F32,
            kv_cache_dtype: KvCacheDtype::Auto,
            device: "cpu".into(),
            block_size: 16,
            gpu_memory_utilization: 0.9,
            kv_cache_bytes: None,
            num_kv_blocks_override: None,
            max_num_seqs: 256,
            max_num_batched_tokens: 8192,
            max_model_len: None,
            seed: 0,
            enable_prefix_caching: true,
            enable_chunked_prefill: true,
            enforce_eager: false,
        }
    }
}

impl EngineConfig {
    /// A default configuration for `model`.
    pub fn for_model(model: impl Into<String>) -> Self {
        EngineConfig {
            model: model.into(),
            ..EngineConfig::default()
        }
    }

    /// The dtype of the KV cache's tensors: [`KvCacheDtype::storage_dtype`] of `dtype`.
    pub fn kv_storage_dtype(&self) -> DType {
        self.kv_cache_dtype.storage_dtype(self.dtype)
    }

    /// Checks what can be checked before loading the model, and parses the device.
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`] (`max_num_seqs` 0, `max_num_batched_tokens` 0,
    /// `block_size` 0, `gpu_memory_utilization` outside (0, 1], a zero budget, an fp8 KV cache
    /// on CUDA with an f32 model),
    /// [`EngineError::UnknownDevice`], [`EngineError::CudaNotCompiled`].
    pub fn validate(&self) -> Result<DeviceSpec> {
        let bad = |m: String| Err(EngineError::InvalidConfig(m));
        if self.max_num_seqs == 0 {
            return bad("max_num_seqs must be at least 1".into());
        }
        if self.max_num_batched_tokens == 0 {
            return bad("max_num_batched_tokens must be at least 1".into());
        }
        if self.block_size == 0 {
            return bad("block_size must be at least 1".into());
        }
        if !(self.gpu_memory_utilization > 0.0 && self.gpu_memory_utilization <= 1.0) {
            return bad(format!(
                "gpu_memory_utilization must be in (0, 1], got {}",
                self.gpu_memory_utilization
            ));
        }
        if self.kv_cache_bytes == Some(0) {
            return bad("kv_cache_bytes must be positive".into());
        }
        if self.num_kv_blocks_override == Some(0) {
            return bad("num_kv_blocks_override must be positive".into());
        }
        if self.max_model_len == Some(0) {
            return bad("max_model_len must be at least 1".into());
        }
        let device: DeviceSpec = self.device.parse()?;
        if matches!(device, DeviceSpec::Cuda(_)) && !cfg!(feature = "cuda") {
            return Err(EngineError::CudaNotCompiled {
                device: self.device.clone(),
            });
        }
        if matches!(device, DeviceSpec::Cuda(_)) {
            self.kv_cache_dtype.check_cuda_dtype(self.dtype)?;
        }
        Ok(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings() -> Result<()> {
        assert_eq!("cpu".parse::<DeviceSpec>()?, DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>()?, DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>()?, DeviceSpec::Cuda(3));
        assert!(matches!(
            "tpu".parse::<DeviceSpec>(),
            Err(EngineError::UnknownDevice(_))
        ));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        Ok(())
    }

    #[test]
    fn dtype_names() -> Result<()> {
        assert_eq!(parse_dtype("bfloat16")?, DType::BF16);
        assert_eq!(parse_dtype("F16")?, DType::F16);
        assert!(parse_dtype("int8").is_err());
        Ok(())
    }

    #[test]
    fn validation_rejects_bad_budgets() {
        let ok = EngineConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            EngineConfig {
                max_num_seqs: 0,
                ..ok.clone()
            },
            EngineConfig {
                max_num_batched_tokens: 0,
                ..ok.clone()
            },
            EngineConfig {
                block_size: 0,
                ..ok.clone()
            },
            EngineConfig {
                gpu_memory_utilization: 0.0,
                ..ok.clone()
            },
            EngineConfig {
                gpu_memory_utilization: 1.5,
                ..ok.clone()
            },
            EngineConfig {
                gpu_memory_utilization: f64::NAN,
                ..ok.clone()
            },
            EngineConfig {
                kv_cache_bytes: Some(0),
                ..ok.clone()
            },
            EngineConfig {
                max_model_len: Some(0),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(EngineError::InvalidConfig(_))),
                "{bad:?}"
            );
        }
        let cuda = EngineConfig {
            device: "cuda".into(),
            ..ok
        };
        if cfg!(feature = "cuda") {
            assert!(cuda.validate().is_ok());
        } else {
            let e = cuda.validate();
            assert!(matches!(e, Err(EngineError::CudaNotCompiled { .. })));
            let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains("--features cuda"), "{msg}");
        }
    }
}
