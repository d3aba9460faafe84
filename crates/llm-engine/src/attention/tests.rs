//! The three attention paths agree: the CPU decode kernel, the padded tensor-op decode path
//! (what a GPU runs) and the per-slice path (what prefill chunks use).

use candle_core::{DType, Device, Tensor};

use super::PagedAttention;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kv_cache_storage::PagedKvStorage;
use crate::models::{BatchLayout, SeqSlice};
use crate::presets::preset;

fn config(window: Option<usize>) -> Result<ModelConfig> {
    let mut cfg =
        preset("tiny-llama").ok_or_else(|| crate::EngineError::InvalidConfig("preset".into()))?;
    cfg.sliding_window = window;
    Ok(cfg)
}

/// Fills `ctx` positions of a sequence with random K/V.
fn fill(
    kv: &mut PagedKvStorage,
    cfg: &ModelConfig,
    table: &[u32],
    ctx: usize,
    dtype: DType,
) -> Result<()> {
    for layer in 0..cfg.num_layers {
        let k = Tensor::randn(
            0f32,
            1.0,
            (ctx, cfg.num_kv_heads, cfg.head_dim),
            &Device::Cpu,
        )?
        .to_dtype(dtype)?;
        let v = Tensor::randn(
            0f32,
            1.0,
            (ctx, cfg.num_kv_heads, cfg.head_dim),
            &Device::Cpu,
        )?
        .to_dtype(dtype)?;
        kv.write(layer, table, 0, &k, &v)?;
    }
    Ok(())
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let d = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?
        .abs()?
        .flatten_all()?
        .max(0)?;
    Ok(d.to_scalar::<f32>()?)
}

#[test]
fn decode_kernel_padded_path_and_per_slice_path_agree() -> Result<()> {
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::BF16, 2e-2)] {
        for window in [None, Some(7)] {
            let cfg = config(window)?;
            let bs = 4;
            let mut kv = PagedKvStorage::new(&cfg, 64, bs, dtype, &Device::Cpu)?;
            let ctxs = [1usize, 5, 16, 23, 40];
            let mut next = 63u32;
            let mut slices = Vec::new();
            for &ctx in &ctxs {
                let table: Vec<u32> = (0..ctx.div_ceil(bs))
                    .map(|_| {
                        next -= 1;
                        next
                    })
                    .collect();
                fill(&mut kv, &cfg, &table, ctx, dtype)?;
                slices.push(SeqSlice {
                    token_ids: vec![1],
                    start_pos: ctx - 1,
                    block_table: table,
                    want_logits: true,
                });
            }
            let layout = BatchLayout::new(&slices, &cfg, &kv, &Device::Cpu, false)?;
            let attn = PagedAttention::new(&cfg);
            let q = Tensor::randn(0f32, 1.0, (ctxs.len(), cfg.q_size()), &Device::Cpu)?
                .to_dtype(dtype)?;
            let which: Vec<usize> = (0..ctxs.len()).collect();
            let layer = 2;
            let kernel = attn.attend_decodes_cpu(&q, &layout, &which, &kv, layer)?;
            let padded = attn.attend_decodes(&q, &layout, &which, &kv, layer)?;
            let q3 = q.reshape((ctxs.len(), cfg.num_heads, cfg.head_dim))?;
            let mut per_slice = Vec::new();
            for (i, s) in slices.iter().enumerate() {
                let (k, v) = kv.gather(layer, &s.block_table, s.start_pos + 1)?;
                per_slice.push(attn.attend(&q3.narrow(0, i, 1)?, &k, &v, s.start_pos)?);
            }
            let per_slice = Tensor::cat(&per_slice, 0)?;
            assert_eq!(kernel.dims(), [ctxs.len(), cfg.q_size()]);
            assert!(
                max_diff(&kernel, &padded)? < tol,
                "{dtype:?} {window:?}: kernel vs padded"
            );
            assert!(
                max_diff(&kernel, &per_slice)? < tol,
                "{dtype:?} {window:?}: kernel vs per-slice"
            );
        }
    }
    Ok(())
}

/// `x` through what an fp8 cache does to it (clamp to ±448, round to E4M3), back in `x`'s dtype.
fn fp8_rounded(x: &Tensor) -> Result<Tensor> {
    Ok(x.to_dtype(DType::F32)?
        .clamp(-448f32, 448f32)?
        .to_dtype(DType::F8E4M3)?
        .to_dtype(x.dtype())?)
}

/// One sequence of the fp8 test: cached context `past`, then `new` tokens in this step.
struct Fp8Seq {
    past: usize,
    new: usize,
    table: Vec<u32>,
    k_past: Tensor,
    v_past: Tensor,
}

/// Over an fp8 E4M3 cache, [`PagedAttention::forward`] on the CPU (decode slices through the
/// CPU decode kernel, prefill chunks through gather + `attend`, mixed in one batch) equals
/// [`PagedAttention::attend`] over the same K/V rounded to fp8 in the test, for f32 and f16 q.
/// V is drawn wide (σ = 200) so that some values saturate at ±448; the same comparison against
/// K/V that were *not* rounded fails, so the test sees the rounding. The padded tensor-op
/// decode path (CUDA's reference path) agrees too. Tolerances, relative to the largest output:
/// f32 1e-5 (seen: 2e-7); f16 2e-3, about 4 ulps of f16 at the output's size (seen: 1 ulp, the
/// f16 matmuls of `attend` against the kernel's f32 sums); without the rounding: > 0.2.
#[test]
fn fp8_cache_forward_matches_attend_on_rounded_kv() -> Result<()> {
    for (dtype, tol) in [(DType::F32, 1e-5f32), (DType::F16, 2e-3)] {
        for window in [None, Some(7)] {
            let cfg = config(window)?;
            let (kvh, d, bs, layer) = (cfg.num_kv_heads, cfg.head_dim, 4, 3);
            let mut kv = PagedKvStorage::new(&cfg, 64, bs, DType::F8E4M3, &Device::Cpu)?;
            let rows = |n: usize, std: f32| -> Result<Tensor> {
                Ok(Tensor::randn(0f32, std, (n, kvh, d), &Device::Cpu)?.to_dtype(dtype)?)
            };
            let mut next = 64u32;
            let mut seqs = Vec::new();
            // A fresh prefill, decodes, and a chunk after a cached context.
            for (past, new) in [(0usize, 6usize), (5, 1), (16, 1), (9, 3), (23, 1)] {
                let table: Vec<u32> = (0..(past + new).div_ceil(bs))
                    .map(|_| {
                        next -= 1;
                        next
                    })
                    .collect();
                let (k_past, v_past) = (rows(past, 1.0)?, rows(past, 200.0)?);
                if past > 0 {
                    kv.write(layer, &table, 0, &k_past, &v_past)?;
                }
                seqs.push(Fp8Seq {
                    past,
                    new,
                    table,
                    k_past,
                    v_past,
                });
            }
            let slices: Vec<SeqSlice> = seqs
                .iter()
                .map(|s| SeqSlice {
                    token_ids: vec![1; s.new],
                    start_pos: s.past,
                    block_table: s.table.clone(),
                    want_logits: true,
                })
                .collect();
            let n: usize = seqs.iter().map(|s| s.new).sum();
            let layout = BatchLayout::new(&slices, &cfg, &kv, &Device::Cpu, true)?;
            let attn = PagedAttention::new(&cfg);
            let q = Tensor::randn(0f32, 1.0, (n, cfg.q_size()), &Device::Cpu)?.to_dtype(dtype)?;
            let (k_new, v_new) = (rows(n, 1.0)?, rows(n, 200.0)?);
            let out = attn.forward(
                &q,
                &k_new.reshape((n, kvh * d))?,
                &v_new.reshape((n, kvh * d))?,
                &layout,
                &mut kv,
                layer,
            )?;
            // The reference, per sequence, over K/V rounded (or not) to fp8 in the test.
            let reference = |round: bool| -> Result<Tensor> {
                let mut parts = Vec::new();
                let mut off = 0;
                for s in &seqs {
                    let ctx = |past: &Tensor, new: &Tensor| -> Result<Tensor> {
                        let all = Tensor::cat(&[past, &new.narrow(0, off, s.new)?], 0)?;
                        let all = if round { fp8_rounded(&all)? } else { all };
                        Ok(all.transpose(0, 1)?.contiguous()?)
                    };
                    let (k, v) = (ctx(&s.k_past, &k_new)?, ctx(&s.v_past, &v_new)?);
                    let q_s = q
                        .narrow(0, off, s.new)?
                        .reshape((s.new, cfg.num_heads, d))?;
                    parts.push(attn.attend(&q_s, &k, &v, s.past)?);
                    off += s.new;
                }
                Ok(Tensor::cat(&parts, 0)?)
            };
            let scale = out
                .to_dtype(DType::F32)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(scale > 100.0, "V is wide: outputs of size {scale}");
            let rounded = max_diff(&out, &reference(true)?)? / scale;
            let unrounded = max_diff(&out, &reference(false)?)? / scale;
            let case = format!("{dtype:?} window {window:?}");
            // The padded tensor-op decode path (CUDA's reference path) over the same cache.
            let decodes: Vec<usize> = (0..seqs.len()).filter(|&i| seqs[i].new == 1).collect();
            let padded = attn.attend_decodes(&q, &layout, &decodes, &kv, layer)?;
            let rows: Vec<u32> = decodes.iter().map(|&i| layout.offsets[i] as u32).collect();
            let rows = Tensor::from_vec(rows, decodes.len(), &Device::Cpu)?;
            let padded_diff = max_diff(&padded, &out.index_select(&rows, 0)?)? / scale;
            assert!(
                padded_diff < tol,
                "{case}: padded decode path {padded_diff}"
            );
            assert!(
                rounded < tol,
                "{case}: {rounded} vs the fp8-rounded reference"
            );
            assert!(
                unrounded > 10.0 * tol,
                "{case}: {unrounded}: the test does not see the fp8 rounding"
            );
        }
    }
    Ok(())
}
