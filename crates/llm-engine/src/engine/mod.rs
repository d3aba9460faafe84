//! The [`Engine`]: a model, a paged KV cache and a continuous-batching scheduler (vLLM's
//! `LLMEngine`, offline and synchronous).
//!
//! Each [`Engine::step`] asks the scheduler for a batch, copies any copy-on-write blocks, runs
//! one forward pass of the model over all scheduled tokens (prefill chunks and decodes mixed),
//! samples one token for every sequence that reached the end of its known tokens, checks stop
//! conditions, and reports per-request progress with per-token timestamps.
//! [`Engine::generate`] adds prompts and steps until they are all done.
//!
//! ```
//! use llm_engine::{Engine, EngineConfig, LoadFormat, Prompt, SamplingParams};
//!
//! # fn main() -> llm_engine::Result<()> {
//! // tiny-llama with random weights on the CPU: no download needed.
//! let mut engine = Engine::new(EngineConfig {
//!     model: "tiny-llama".into(),
//!     load_format: LoadFormat::Dummy,
//!     max_model_len: Some(128),
//!     kv_cache_bytes: Some(16 << 20),
//!     ..EngineConfig::default()
//! })?;
//! let params = SamplingParams { ignore_eos: true, ..SamplingParams::greedy(4) };
//! let done = engine.generate(&[Prompt::Tokens(vec![5, 6, 7]), Prompt::Tokens(vec![9; 40])], &params)?;
//! assert!(done.iter().all(|d| d.output_token_ids.len() == 4));
//! assert_eq!(engine.num_free_blocks(), engine.kv_cache_info().num_blocks);
//! println!("TTFT {:?} s", done[0].timings.ttft_s());
//! # Ok(())
//! # }
//! ```

mod config;
#[cfg(feature = "cuda")]
mod cuda_graph;
#[cfg(feature = "cuda")]
mod cuda_memory;
pub mod kv_cache_dtype;
pub mod kv_sizing;
mod output;
pub mod profile;
pub mod workload;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use tokenizers::Tokenizer;

pub use config::{parse_dtype, DeviceSpec, EngineConfig, DEFAULT_CPU_KV_CACHE_BYTES};
pub use kv_cache_dtype::KvCacheDtype;
pub use kv_sizing::{KvCacheInfo, MemoryReport};
pub use output::{CompletedRequest, RequestOutput, RequestTimings};

use crate::block_pool::KvBlockPool;
use crate::error::{EngineError, Result};
use crate::models::{load_model, resolve_model, CausalLm, ModelConfig, PagedKvStorage, SeqSlice};
use crate::request::{FinishReason, Prompt, Request, RequestId};
use crate::sampling::{
    argmax, sample_token, IncrementalDetokenizer, RequestOutputKind, SamplingParams,
    StopStringChecker,
};
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerOutput};
use crate::stats::{EngineStats, StepStats};

/// Per-request text state (only for requests that detokenize).
#[derive(Debug, Default)]
struct TextState {
    detokenizer: IncrementalDetokenizer,
    stops: StopStringChecker,
    /// Bytes of text already sent in [`RequestOutputKind::Delta`] outputs.
    emitted: usize,
}

/// An offline LLM engine over one device.
pub struct Engine {
    config: EngineConfig,
    device_spec: DeviceSpec,
    model: Box<dyn CausalLm>,
    model_config: ModelConfig,
    model_name: String,
    tokenizer: Option<Tokenizer>,
    load_time: Duration,
    kv: PagedKvStorage,
    kv_info: KvCacheInfo,
    memory: MemoryReport,
    scheduler: Scheduler,
    max_model_len: usize,
    epoch: Instant,
    stats: EngineStats,
    last_step: StepStats,
    text: HashMap<RequestId, TextState>,
    /// CUDA graphs of small decode steps (`None`: eager, on the CPU or with
    /// `enforce_eager`).
    #[cfg(feature = "cuda")]
    graphs: Option<cuda_graph::DecodeGraphs>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.model_name)
            .field("device", &self.device_spec)
            .field("kv_cache", &self.kv_info)
            .field("max_model_len", &self.max_model_len)
            .finish()
    }
}

/// Rows from which the host samples a step's tokens in parallel (fewer: one by one).
const PARALLEL_SAMPLING_ROWS: usize = 8;

impl Engine {
    /// Loads the model, sizes the KV cache and builds the scheduler.
    ///
    /// # Errors
    /// Configuration errors ([`EngineConfig::validate`]); model loading errors
    /// ([`crate::models::load_model`]); [`EngineError::InvalidConfig`] for a `max_model_len`
    /// past the model's positions, and for an fp8 KV cache on CUDA with a model the kernels do
    /// not support ([`KvCacheDtype::check_cuda_support`]); [`EngineError::KvCacheTooSmall`]
    /// when the budget cannot hold one sequence of `max_model_len` tokens.
    pub fn new(config: EngineConfig) -> Result<Self> {
        let device_spec = config.validate()?;
        let device = device_spec.open()?;
        let source = resolve_model(&config.model);
        let loaded = load_model(
            &source,
            config.load_format,
            config.dtype,
            &device,
            config.seed,
        )?;
        let model_config = loaded.config.clone();
        let max_pos = model_config.max_position_embeddings;
        let max_model_len = config.max_model_len.unwrap_or(max_pos);
        if max_model_len > max_pos {
            return Err(EngineError::InvalidConfig(format!(
                "max_model_len {max_model_len} is longer than the model's max_position_embeddings {max_pos}"
            )));
        }
        if matches!(device_spec, DeviceSpec::Cuda(_)) {
            config
                .kv_cache_dtype
                .check_cuda_support(config.dtype, model_config.head_dim)?;
        }
        let block_size = config.block_size;
        let kv_dtype = config.kv_storage_dtype();
        let bytes_per_block = PagedKvStorage::bytes_per_block(&model_config, block_size, kv_dtype);
        let weights_bytes = model_config.weight_bytes(config.dtype);
        let mut memory = MemoryReport {
            weights_bytes,
            ..MemoryReport::default()
        };
        let num_blocks = match (config.num_kv_blocks_override, device_spec) {
            (Some(n), _) => n,
            (None, DeviceSpec::Cpu) => {
                let budget = kv_sizing::cpu_budget(
                    config.kv_cache_bytes,
                    DEFAULT_CPU_KV_CACHE_BYTES,
                    bytes_per_block,
                    max_model_len,
                    block_size,
                );
                kv_sizing::cpu_num_blocks(budget, bytes_per_block)?
            }
            (None, DeviceSpec::Cuda(_)) => profile::gpu_num_blocks(
                loaded.model.as_ref(),
                &config,
                max_model_len,
                bytes_per_block,
                &device,
                &mut memory,
            )?,
        };
        let needed = max_model_len.div_ceil(block_size);
        if num_blocks < needed {
            return Err(EngineError::KvCacheTooSmall {
                needed,
                have: num_blocks,
                max_model_len,
            });
        }
        let kv = PagedKvStorage::new(&model_config, num_blocks, block_size, kv_dtype, &device)?;
        let kv_info = KvCacheInfo::new(num_blocks, block_size, bytes_per_block, max_model_len);
        memory.kv_cache_bytes = kv_info.total_bytes;
        profile::record_device_memory(&device, &mut memory)?;
        let pool = KvBlockPool::new(num_blocks, config.enable_prefix_caching)?;
        let scheduler = Scheduler::new(
            SchedulerConfig {
                max_num_seqs: config.max_num_seqs,
                max_num_batched_tokens: config.max_num_batched_tokens,
                max_model_len,
                enable_chunked_prefill: config.enable_chunked_prefill,
            },
            pool,
            block_size,
        )?;
        tracing::info!(
            model = %loaded.name,
            device = %device_spec,
            load_time_s = loaded.load_time.as_secs_f64(),
            num_blocks,
            bytes_per_block,
            kv_cache_dtype = %config.kv_cache_dtype,
            max_model_len,
            "engine ready"
        );
        #[cfg(feature = "cuda")]
        let graphs = (device.is_cuda() && !config.enforce_eager && cuda_graphs_allowed())
            .then(|| cuda_graph::DecodeGraphs::new(max_model_len.div_ceil(block_size)));
        Ok(Engine {
            config,
            device_spec,
            model: loaded.model,
            model_config,
            model_name: loaded.name,
            tokenizer: loaded.tokenizer,
            load_time: loaded.load_time,
            kv,
            kv_info,
            memory,
            scheduler,
            max_model_len,
            epoch: Instant::now(),
            stats: EngineStats::default(),
            last_step: StepStats::default(),
            text: HashMap::new(),
            #[cfg(feature = "cuda")]
            graphs,
        })
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The model's configuration.
    pub fn model_config(&self) -> &ModelConfig {
        &self.model_config
    }

    /// The model's display name.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The device the engine runs on.
    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// The device as configured.
    pub fn device_spec(&self) -> DeviceSpec {
        self.device_spec
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.model.dtype()
    }

    /// The tokenizer, if the model has one.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// Wall time of loading the model (config, weights, tokenizer).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The dtype K/V are stored in ([`KvCacheDtype::Auto`]: the compute dtype).
    pub fn kv_cache_dtype(&self) -> KvCacheDtype {
        self.config.kv_cache_dtype
    }

    /// The dtype of the KV cache's tensors (the compute dtype, or [`DType::F8E4M3`]).
    pub fn kv_storage_dtype(&self) -> DType {
        self.kv.dtype()
    }

    /// The longest sequence (prompt + output) a request may reach.
    pub fn max_model_len(&self) -> usize {
        self.max_model_len
    }

    /// The KV cache's size.
    pub fn kv_cache_info(&self) -> KvCacheInfo {
        self.kv_info
    }

    /// Fraction of KV blocks in use now.
    pub fn kv_cache_usage(&self) -> f64 {
        self.scheduler.kv().pool().usage()
    }

    /// Free KV blocks now.
    pub fn num_free_blocks(&self) -> usize {
        self.scheduler.kv().pool().num_free()
    }

    /// Where the memory goes.
    pub fn memory(&self) -> MemoryReport {
        self.memory
    }

    /// Totals since the engine started.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The last step's figures.
    pub fn last_step_stats(&self) -> &StepStats {
        &self.last_step
    }

    /// Requests waiting or running.
    pub fn num_unfinished_requests(&self) -> usize {
        self.scheduler.num_unfinished()
    }

    /// Whether any request is waiting or running.
    pub fn has_unfinished_requests(&self) -> bool {
        self.scheduler.has_unfinished()
    }

    /// Seconds since the engine's epoch (the clock of [`RequestTimings`]).
    pub fn now_s(&self) -> f64 {
        self.secs(Instant::now())
    }

    fn secs(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.epoch).as_secs_f64()
    }

    /// Token ids of a prompt (text is encoded with the tokenizer, special tokens added as its
    /// post-processor says, like vLLM).
    ///
    /// # Errors
    /// [`EngineError::NoTokenizer`] for text without a tokenizer; [`EngineError::Tokenizer`].
    pub fn encode(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Tokens(ids) => Ok(ids.clone()),
            Prompt::Text(text) => {
                let tok = self
                    .tokenizer
                    .as_ref()
                    .ok_or_else(|| EngineError::NoTokenizer {
                        model: self.model_name.clone(),
                    })?;
                tok.encode(text.as_str(), true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| EngineError::Tokenizer(format!("encoding the prompt: {e}")))
            }
        }
    }

    /// Adds a request; it runs in the coming steps.
    ///
    /// # Errors
    /// [`EngineError::EmptyPrompt`], [`EngineError::PromptTooLong`],
    /// [`EngineError::TokenOutOfVocab`], [`EngineError::InvalidSamplingParams`],
    /// [`EngineError::NoTokenizer`] (text prompt or stop strings without a tokenizer).
    pub fn add_request(
        &mut self,
        prompt: impl Into<Prompt>,
        params: SamplingParams,
    ) -> Result<RequestId> {
        let arrival = Instant::now();
        let ids = self.encode(&prompt.into())?;
        let vocab = self.model_config.vocab_size;
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::TokenOutOfVocab {
                token: bad,
                vocab_size: vocab,
            });
        }
        if !params.stop.is_empty() && self.tokenizer.is_none() {
            return Err(EngineError::NoTokenizer {
                model: self.model_name.clone(),
            });
        }
        let wants_text = self.tokenizer.is_some() && (params.detokenize || !params.stop.is_empty());
        let stops = StopStringChecker::new(&params.stop);
        let eos = self.model_config.eos_token_ids.clone();
        let id = self.scheduler.add_request(ids, params, eos, arrival)?;
        if wants_text {
            self.text.insert(
                id,
                TextState {
                    detokenizer: IncrementalDetokenizer::new(),
                    stops,
                    emitted: 0,
                },
            );
        }
        self.stats.num_requests += 1;
        Ok(id)
    }

    /// Aborts a request: it is dropped from the queues and its KV blocks are freed. Returns
    /// its final output, or `None` if it is unknown or already finished.
    ///
    /// # Errors
    /// Internal pool errors (a bug).
    pub fn abort(&mut self, id: RequestId) -> Result<Option<RequestOutput>> {
        if !self.scheduler.abort(id)? {
            return Ok(None);
        }
        self.stats.num_finished += 1;
        Ok(self.final_output(id, Vec::new()))
    }

    /// Runs one iteration: schedule, forward, sample, check stops. Returns the progress of
    /// every request that ran (an empty list when there is nothing to do).
    ///
    /// # Errors
    /// Tensor errors from the forward pass; [`EngineError::Stalled`] if requests are pending
    /// but nothing could be scheduled (a bug); tokenizer errors.
    pub fn step(&mut self) -> Result<Vec<RequestOutput>> {
        let t0 = Instant::now();
        let out = self.scheduler.schedule()?;
        self.last_step = out.stats.clone();
        if out.is_empty() {
            if self.scheduler.has_unfinished() {
                return Err(EngineError::Stalled {
                    waiting: out.stats.num_waiting,
                    running: out.stats.num_running,
                });
            }
            return Ok(Vec::new());
        }
        self.stats.record_step(&out.stats);
        for &(src, dst) in &out.blocks_to_copy {
            self.kv.copy_block(src, dst)?;
        }
        self.stats.host.schedule_s += t0.elapsed().as_secs_f64();
        let sampled = self.run_model(&out)?;
        let now = Instant::now();
        let updates = self.scheduler.update_from_output(&out, &sampled, now)?;
        let mut outputs = Vec::with_capacity(updates.len());
        for u in updates {
            let mut finished = u.finished;
            if u.new_token.is_some() {
                self.stats.num_generated_tokens += 1;
                if let Some(reason) = self.update_text(u.request_id)? {
                    if finished.is_none() {
                        self.scheduler.finish_request(u.request_id, reason)?;
                        finished = Some(reason);
                    }
                }
            }
            let new_tokens: Vec<u32> = u.new_token.into_iter().collect();
            if finished.is_some() {
                self.stats.num_finished += 1;
                if let Some(o) = self.final_output(u.request_id, new_tokens) {
                    outputs.push(o);
                }
            } else if let Some(o) = self.running_output(u.request_id, new_tokens) {
                outputs.push(o);
            }
        }
        self.stats.host.update_s += now.elapsed().as_secs_f64();
        Ok(outputs)
    }

    /// Runs the model on a scheduled batch and samples a token for each sequence that wants one.
    fn run_model(&mut self, out: &SchedulerOutput) -> Result<Vec<Option<u32>>> {
        let slices: Vec<SeqSlice> = out
            .seqs
            .iter()
            .map(|s| SeqSlice {
                token_ids: s.token_ids.clone(),
                start_pos: s.start_pos,
                block_table: s.block_table.clone(),
                want_logits: s.want_logits,
            })
            .collect();
        let t0 = Instant::now();
        #[cfg(feature = "cuda")]
        if let Some(tokens) = self.graph_decode(out, &slices)? {
            self.stats.host.sample_s += t0.elapsed().as_secs_f64();
            return Ok(tokens);
        }
        let logits = if self.model.device().is_cpu() {
            // On the CPU every layer is several rayon-parallel ops. Called from outside the
            // pool, each one wakes the workers and puts this thread to sleep until they finish
            // (two futex round trips per op, ~100 ops per step); run from inside the pool, the
            // ops are plain work-stealing joins. So the whole forward pass runs on a worker.
            let (model, kv, slices) = (&mut self.model, &mut self.kv, &slices);
            rayon::scope(move |_| model.forward(slices, kv))?
        } else {
            self.model.forward(&slices, &mut self.kv)?
        };
        let wanting: Vec<&Request> = out
            .seqs
            .iter()
            .filter(|s| s.want_logits)
            .filter_map(|s| self.scheduler.request(s.request_id))
            .collect();
        if wanting.len() != out.seqs.iter().filter(|s| s.want_logits).count() {
            return Err(EngineError::InvalidBatch(
                "a scheduled request vanished".into(),
            ));
        }
        let t1 = Instant::now();
        let tokens = self.sample(&logits, &wanting)?;
        self.stats.host.forward_s += (t1 - t0).as_secs_f64();
        self.stats.host.sample_s += t1.elapsed().as_secs_f64();
        let mut it = tokens.into_iter();
        Ok(out
            .seqs
            .iter()
            .map(|s| if s.want_logits { it.next() } else { None })
            .collect())
    }

    /// A decode step of a few sequences through a CUDA graph, when one applies: the graph
    /// takes the argmax of an all-greedy batch, else the logits, sampled here.
    #[cfg(feature = "cuda")]
    fn graph_decode(
        &mut self,
        out: &SchedulerOutput,
        slices: &[SeqSlice],
    ) -> Result<Option<Vec<Option<u32>>>> {
        let Some(graphs) = self.graphs.as_mut() else {
            return Ok(None);
        };
        if !graphs.applies(slices, self.kv.block_size()) {
            return Ok(None);
        }
        let reqs: Vec<&Request> = out
            .seqs
            .iter()
            .filter_map(|s| self.scheduler.request(s.request_id))
            .collect();
        if reqs.len() != out.seqs.len() {
            return Err(EngineError::InvalidBatch(
                "a scheduled request vanished".into(),
            ));
        }
        let greedy = reqs.iter().all(|r| r.params.is_greedy());
        let Some(step) = graphs.run(self.model.as_ref(), &mut self.kv, slices, greedy)? else {
            return Ok(None);
        };
        self.stats.decode_graph_steps += 1;
        let tokens = match step {
            cuda_graph::GraphStep::Ids(ids) => ids,
            cuda_graph::GraphStep::Logits(logits) => self.sample(&logits, &reqs)?,
        };
        Ok(Some(tokens.into_iter().map(Some).collect()))
    }

    fn sample(&self, logits: &Tensor, reqs: &[&Request]) -> Result<Vec<u32>> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let (n, vocab) = logits.dims2()?;
        if n != reqs.len() {
            return Err(EngineError::InvalidBatch(format!(
                "model returned {n} logit rows for {} sequences",
                reqs.len()
            )));
        }
        // On a GPU, an all-greedy batch takes its argmax on the device (n ids come back, not
        // n × vocab logits).
        if !self.model.device().is_cpu() && reqs.iter().all(|r| r.params.is_greedy()) {
            #[cfg(feature = "cuda")]
            if logits.device().is_cuda() {
                return cuda_graph::greedy_ids_to_host(&crate::cuda::argmax_rows(logits)?);
            }
            return Ok(logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?);
        }
        #[cfg(feature = "cuda")]
        if logits.device().is_cuda() {
            if let Some(tokens) = self.sample_top_k_on_device(logits, reqs)? {
                return Ok(tokens);
            }
        }
        let flat = logits.flatten_all()?.to_vec1::<f32>()?;
        let seeds: Vec<u64> = reqs.iter().map(|r| self.request_seed(r)).collect();
        // Each row is an O(vocab) pass (an exp per logit when sampling): rows go to the rayon
        // pool in parallel; each row's draw depends only on its own seed and logits.
        let pick = |(i, r): (usize, &&Request)| -> Result<u32> {
            let row = &flat[i * vocab..(i + 1) * vocab];
            let t = if r.params.is_greedy() {
                argmax(row)
            } else {
                sample_token(row, &r.params, seeds[i], r.num_output_tokens())
            };
            t.ok_or_else(|| EngineError::InvalidBatch(format!("no finite logit for {}", r.id)))
        };
        if n >= PARALLEL_SAMPLING_ROWS {
            use rayon::prelude::*;
            reqs.par_iter().enumerate().map(pick).collect()
        } else {
            reqs.iter().enumerate().map(pick).collect()
        }
    }

    /// A batch of greedy and top-k requests (`top_k` up to
    /// [`crate::cuda::MAX_DEVICE_TOP_K`]) on CUDA: the device selects each row's candidates,
    /// only those cross to the host, which draws as [`sample_token`] would from the whole row.
    /// `None` when a request needs the whole row (temperature or top-p alone) or
    /// `LLM_ENGINE_DEVICE_TOPK=0`.
    #[cfg(feature = "cuda")]
    fn sample_top_k_on_device(
        &self,
        logits: &Tensor,
        reqs: &[&Request],
    ) -> Result<Option<Vec<u32>>> {
        static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let enabled = *ENABLED
            .get_or_init(|| crate::cuda::env_choice("LLM_ENGINE_DEVICE_TOPK", &[0, 1]) != Some(0));
        let fits = |r: &&Request| {
            r.params.is_greedy() || (1..=crate::cuda::MAX_DEVICE_TOP_K).contains(&r.params.top_k)
        };
        if !enabled || !reqs.iter().all(fits) {
            return Ok(None);
        }
        let rows: Vec<crate::cuda::TopKRow> = reqs
            .iter()
            .map(|r| {
                if r.params.is_greedy() {
                    crate::cuda::TopKRow {
                        k: 1,
                        inv_temperature: 1.0,
                        greedy: true,
                    }
                } else {
                    crate::cuda::TopKRow {
                        k: r.params.top_k,
                        inv_temperature: 1.0 / r.params.temperature,
                        greedy: false,
                    }
                }
            })
            .collect();
        let cands = crate::cuda::topk_rows(logits, &rows)?;
        let mut tokens = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.iter().enumerate() {
            let row = cands.row(i);
            let t = if r.params.is_greedy() {
                row.first().map(|c| c.0)
            } else {
                let seed = self.request_seed(r);
                crate::sampling::sample_from_candidates(
                    &row,
                    &r.params,
                    seed,
                    r.num_output_tokens(),
                )
            };
            tokens.push(t.ok_or_else(|| {
                EngineError::InvalidBatch(format!("no finite logit for {}", r.id))
            })?);
        }
        Ok(Some(tokens))
    }

    /// A running request's output of this step, as its [`RequestOutputKind`] asks (`None` for
    /// [`RequestOutputKind::FinalOnly`]).
    fn running_output(&mut self, id: RequestId, new_tokens: Vec<u32>) -> Option<RequestOutput> {
        let r = self.scheduler.request(id)?;
        let kind = r.params.output_kind;
        if kind == RequestOutputKind::FinalOnly {
            return None;
        }
        let delta = kind == RequestOutputKind::Delta;
        let text = match self.text.get_mut(&id) {
            Some(t) if delta => {
                let full = t.detokenizer.text();
                let settled = t.stops.settled_len(full).max(t.emitted);
                let new = full.get(t.emitted..settled).unwrap_or_default().to_string();
                t.emitted = settled;
                Some(new)
            }
            Some(t) => Some(t.detokenizer.text().to_string()),
            None => None,
        };
        let (output_token_ids, timings) = if delta {
            (new_tokens.clone(), self.delta_timings(r, new_tokens.len()))
        } else {
            (r.output_token_ids().to_vec(), self.timings(r))
        };
        Some(RequestOutput {
            request_id: r.id,
            new_token_ids: new_tokens,
            output_token_ids,
            text,
            finish_reason: None,
            timings,
            completed: None,
        })
    }

    /// The seed of a request's draws: its own, else derived from the engine's and its id.
    fn request_seed(&self, r: &Request) -> u64 {
        r.params
            .seed
            .unwrap_or_else(|| self.config.seed ^ r.id.0.wrapping_mul(0x2545_F491_4F6C_DD1D))
    }

    /// Detokenizes a request's new token and checks its stop strings.
    fn update_text(&mut self, id: RequestId) -> Result<Option<FinishReason>> {
        let (Some(state), Some(tok), Some(req)) = (
            self.text.get_mut(&id),
            self.tokenizer.as_ref(),
            self.scheduler.request(id),
        ) else {
            return Ok(None);
        };
        state.detokenizer.update(tok, req.output_token_ids())?;
        if let Some(cut) = state.stops.check(state.detokenizer.text()) {
            state.detokenizer.truncate(cut);
            return Ok(Some(FinishReason::Stop));
        }
        Ok(None)
    }

    fn timings(&self, req: &Request) -> RequestTimings {
        self.delta_timings(req, req.token_times.len())
    }

    /// A request's timings with only its last `new` token times.
    fn delta_timings(&self, req: &Request, new: usize) -> RequestTimings {
        let times = &req.token_times[req.token_times.len().saturating_sub(new)..];
        RequestTimings {
            arrival_s: self.secs(req.arrival),
            first_scheduled_s: req.first_scheduled.map(|t| self.secs(t)),
            token_times_s: times.iter().map(|&t| self.secs(t)).collect(),
        }
    }

    /// Builds the last output of a finished request and forgets it.
    fn final_output(&mut self, id: RequestId, new_token_ids: Vec<u32>) -> Option<RequestOutput> {
        let req = self.scheduler.take_finished(id)?;
        let state = self.text.remove(&id);
        let text = state.as_ref().map(|t| t.detokenizer.text().to_string());
        let reason = match req.status {
            crate::request::RequestStatus::Finished(r) => r,
            _ => FinishReason::Abort,
        };
        self.stats.num_cached_prompt_tokens += req.num_cached_prompt_tokens as u64;
        let timings = self.timings(&req);
        let output_token_ids = req.output_token_ids().to_vec();
        // A delta stream ends with what it has not sent yet; the record has everything.
        let (out_ids, out_text, out_timings) = if req.params.output_kind == RequestOutputKind::Delta
        {
            let rest = state.as_ref().map(|t| {
                let full = t.detokenizer.text();
                full.get(t.emitted.min(full.len())..)
                    .unwrap_or_default()
                    .to_string()
            });
            (
                new_token_ids.clone(),
                rest,
                self.delta_timings(&req, new_token_ids.len()),
            )
        } else {
            (output_token_ids.clone(), text.clone(), timings.clone())
        };
        let completed = CompletedRequest {
            request_id: id,
            output_token_ids,
            text,
            finish_reason: reason,
            num_cached_prompt_tokens: req.num_cached_prompt_tokens,
            num_preemptions: req.num_preemptions,
            timings,
            prompt_token_ids: req.prompt_token_ids,
        };
        Some(RequestOutput {
            request_id: id,
            new_token_ids,
            output_token_ids: out_ids,
            text: out_text,
            finish_reason: Some(reason),
            timings: out_timings,
            completed: Some(Box::new(completed)),
        })
    }

    /// Generates completions for `prompts` (all with `params`), stepping until they are done;
    /// results in prompt order. Other requests already in the engine run alongside.
    ///
    /// # Errors
    /// As [`Engine::add_request`] (nothing is added if any prompt is invalid) and
    /// [`Engine::step`].
    pub fn generate(
        &mut self,
        prompts: &[Prompt],
        params: &SamplingParams,
    ) -> Result<Vec<CompletedRequest>> {
        self.generate_with_progress(prompts, params, |_, _| {})
    }

    /// Like [`Engine::generate`], calling `progress(finished, total)` whenever requests finish.
    ///
    /// # Errors
    /// As [`Engine::generate`].
    pub fn generate_with_progress(
        &mut self,
        prompts: &[Prompt],
        params: &SamplingParams,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<CompletedRequest>> {
        // Validate every prompt before adding any.
        params.validate()?;
        for p in prompts {
            let ids = self.encode(p)?;
            if ids.is_empty() {
                return Err(EngineError::EmptyPrompt);
            }
            if ids.len() > self.max_model_len {
                return Err(EngineError::PromptTooLong {
                    len: ids.len(),
                    max_model_len: self.max_model_len,
                });
            }
        }
        // Only finished requests are read here: no per-step outputs.
        let params = SamplingParams {
            output_kind: RequestOutputKind::FinalOnly,
            ..params.clone()
        };
        let mut index = HashMap::with_capacity(prompts.len());
        for (i, p) in prompts.iter().enumerate() {
            let id = self.add_request(p.clone(), params.clone())?;
            index.insert(id, i);
        }
        let total = prompts.len();
        let mut done: Vec<Option<CompletedRequest>> = vec![None; total];
        let mut finished = 0;
        while finished < total {
            let outputs = self.step()?;
            if outputs.is_empty() && !self.has_unfinished_requests() {
                break;
            }
            let before = finished;
            for o in outputs {
                if let (Some(&i), Some(c)) = (index.get(&o.request_id), o.completed) {
                    done[i] = Some(*c);
                    finished += 1;
                }
            }
            if finished != before {
                progress(finished, total);
            }
        }
        done.into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.ok_or_else(|| EngineError::Stalled {
                    waiting: total - i,
                    running: 0,
                })
            })
            .collect()
    }
}

/// `LLM_ENGINE_CUDA_GRAPHS=0` turns decode graphs off for every engine of the process (an A/B
/// switch; `EngineConfig::enforce_eager` is the per-engine one).
#[cfg(feature = "cuda")]
fn cuda_graphs_allowed() -> bool {
    crate::cuda::env_choice("LLM_ENGINE_CUDA_GRAPHS", &[0, 1]) != Some(0)
}
