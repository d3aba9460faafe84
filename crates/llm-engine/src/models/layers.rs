//! Building blocks shared by the models: linear layers from HF weights (fused where the
//! model allows), norms, activations and the LM head.

use std::sync::Arc;

use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, RmsNorm};

use super::packed_linear::{PackedMatmul, PackedWeight};
use crate::config::Activation;
use crate::error::Result;
use crate::weights::{Init, Weights};

/// A linear layer `y = x·Wᵀ + b`.
///
/// Where the weight lives depends on the device and dtype:
/// - CPU, f32: packed once into column panels ([`PackedWeight`]) that a register-tiled
///   kernel streams exactly once per call — the decode case (a few rows) runs near the cores'
///   FMA rate instead of re-packing the weight on every call as a general GEMM does;
/// - CPU, f16/bf16: kept transposed, `[in, out]` contiguous, so `x·Wᵀ` is a plain row-major
///   matmul that candle's CPU gemm runs without re-packing the whole weight on every call;
/// - GPU: PyTorch's `[out, in]` (cuBLAS transposes for free, and loading needs no copy).
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
}

/// How a [`Linear`] stores its weight.
#[derive(Debug, Clone)]
enum LinearWeight {
    /// A candle tensor, `[in, out]` when `transposed`, else `[out, in]`.
    Dense { weight: Tensor, transposed: bool },
    /// f32 on the CPU, packed for [`PackedMatmul`].
    Packed(Arc<PackedWeight>),
}

impl Linear {
    /// A linear layer over `weight` (`[in, out]` when `transposed`), packed when it is an f32
    /// tensor on the CPU in the `[in, out]` layout.
    fn new(weight: Tensor, transposed: bool, bias: Option<Tensor>) -> Result<Self> {
        let weight = if transposed && weight.device().is_cpu() && weight.dtype() == DType::F32 {
            LinearWeight::Packed(Arc::new(PackedWeight::from_tensor(&weight)?))
        } else {
            LinearWeight::Dense { weight, transposed }
        };
        Ok(Self { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = match &self.weight {
            LinearWeight::Packed(w) => x.contiguous()?.apply_op1_no_bwd(&PackedMatmul(w))?,
            LinearWeight::Dense {
                weight,
                transposed: true,
            } => x.matmul(weight)?,
            LinearWeight::Dense {
                weight,
                transposed: false,
            } => {
                if let Some(y) = small_m_linear(x, weight, self.bias.as_ref())? {
                    return Ok(y); // bias included
                }
                x.matmul(&weight.t()?)?
            }
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// `x · wᵀ (+ bias)` by the CUDA GEMV kernel when `x` has a handful of rows on a GPU (a
/// decode step of a few sequences), else `None` (and always `None` without the `cuda` feature).
fn small_m_linear(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> candle_core::Result<Option<Tensor>> {
    #[cfg(feature = "cuda")]
    {
        crate::cuda::gemv::small_m_linear(x, w, bias)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (x, w, bias);
        Ok(None)
    }
}

/// Whether linear weights are kept `[in, out]` on this device.
fn keep_transposed(w: &Weights) -> bool {
    w.device().is_cpu()
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
    fused_linear(w, &[prefix], inp, &[out], bias)
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
    let transposed = keep_transposed(w);
    let mut weights = Vec::with_capacity(prefixes.len());
    let mut biases = Vec::with_capacity(prefixes.len());
    for (prefix, &out) in prefixes.iter().zip(outs) {
        let name = format!("{prefix}.weight");
        weights.push(if transposed {
            w.get_transposed(&name, [out, inp])?
        } else {
            w.get(&name, &[out, inp], Init::Normal)?
        });
        if bias {
            biases.push(w.get(&format!("{prefix}.bias"), &[out], Init::Zeros)?);
        }
    }
    let out_dim = if transposed { 1 } else { 0 };
    let weight = if weights.len() == 1 {
        weights.remove(0)
    } else {
        Tensor::cat(&weights, out_dim)?
    };
    let bias = match biases.len() {
        0 => None,
        1 => Some(biases.remove(0)),
        _ => Some(Tensor::cat(&biases, 0)?),
    };
    Linear::new(weight, transposed, bias)
}

/// GPT-2's Conv1D: weight stored `[in, out]`, already the layout [`Linear`] keeps.
pub(crate) fn conv1d(w: &Weights, prefix: &str, inp: usize, out: usize) -> Result<Linear> {
    let weight = w.get(&format!("{prefix}.weight"), &[inp, out], Init::Normal)?;
    let bias = w.get(&format!("{prefix}.bias"), &[out], Init::Zeros)?;
    Linear::new(weight, true, Some(bias))
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

/// Whether the models run their fused CUDA kernels ([`crate::cuda::fused`]) on `device`: on
/// CUDA unless the environment sets `LLM_ENGINE_FUSED=0`, which keeps candle's op path (the
/// reference the kernels are tested against). Read once, when a model is built.
pub(crate) fn fused_kernels_enabled(device: &candle_core::Device) -> bool {
    cfg!(feature = "cuda")
        && device.is_cuda()
        && std::env::var("LLM_ENGINE_FUSED").map_or(true, |v| v.trim() != "0")
}

/// `x + delta` and `norm` of it, `(sum, normed)`: one fused CUDA launch
/// ([`crate::cuda::fused::add_layer_norm`]), or candle's two ops for a norm without bias.
#[cfg(feature = "cuda")]
pub(crate) fn fused_add_layer_norm(
    x: &Tensor,
    delta: &Tensor,
    norm: &LayerNorm,
) -> Result<(Tensor, Tensor)> {
    match norm.bias() {
        Some(bias) => crate::cuda::fused::add_layer_norm(x, delta, norm.weight(), bias, norm.eps()),
        None => {
            let sum = (x + delta)?;
            let normed = norm.forward(&sum)?;
            Ok((sum, normed))
        }
    }
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

/// `act(gate) * up` of a fused gate/up projection `gate_up` `[rows, 2 * inter]` (gate in the
/// first `inter` columns): `[rows, inter]`. On the CPU in f32 with SiLU it is one pass over
/// the rows (spread over rayon's threads); elsewhere candle's ops on the two halves.
pub(crate) fn gated_activation(gate_up: &Tensor, inter: usize, act: Activation) -> Result<Tensor> {
    if act == Activation::Silu
        && gate_up.device().is_cpu()
        && gate_up.dtype() == DType::F32
        && gate_up.dims2().is_ok_and(|(_, w)| w == 2 * inter)
    {
        return Ok(gate_up
            .contiguous()?
            .apply_op1_no_bwd(&SiluMulCpu { inter })?);
    }
    Ok((activate(&gate_up.narrow(1, 0, inter)?, act)? * gate_up.narrow(1, inter, inter)?)?)
}

/// The CPU op behind [`gated_activation`]: `silu(g) * u` per row of `[g | u]`, in f32, with
/// SiLU's result rounded nowhere (f32 throughout, as candle's f32 ops do).
struct SiluMulCpu {
    inter: usize,
}

impl candle_core::CustomOp1 for SiluMulCpu {
    fn name(&self) -> &'static str {
        "silu-mul-f32"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let i = self.inter;
        let (rows, width) = layout.shape().dims2()?;
        let (Some((start, end)), candle_core::CpuStorage::F32(data)) =
            (layout.contiguous_offsets(), storage)
        else {
            candle_core::bail!("silu-mul needs a contiguous f32 input")
        };
        if width != 2 * i || end - start != rows * width {
            candle_core::bail!("silu-mul: input [{rows}, {width}] is not [rows, 2 * {i}]")
        }
        let mut out = vec![0f32; rows * i];
        out.par_chunks_mut(i.max(1))
            .zip(data[start..end].par_chunks(width.max(1)))
            .for_each(|(o, row)| {
                let (gate, up) = row.split_at(i);
                crate::cpu_simd::silu_mul(gate, up, o);
            });
        Ok((candle_core::CpuStorage::F32(out), (rows, i).into()))
    }
}

/// The LM head: logits = hidden · weightᵀ, returned in f32. On the CPU in f32 the weight is
/// also packed (like [`Linear`]'s), so the per-step logits of a few rows stream it once.
#[derive(Debug, Clone)]
pub(crate) struct LmHead {
    /// `[vocab, hidden]`, the PyTorch layout (kept by the model anyway when tied).
    weight: LinearWeight,
    vocab: usize,
}

impl LmHead {
    /// The head over `weight` `[vocab, hidden]`.
    pub(crate) fn new(weight: Tensor) -> Result<Self> {
        let vocab = weight.dim(0)?;
        let weight = if weight.device().is_cpu() && weight.dtype() == DType::F32 {
            LinearWeight::Packed(Arc::new(PackedWeight::from_tensor_out_in(&weight)?))
        } else {
            LinearWeight::Dense {
                weight,
                transposed: false,
            }
        };
        Ok(Self { weight, vocab })
    }

    /// `hidden` `[n, hidden]` → f32 logits `[n, vocab]`.
    pub(crate) fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(match &self.weight {
            LinearWeight::Packed(w) => hidden.contiguous()?.apply_op1_no_bwd(&PackedMatmul(w))?,
            LinearWeight::Dense { weight, .. } => match small_m_linear(hidden, weight, None)? {
                Some(y) => y.to_dtype(DType::F32)?,
                None => hidden.matmul(&weight.t()?)?.to_dtype(DType::F32)?,
            },
        })
    }

    /// The logits of the rows the batch wants (`layout.output_rows` of the flat token axis
    /// `x`), after `finish` (the model's final norm / projection): f32 `[num_outputs, vocab]`,
    /// an empty `[0, vocab]` when no row wants logits.
    pub(crate) fn logits_of_outputs(
        &self,
        x: &Tensor,
        layout: &super::batch::BatchLayout<'_>,
        finish: impl FnOnce(Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if layout.num_outputs == 0 {
            return Ok(Tensor::zeros((0, self.vocab), DType::F32, x.device())?);
        }
        self.logits(&finish(x.index_select(&layout.output_rows, 0)?)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// The CPU SiLU·up op against candle's ops on the two halves, and the other activations
    /// (which take candle's path) still working.
    #[test]
    fn gated_activation_matches_candle() -> Result<()> {
        let gu = Tensor::randn(0f32, 3.0, (5, 2 * 37), &Device::Cpu)?;
        let (g, u) = (gu.narrow(1, 0, 37)?, gu.narrow(1, 37, 37)?);
        for act in [Activation::Silu, Activation::GeluTanh, Activation::Relu] {
            let got = gated_activation(&gu, 37, act)?;
            let want = (activate(&g, act)? * &u)?;
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "{act:?}: {diff}");
        }
        Ok(())
    }
}
