//! Building blocks shared by the models: linear layers from HF weights (fused where the
//! model allows), norms, activations and the LM head.

use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, RmsNorm};

use crate::config::Activation;
use crate::error::Result;
use crate::weights::{Init, Weights};

/// A linear layer `y = x·Wᵀ + b` whose weight is kept transposed, `[in, out]` contiguous:
/// `x·Wᵀ` is then a plain row-major matmul, which candle's CPU gemm runs without re-packing
/// the whole weight matrix on every call (the PyTorch `[out, in]` layout costs ~1.5x at
/// batch 4-32 on the CPU).
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// From a PyTorch-layout weight `[out, in]`.
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self::from_transposed(weight.t()?.contiguous()?, bias))
    }

    /// From a weight already laid out `[in, out]` (GPT-2's Conv1D).
    pub(crate) fn from_transposed(weight_t: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight_t, bias }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.matmul(&self.weight_t)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// A linear layer stored the PyTorch way: weight `[out, in]` named `{prefix}.weight`, bias
/// `[out]` named `{prefix}.bias`.
pub(crate) fn linear(
    w: &Weights,
    prefix: &str,
    inp: usize,
    out: usize,
    bias: bool,
) -> Result<Linear> {
    let weight = w.get(&format!("{prefix}.weight"), &[out, inp], Init::Normal)?;
    let bias = if bias {
        Some(w.get(&format!("{prefix}.bias"), &[out], Init::Zeros)?)
    } else {
        None
    };
    Linear::new(weight, bias)
}

/// Several linear layers over the same input fused into one (outputs concatenated in order):
/// q/k/v projections, or gate/up. One matmul reads all their weights at once.
pub(crate) fn fused_linear(
    w: &Weights,
    prefixes: &[&str],
    inp: usize,
    outs: &[usize],
    bias: bool,
) -> Result<Linear> {
    let mut weights = Vec::with_capacity(prefixes.len());
    let mut biases = Vec::with_capacity(prefixes.len());
    for (prefix, &out) in prefixes.iter().zip(outs) {
        weights.push(w.get(&format!("{prefix}.weight"), &[out, inp], Init::Normal)?);
        if bias {
            biases.push(w.get(&format!("{prefix}.bias"), &[out], Init::Zeros)?);
        }
    }
    let weight = Tensor::cat(&weights, 0)?;
    let bias = if bias {
        Some(Tensor::cat(&biases, 0)?)
    } else {
        None
    };
    Linear::new(weight, bias)
}

/// GPT-2's Conv1D: weight stored `[in, out]`, already the layout [`Linear`] keeps.
pub(crate) fn conv1d(w: &Weights, prefix: &str, inp: usize, out: usize) -> Result<Linear> {
    let weight = w.get(&format!("{prefix}.weight"), &[inp, out], Init::Normal)?;
    let bias = w.get(&format!("{prefix}.bias"), &[out], Init::Zeros)?;
    Ok(Linear::from_transposed(weight, Some(bias)))
}

/// LayerNorm with weight and bias `{prefix}.weight` / `{prefix}.bias`.
pub(crate) fn layer_norm(w: &Weights, prefix: &str, size: usize, eps: f64) -> Result<LayerNorm> {
    let weight = w.get(&format!("{prefix}.weight"), &[size], Init::Ones)?;
    let bias = w.get(&format!("{prefix}.bias"), &[size], Init::Zeros)?;
    Ok(LayerNorm::new(weight, bias, eps))
}

/// RMSNorm with weight `{prefix}.weight`.
pub(crate) fn rms_norm(w: &Weights, prefix: &str, size: usize, eps: f64) -> Result<RmsNorm> {
    let weight = w.get(&format!("{prefix}.weight"), &[size], Init::Ones)?;
    Ok(RmsNorm::new(weight, eps))
}

/// Applies the activation.
pub(crate) fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::GeluTanh => x.gelu()?,
        Activation::GeluErf => x.gelu_erf()?,
        Activation::Relu => x.relu()?,
        Activation::Silu => candle_nn::ops::silu(x)?,
    })
}

/// The LM head: logits = hidden · weightᵀ, returned in f32.
#[derive(Debug, Clone)]
pub(crate) struct LmHead {
    weight: Tensor,
}

impl LmHead {
    pub(crate) fn new(weight: Tensor) -> Self {
        Self { weight }
    }

    /// `hidden` `[n, hidden]` → f32 logits `[n, vocab]`.
    pub(crate) fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.matmul(&self.weight.t()?)?.to_dtype(DType::F32)?)
    }
}
