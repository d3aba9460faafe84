//! Where model weights come from: safetensors files (single or sharded with an index), or
//! seeded random "dummy" weights of the right shapes (vLLM's `--load-format dummy`).
//!
//! Models ask a [`Weights`] for each tensor by its Hugging Face name and expected shape; every
//! source checks the shape and names the tensor when it is missing or wrong, and returns it in
//! the requested dtype on the requested device.

mod dummy;
mod hf_cache;
mod safetensors_files;

use candle_core::{DType, Device, Tensor};

pub use dummy::DummyWeights;
pub use hf_cache::{hf_cache_dir, HfCacheModel};
pub use safetensors_files::SafetensorsWeights;

use crate::error::Result;

/// How a dummy source initialises a tensor (a file source ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Random normal-like values (std 0.02): projections, embeddings.
    Normal,
    /// All ones: norm weights.
    Ones,
    /// All zeros: biases.
    Zeros,
}

/// A source of named tensors.
pub trait WeightSource: Send + Sync {
    /// Whether the source has a tensor of that name (a dummy source has every name).
    fn has(&self, name: &str) -> bool;

    /// The tensor `name`, which must have shape `shape`, in the source's dtype and device.
    ///
    /// # Errors
    /// [`crate::EngineError::MissingTensor`] or [`crate::EngineError::TensorShapeMismatch`]
    /// naming the tensor; candle errors when reading it fails.
    fn load(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor>;

    /// The matrix `name`, stored `[rows, cols]` = `shape`, returned transposed
    /// (`[cols, rows]`, contiguous). A dummy source draws it in that layout directly.
    ///
    /// # Errors
    /// As [`WeightSource::load`].
    fn load_transposed(&self, name: &str, shape: [usize; 2]) -> Result<Tensor> {
        Ok(self.load(name, &shape, Init::Normal)?.t()?.contiguous()?)
    }

    /// A short description for logs and error messages (files, or "dummy weights (seed N)").
    fn describe(&self) -> String;
}

/// The weights of one model: a source plus the dtype and device every tensor is returned in.
pub struct Weights {
    source: Box<dyn WeightSource>,
    dtype: DType,
    device: Device,
}

impl Weights {
    /// Wraps a source.
    pub fn new(source: Box<dyn WeightSource>, dtype: DType, device: Device) -> Self {
        Self {
            source,
            dtype,
            device,
        }
    }

    /// The tensor `name` of shape `shape`, in [`Weights::dtype`].
    ///
    /// # Errors
    /// As [`WeightSource::load`].
    pub fn get(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let t = self.source.load(name, shape, init)?;
        Ok(t.to_dtype(self.dtype)?)
    }

    /// The matrix `name` (stored `[rows, cols]` = `shape`) transposed to `[cols, rows]`,
    /// contiguous, in [`Weights::dtype`].
    ///
    /// # Errors
    /// As [`WeightSource::load`].
    pub fn get_transposed(&self, name: &str, shape: [usize; 2]) -> Result<Tensor> {
        Ok(self
            .source
            .load_transposed(name, shape)?
            .to_dtype(self.dtype)?)
    }

    /// Whether the source has `name`.
    pub fn has(&self, name: &str) -> bool {
        self.source.has(name)
    }

    /// The first of `names` that the source has, or the first name (so a later `get` reports it
    /// missing).
    pub fn first_present<'n>(&self, names: &[&'n str]) -> &'n str {
        names
            .iter()
            .copied()
            .find(|n| self.has(n))
            .unwrap_or(names.first().copied().unwrap_or(""))
    }

    /// The dtype tensors are returned in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device tensors are returned on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The source's description.
    pub fn describe(&self) -> String {
        self.source.describe()
    }
}
