//! Decode throughput of our engine against candle-transformers' `llama` on the same weights
//! (tiny-llama's shape, random weights saved as a Hugging Face folder), and of our engine at
//! batch 16 against batch 1. CPU by default; the numbers go into docs/PERFORMANCE.md.
//!
//! ```text
//! cargo run --release -p llm-engine --example decode_throughput [-- --device cuda --steps 256]
//! ```
//!
//! Method: each run prefills its prompt(s) (64 tokens), then times `--steps` greedy decode
//! steps: tokens generated / wall time. After a warm-up run of each, `--repeats` interleaved
//! rounds run every configuration once; figures are medians (with min - max) over the
//! rounds, ratios the median of the per-round ratios (robust to the machine's speed drifting
//! between rounds, as a shared VM's does). Ours is measured through
//! the whole engine (scheduler, paged KV cache, sampling); candle-transformers' through its
//! `Llama::forward` with its contiguous KV cache and a host argmax.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as ref_llama;
use llm_engine::engine::EngineConfig;
use llm_engine::sampling::argmax;
use llm_engine::{Engine, LoadFormat, Prompt, SamplingParams};

const PROMPT_LEN: usize = 64;

struct Opts {
    device: String,
    steps: usize,
    repeats: usize,
    /// Run only the configurations whose name contains this text (e.g. `"batch 16"`, for a
    /// profile of one of them).
    only: Option<String>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        device: "cpu".into(),
        steps: 128,
        repeats: 5,
        only: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        match args[i].as_str() {
            "--device" => o.device = val.clone(),
            "--steps" => o.steps = val.parse().map_err(|e| format!("--steps: {e}"))?,
            "--repeats" => o.repeats = val.parse().map_err(|e| format!("--repeats: {e}"))?,
            "--only" => o.only = Some(val.clone()),
            other => {
                return Err(format!(
                    "unknown flag {other} (use --device, --steps, --repeats, --only)"
                ))
            }
        }
        i += 2;
    }
    Ok(o)
}

/// tiny-llama's shape as a Hugging Face config.
fn config_json() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 6,
        "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 4096,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "torch_dtype": "float32"
    })
}

/// Random weights with Hugging Face Llama names, written as model.safetensors + config.json.
fn write_weights(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let (h, i, l, v) = (512usize, 1376usize, 6usize, 4096usize);
    let kv = 4 * (h / 8); // 4 KV heads of head_dim h / 8
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut rnd = |name: String, shape: &[usize]| -> candle_core::Result<()> {
        t.insert(name, Tensor::randn(0f32, 0.05, shape, &dev)?);
        Ok(())
    };
    rnd("model.embed_tokens.weight".into(), &[v, h])?;
    rnd("lm_head.weight".into(), &[v, h])?;
    for n in 0..l {
        let p = format!("model.layers.{n}");
        rnd(format!("{p}.self_attn.q_proj.weight"), &[h, h])?;
        rnd(format!("{p}.self_attn.k_proj.weight"), &[kv, h])?;
        rnd(format!("{p}.self_attn.v_proj.weight"), &[kv, h])?;
        rnd(format!("{p}.self_attn.o_proj.weight"), &[h, h])?;
        rnd(format!("{p}.mlp.gate_proj.weight"), &[i, h])?;
        rnd(format!("{p}.mlp.up_proj.weight"), &[i, h])?;
        rnd(format!("{p}.mlp.down_proj.weight"), &[h, i])?;
    }
    for n in 0..l {
        let p = format!("model.layers.{n}");
        t.insert(
            format!("{p}.input_layernorm.weight"),
            Tensor::ones(h, DType::F32, &dev)?,
        );
        t.insert(
            format!("{p}.post_attention_layernorm.weight"),
            Tensor::ones(h, DType::F32, &dev)?,
        );
    }
    t.insert(
        "model.norm.weight".into(),
        Tensor::ones(h, DType::F32, &dev)?,
    );
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
    std::fs::write(dir.join("config.json"), config_json().to_string())?;
    Ok(())
}

fn prompt(seed: usize) -> Vec<u32> {
    (0..PROMPT_LEN)
        .map(|k| ((k * 131 + seed * 977 + 7) % 4000) as u32 + 3)
        .collect()
}

fn min_max(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Our engine: `batch` requests, prefill, then `steps` decode steps timed.
fn ours(
    dir: &Path,
    device: &str,
    batch: usize,
    steps: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut e = Engine::new(EngineConfig {
        model: dir.to_string_lossy().into_owned(),
        load_format: LoadFormat::Safetensors,
        device: device.into(),
        kv_cache_bytes: Some(256 << 20),
        enable_prefix_caching: false,
        ..EngineConfig::default()
    })?;
    let params = SamplingParams {
        ignore_eos: true,
        detokenize: false,
        ..SamplingParams::greedy(steps + 1)
    };
    for b in 0..batch {
        e.add_request(Prompt::Tokens(prompt(b)), params.clone())?;
    }
    // The prefill step gives every request its first token.
    e.step()?;
    let t = Instant::now();
    let mut tokens = 0usize;
    while e.has_unfinished_requests() {
        tokens += e
            .step()?
            .iter()
            .map(|o| o.new_token_ids.len())
            .sum::<usize>();
    }
    Ok(tokens as f64 / t.elapsed().as_secs_f64())
}

/// Our model alone (no engine): `batch` sequences, block tables by hand, host argmax; shows
/// how much of a step is the engine's own work (scheduling, bookkeeping, outputs).
fn model_only(
    dir: &Path,
    device: &Device,
    batch: usize,
    steps: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    use llm_engine::models::{load_model, ModelSource, PagedKvStorage, SeqSlice};
    let m = load_model(
        &ModelSource::Dir(dir.to_path_buf()),
        LoadFormat::Safetensors,
        DType::F32,
        device,
        0,
    )?;
    let bs = 16;
    let per_seq = (PROMPT_LEN + steps + 1).div_ceil(bs);
    let mut kv = PagedKvStorage::new(&m.config, per_seq * batch, bs, DType::F32, device)?;
    let tables: Vec<Vec<u32>> = (0..batch)
        .map(|b| ((b * per_seq) as u32..((b + 1) * per_seq) as u32).collect())
        .collect();
    let mut slices: Vec<SeqSlice> = (0..batch)
        .map(|b| SeqSlice {
            token_ids: prompt(b),
            start_pos: 0,
            block_table: tables[b].clone(),
            want_logits: true,
        })
        .collect();
    let next = |logits: &Tensor| -> Result<Vec<u32>, Box<dyn std::error::Error>> {
        let rows = logits.to_vec2::<f32>()?;
        Ok(rows.iter().map(|r| argmax(r).unwrap_or(0)).collect())
    };
    // As the engine does on the CPU: the forward pass runs inside the rayon pool, so its
    // parallel ops do not each wake the pool from outside.
    let mut model = m.model;
    let mut forward = |slices: &[SeqSlice], kv: &mut PagedKvStorage| {
        let model = &mut model;
        rayon::scope(move |_| model.forward(slices, kv))
    };
    let mut toks = next(&forward(&slices, &mut kv)?)?;
    let t = Instant::now();
    for s in 0..steps {
        for (b, sl) in slices.iter_mut().enumerate() {
            sl.token_ids = vec![toks[b]];
            sl.start_pos = PROMPT_LEN + s;
        }
        toks = next(&forward(&slices, &mut kv)?)?;
    }
    Ok((steps * batch) as f64 / t.elapsed().as_secs_f64())
}

/// candle-transformers' llama at batch 1: prefill, then `steps` decode steps timed.
fn reference(dir: &Path, device: &Device, steps: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let cfg: ref_llama::LlamaConfig = serde_json::from_value(config_json())?;
    let cfg = cfg.into_config(false);
    // SAFETY: the file was just written by this process and is not modified while mapped.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, device)?
    };
    let model = ref_llama::Llama::load(vb, &cfg)?;
    let mut cache = ref_llama::Cache::new(true, DType::F32, &cfg, device)?;
    let p = prompt(0);
    let input = Tensor::new(p.as_slice(), device)?.unsqueeze(0)?;
    let logits = model.forward(&input, 0, &mut cache)?;
    let mut next = argmax(&logits.squeeze(0)?.to_vec1::<f32>()?).ok_or("no logits")?;
    let t = Instant::now();
    for s in 0..steps {
        let input = Tensor::new(&[next], device)?.unsqueeze(0)?;
        let logits = model.forward(&input, PROMPT_LEN + s, &mut cache)?;
        next = argmax(&logits.squeeze(0)?.to_vec1::<f32>()?).ok_or("no logits")?;
    }
    Ok(steps as f64 / t.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // candle's CPU ops look up the thread count on every call, and without RAYON_NUM_THREADS
    // that reads /proc/cpuinfo each time (about a third of a tiny model's batch-1 decode step).
    // Setting it once here, before any thread exists, removes that cost.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let o = parse_opts()?;
    let dir = tempfile::tempdir()?;
    write_weights(dir.path())?;
    let device: llm_engine::engine::DeviceSpec = o.device.parse()?;
    let cdev = device.open()?;
    // Interleaved rounds: every round runs each configuration once, in the same order, so a
    // drift of the machine's speed (this is often a shared VM) hits all of them alike. The
    // ratios are taken within each round, then their median over the rounds is reported.
    type Run<'a> = Box<dyn FnMut() -> Result<f64, Box<dyn std::error::Error>> + 'a>;
    let p = dir.path();
    let (dev_name, steps) = (o.device.as_str(), o.steps);
    let mut configs: Vec<(&str, Run<'_>)> = vec![
        (
            "candle-transformers llama, batch 1",
            Box::new(|| reference(p, &cdev, steps)),
        ),
        (
            "llm-engine, batch 1",
            Box::new(|| ours(p, dev_name, 1, steps)),
        ),
        (
            "llm-engine, batch 16",
            Box::new(|| ours(p, dev_name, 16, steps)),
        ),
        (
            "model forward only (no engine), batch 1",
            Box::new(|| model_only(p, &cdev, 1, steps)),
        ),
        (
            "model forward only (no engine), batch 16",
            Box::new(|| model_only(p, &cdev, 16, steps)),
        ),
    ];
    if let Some(only) = &o.only {
        configs.retain(|(name, _)| name.contains(only.as_str()));
        if configs.is_empty() {
            return Err(format!("--only {only:?} matches no configuration").into());
        }
    }
    for (_, f) in configs.iter_mut() {
        f()?; // warm-up
    }
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for _ in 0..o.repeats {
        for (xs, (_, f)) in per_round.iter_mut().zip(configs.iter_mut()) {
            xs.push(f()?);
        }
    }
    println!(
        "decode throughput, tiny-llama shape (21.6 M params, f32), {PROMPT_LEN} prompt tokens, {} decode steps, {} interleaved rounds, device {device}",
        o.steps, o.repeats
    );
    println!("  {:<42} {:>10} {:>21}", "", "median", "min - max");
    for ((name, _), xs) in configs.iter().zip(&per_round) {
        let (lo, hi) = min_max(xs);
        println!(
            "  {name:<42} {:>10.1} {lo:>10.1} - {hi:>8.1} tok/s",
            median(xs.clone())
        );
    }
    if o.only.is_some() {
        return Ok(()); // the ratios need every configuration
    }
    let ratio = |a: usize, b: usize| -> Vec<f64> {
        per_round[a]
            .iter()
            .zip(&per_round[b])
            .map(|(x, y)| x / y)
            .collect()
    };
    for (label, r) in [
        ("ours / candle-transformers (batch 1)", ratio(1, 0)),
        ("ours batch 16 / batch 1", ratio(2, 1)),
        ("model only: batch 16 / batch 1", ratio(4, 3)),
    ] {
        let (lo, hi) = min_max(&r);
        println!(
            "  {label:<38} {:.2}x  (per round {lo:.2}x - {hi:.2}x)",
            median(r.clone())
        );
    }
    Ok(())
}
