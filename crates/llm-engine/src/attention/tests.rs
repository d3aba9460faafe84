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
