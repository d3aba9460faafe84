//! Helpers shared by the models_* integration tests: fixtures, block tables, paged forward
//! drivers and comparisons.
#![allow(dead_code)]

pub mod hf_writer;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use llm_engine::models::{CausalLm, SeqSlice};
use llm_engine::{ModelConfig, PagedKvStorage, Result};

/// The device the models tests run on: `LLM_ENGINE_TEST_DEVICE=cuda` (or `cuda:N`) runs them
/// on a GPU (needs `--features cuda`), else the CPU.
pub fn test_device() -> Device {
    match std::env::var("LLM_ENGINE_TEST_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0)
            .expect("LLM_ENGINE_TEST_DEVICE=cuda needs a GPU and --features cuda"),
        Ok(d) if d.starts_with("cuda:") => {
            let ordinal = d[5..].parse().expect("cuda:N");
            Device::new_cuda(ordinal)
                .expect("LLM_ENGINE_TEST_DEVICE=cuda:N needs a GPU and --features cuda")
        }
        _ => Device::Cpu,
    }
}

/// The folder of golden fixture `name`, or `None` (with a printed note) when it is absent.
pub fn fixture_dir(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if dir.join("config.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "note: golden fixture {} is missing; skipping",
            dir.display()
        );
        None
    }
}

/// One prompt of a fixture's expected.json.
#[derive(Debug, Clone)]
pub struct ExpectedPrompt {
    pub token_ids: Vec<u32>,
    pub greedy_token_ids: Vec<u32>,
    pub text: String,
    /// transformers' logits at every prompt position, `[len, vocab]`.
    pub logits: Tensor,
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads expected.json + expected.safetensors of a fixture folder.
pub fn expected(dir: &Path) -> Vec<ExpectedPrompt> {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json readable");
    let json: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    let tensors = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu)
        .expect("expected.safetensors");
    json["prompts"]
        .as_array()
        .expect("prompts array")
        .iter()
        .enumerate()
        .map(|(i, p)| ExpectedPrompt {
            token_ids: ids(&p["token_ids"]),
            greedy_token_ids: ids(&p["greedy_token_ids"]),
            text: p["text"].as_str().unwrap_or_default().to_string(),
            logits: tensors[&format!("logits_{i}")].clone(),
        })
        .collect()
}

/// Hands out KV blocks in a scrambled order so block tables are never contiguous.
pub struct BlockAllocator {
    free: Vec<u32>,
}

impl BlockAllocator {
    pub fn new(num_blocks: usize) -> Self {
        // A fixed permutation: odd blocks descending, then even blocks ascending.
        let n = num_blocks as u32;
        let mut free: Vec<u32> = (0..n).filter(|b| b % 2 == 0).collect();
        free.extend((0..n).filter(|b| b % 2 == 1));
        free.reverse();
        Self { free }
    }

    /// Grows `table` to cover `len` positions.
    pub fn cover(&mut self, table: &mut Vec<u32>, len: usize, block_size: usize) {
        while table.len() * block_size < len {
            table.push(self.free.pop().expect("enough KV blocks for the test"));
        }
    }
}

/// All-position f32 logits `[len, vocab]` of `tokens`, fed to the paged model in chunks of
/// `chunk` tokens (`usize::MAX` = one slice).
pub fn paged_logits_chunked(
    model: &dyn CausalLm,
    tokens: &[u32],
    block_size: usize,
    chunk: usize,
) -> Result<Tensor> {
    let cfg = model.config();
    let num_blocks = tokens.len().div_ceil(block_size) * 2 + 2;
    let mut kv = PagedKvStorage::new(cfg, num_blocks, block_size, model.dtype(), model.device())?;
    let mut alloc = BlockAllocator::new(num_blocks);
    let mut table = Vec::new();
    let mut outs = Vec::new();
    let mut pos = 0;
    while pos < tokens.len() {
        let n = chunk.min(tokens.len() - pos);
        alloc.cover(&mut table, pos + n, block_size);
        let slice = SeqSlice {
            token_ids: tokens[pos..pos + n].to_vec(),
            start_pos: pos,
            block_table: table.clone(),
            want_logits: true,
        };
        outs.push(model.forward_all_logits(&[slice], &mut kv)?);
        pos += n;
    }
    Ok(Tensor::cat(&outs, 0)?)
}

/// Greedy continuation of `prompt` for `max_new` tokens through the paged path: one prefill
/// slice, then one decode slice per token, argmax of the returned logits.
pub fn paged_greedy(
    model: &dyn CausalLm,
    prompt: &[u32],
    max_new: usize,
    block_size: usize,
) -> Result<Vec<u32>> {
    let cfg = model.config();
    let total = prompt.len() + max_new;
    let num_blocks = total.div_ceil(block_size) + 1;
    let mut kv = PagedKvStorage::new(cfg, num_blocks, block_size, model.dtype(), model.device())?;
    let mut alloc = BlockAllocator::new(num_blocks);
    let mut table = Vec::new();
    let mut out = Vec::new();
    let mut pending = prompt.to_vec();
    let mut pos = 0;
    while out.len() < max_new {
        alloc.cover(&mut table, pos + pending.len(), block_size);
        let slice = SeqSlice {
            token_ids: pending.clone(),
            start_pos: pos,
            block_table: table.clone(),
            want_logits: true,
        };
        let logits = model.forward(&[slice], &mut kv)?;
        let next = argmax_rows(&logits)?[0];
        pos += pending.len();
        out.push(next);
        pending = vec![next];
    }
    Ok(out)
}

/// Argmax of each row of an f32 `[n, vocab]` tensor (first index on ties, like torch).
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut best = 0;
            for (i, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect())
}

/// Largest |a - b| and largest |b|.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<(f32, f32)> {
    let a = a
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_device(&Device::Cpu)?;
    let b = b
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_device(&Device::Cpu)?;
    let diff = (&a - &b)?.abs()?.max(0)?.to_scalar::<f32>()?;
    let scale = b.abs()?.max(0)?.to_scalar::<f32>()?;
    Ok((diff, scale))
}

/// Asserts `ours` matches `theirs` within `rel * max(1, max|theirs|)`.
pub fn assert_close(ours: &Tensor, theirs: &Tensor, rel: f32, what: &str) {
    assert_eq!(ours.dims(), theirs.dims(), "{what}: shapes differ");
    let (diff, scale) = max_abs_diff(ours, theirs).expect("comparable tensors");
    let tol = rel * scale.max(1.0);
    assert!(
        diff <= tol,
        "{what}: max |diff| {diff} > tolerance {tol} (max |ref| {scale})"
    );
}

/// A config's name for messages.
pub fn describe(cfg: &ModelConfig) -> String {
    format!(
        "{} ({} layers, hidden {})",
        cfg.model_type, cfg.num_layers, cfg.hidden_size
    )
}
