//! The continuous-batching [`Scheduler`] (vLLM v1's design): plain Rust, no tensors.
//!
//! Scheduling is per iteration: every step builds a new batch, so finished requests leave and
//! waiting ones join between any two forward passes. One token budget
//! (`max_num_batched_tokens`) covers prefill and decode alike:
//!
//! 1. **Running requests first**, oldest first: each gets the tokens it has not computed yet
//!    (1 for a decode, the rest of its prompt, or a chunk of it, for a prefill), within the
//!    budget. When the KV pool has no block for it, the most recently arrived running request
//!    is **preempted by recompute**: its blocks are freed and it goes back to the front of the
//!    waiting queue, to be prefilled again over its prompt and the tokens it already generated.
//! 2. **Then waiting requests, FCFS**, if nothing was preempted this step: while there is
//!    budget, a free sequence slot (`max_num_seqs`) and KV blocks. A long prompt is split into
//!    chunks (chunked prefill) that run alongside other requests' decodes. The first waiting
//!    request that does not fit stops admission: no later request overtakes it.
//!
//! New requests first look for their prompt's full blocks in the prefix cache.
//!
//! | Operation | Cost |
//! |-----------|------|
//! | [`Scheduler::schedule`] | O(running + admitted requests + blocks touched) |
//! | [`Scheduler::update_from_output`] | O(scheduled requests) |
//! | [`Scheduler::abort`] | O(requests) (queue removal) |
//!
//! Preemption by recompute costs the recomputed tokens' FLOPs but needs no swap space; with
//! prefix caching on, a preempted request's blocks often survive in the cache and the
//! recompute is mostly cache hits.

mod kv_cache_manager;
mod output;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

pub use kv_cache_manager::{BlockCopy, CachedPrefix, KvCacheManager};
pub use output::{ScheduledSeq, SchedulerOutput, SeqUpdate};

use crate::block_pool::KvBlockPool;
use crate::error::{EngineError, Result};
use crate::request::{FinishReason, Request, RequestId, RequestStatus};
use crate::sampling::SamplingParams;
use crate::stats::StepStats;

/// The scheduler's budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Most requests in the running set (and so in one batch).
    pub max_num_seqs: usize,
    /// Most tokens in one batch (prefill and decode together).
    pub max_num_batched_tokens: usize,
    /// Longest sequence (prompt + output) a request may reach.
    pub max_model_len: usize,
    /// Split prompts longer than the remaining budget into chunks (vLLM's chunked prefill).
    /// Without it, a prompt waits until its whole length fits in one step's budget.
    pub enable_chunked_prefill: bool,
}

impl SchedulerConfig {
    /// Checks the budgets.
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`] for a zero budget, or (without chunked prefill) a
    /// token budget smaller than `max_model_len`.
    pub fn validate(&self) -> Result<()> {
        if self.max_num_seqs == 0 {
            return Err(EngineError::InvalidConfig(
                "max_num_seqs must be at least 1".into(),
            ));
        }
        if self.max_num_batched_tokens == 0 {
            return Err(EngineError::InvalidConfig(
                "max_num_batched_tokens must be at least 1".into(),
            ));
        }
        if self.max_model_len == 0 {
            return Err(EngineError::InvalidConfig(
                "max_model_len must be at least 1".into(),
            ));
        }
        if !self.enable_chunked_prefill && self.max_num_batched_tokens < self.max_model_len {
            return Err(EngineError::InvalidConfig(format!(
                "without chunked prefill, max_num_batched_tokens ({}) must be at least max_model_len ({})",
                self.max_num_batched_tokens, self.max_model_len
            )));
        }
        Ok(())
    }
}

/// Iteration-level scheduler over waiting and running queues and a KV block pool.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    kv: KvCacheManager,
    requests: HashMap<RequestId, Request>,
    /// Waiting requests; preempted ones are pushed at the front.
    waiting: VecDeque<RequestId>,
    /// Running requests in arrival (id) order.
    running: Vec<RequestId>,
    next_id: u64,
}

impl Scheduler {
    /// A scheduler with these budgets over `pool` (blocks of `block_size` tokens).
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`] for bad budgets; [`EngineError::KvCacheTooSmall`] if the
    /// pool cannot hold one sequence of `max_model_len` tokens.
    pub fn new(config: SchedulerConfig, pool: KvBlockPool, block_size: usize) -> Result<Self> {
        config.validate()?;
        if block_size == 0 {
            return Err(EngineError::InvalidConfig(
                "block_size must be at least 1".into(),
            ));
        }
        let needed = config.max_model_len.div_ceil(block_size);
        if pool.num_blocks() < needed {
            return Err(EngineError::KvCacheTooSmall {
                needed,
                have: pool.num_blocks(),
                max_model_len: config.max_model_len,
            });
        }
        Ok(Scheduler {
            config,
            kv: KvCacheManager::new(pool, block_size),
            requests: HashMap::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            next_id: 0,
        })
    }

    /// The budgets.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The KV block tables and pool.
    pub fn kv(&self) -> &KvCacheManager {
        &self.kv
    }

    /// Adds a request at the back of the waiting queue; ids are handed out in arrival order.
    ///
    /// # Errors
    /// [`EngineError::EmptyPrompt`], [`EngineError::PromptTooLong`] (longer than
    /// `max_model_len`), or [`EngineError::InvalidSamplingParams`].
    pub fn add_request(
        &mut self,
        prompt_token_ids: Vec<u32>,
        params: SamplingParams,
        eos_token_ids: Vec<u32>,
        arrival: Instant,
    ) -> Result<RequestId> {
        if prompt_token_ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if prompt_token_ids.len() > self.config.max_model_len {
            return Err(EngineError::PromptTooLong {
                len: prompt_token_ids.len(),
                max_model_len: self.config.max_model_len,
            });
        }
        params.validate()?;
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let req = Request::new(id, prompt_token_ids, params, eos_token_ids, arrival);
        self.requests.insert(id, req);
        self.waiting.push_back(id);
        Ok(id)
    }

    /// A live or finished-but-not-yet-removed request.
    pub fn request(&self, id: RequestId) -> Option<&Request> {
        self.requests.get(&id)
    }

    /// Waiting requests, front first.
    pub fn waiting(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.waiting.iter().copied()
    }

    /// Running requests, oldest first.
    pub fn running(&self) -> &[RequestId] {
        &self.running
    }

    /// Requests not finished yet.
    pub fn num_unfinished(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    /// Whether any request is waiting or running.
    pub fn has_unfinished(&self) -> bool {
        self.num_unfinished() > 0
    }

    fn insert_running(&mut self, id: RequestId) {
        let at = self.running.partition_point(|&r| r < id);
        self.running.insert(at, id);
    }

    fn preempt_last_running(&mut self) -> Result<Option<RequestId>> {
        let Some(id) = self.running.pop() else {
            return Ok(None);
        };
        self.kv.free(id)?;
        if let Some(r) = self.requests.get_mut(&id) {
            r.status = RequestStatus::Preempted;
            r.num_computed_tokens = 0;
            r.num_preemptions += 1;
        }
        self.waiting.push_front(id);
        Ok(Some(id))
    }

    /// Builds the next step's batch (see the module docs for the policy).
    ///
    /// # Errors
    /// KV pool errors (a bug, e.g. a double free).
    pub fn schedule(&mut self) -> Result<SchedulerOutput> {
        let now = Instant::now();
        let mut out = SchedulerOutput::default();
        let mut budget = self.config.max_num_batched_tokens;
        let mut decode_tokens = 0usize;

        // 1. Running requests, oldest first.
        let mut idx = 0;
        while idx < self.running.len() && budget > 0 {
            let id = self.running[idx];
            let (computed, remaining) = match self.requests.get(&id) {
                Some(r) => (
                    r.num_computed_tokens,
                    r.num_tokens() - r.num_computed_tokens,
                ),
                None => (0, 0),
            };
            if remaining == 0 {
                idx += 1;
                continue;
            }
            let num_new = remaining.min(budget);
            let mut scheduled = true;
            loop {
                if let Some(copies) = self.kv.allocate_slots(id, computed, num_new, None)? {
                    out.blocks_to_copy.extend(copies);
                    break;
                }
                match self.preempt_last_running()? {
                    Some(victim) => {
                        out.preempted.push(victim);
                        if victim == id {
                            scheduled = false;
                            break;
                        }
                    }
                    None => {
                        scheduled = false;
                        break;
                    }
                }
            }
            if !scheduled {
                break;
            }
            let seq = self.scheduled_seq(id, computed, num_new);
            if let Some(r) = self.requests.get(&id) {
                if seq.is_decode(r.num_prompt_tokens()) {
                    decode_tokens += 1;
                }
            }
            out.seqs.push(seq);
            budget -= num_new;
            idx += 1;
        }

        // 2. Waiting requests, FCFS, unless this step had to preempt.
        if out.preempted.is_empty() {
            while budget > 0 && self.running.len() < self.config.max_num_seqs {
                let Some(&id) = self.waiting.front() else {
                    break;
                };
                let Some(req) = self.requests.get(&id) else {
                    self.waiting.pop_front();
                    continue;
                };
                let tokens = req.all_token_ids.clone();
                let prefix = self.kv.find_cached_prefix(&tokens);
                let computed = prefix.num_computed_tokens;
                let remaining = tokens.len() - computed;
                if !self.config.enable_chunked_prefill && remaining > budget {
                    break;
                }
                let num_new = remaining.min(budget);
                let Some(copies) = self
                    .kv
                    .allocate_slots(id, computed, num_new, Some(&prefix))?
                else {
                    break;
                };
                out.blocks_to_copy.extend(copies);
                self.waiting.pop_front();
                if let Some(r) = self.requests.get_mut(&id) {
                    if r.status == RequestStatus::Waiting {
                        r.num_cached_prompt_tokens = computed;
                    }
                    r.status = RequestStatus::Running;
                    r.num_computed_tokens = computed;
                    r.first_scheduled.get_or_insert(now);
                }
                self.insert_running(id);
                let seq = self.scheduled_seq(id, computed, num_new);
                out.seqs.push(seq);
                budget -= num_new;
            }
        }

        let num_tokens = out.num_tokens();
        let pool = self.kv.pool();
        out.stats = StepStats {
            num_running: self.running.len(),
            num_waiting: self.waiting.len(),
            num_scheduled_seqs: out.seqs.len(),
            num_scheduled_tokens: num_tokens,
            num_prefill_tokens: num_tokens - decode_tokens,
            num_decode_tokens: decode_tokens,
            num_preempted: out.preempted.len(),
            kv_usage: pool.usage(),
            num_free_blocks: pool.num_free(),
            prefix_cache_queries: pool.prefix_cache().map_or(0, |c| c.queries()),
            prefix_cache_hits: pool.prefix_cache().map_or(0, |c| c.hits()),
        };
        Ok(out)
    }

    fn scheduled_seq(&self, id: RequestId, computed: usize, num_new: usize) -> ScheduledSeq {
        let (token_ids, want_logits) = match self.requests.get(&id) {
            Some(r) => (
                r.all_token_ids[computed..computed + num_new].to_vec(),
                computed + num_new == r.num_tokens(),
            ),
            None => (Vec::new(), false),
        };
        ScheduledSeq {
            request_id: id,
            token_ids,
            start_pos: computed,
            block_table: self.kv.block_table(id).to_vec(),
            want_logits,
        }
    }

    /// Records a finished forward pass: each scheduled request's tokens are now computed, and
    /// `sampled[i]` is the token sampled for `out.seqs[i]` (`None` where it wanted no logits).
    /// Full blocks go to the prefix cache; requests that hit a token-level stop (EOS, stop
    /// token, `max_tokens`, `max_model_len`) finish and free their blocks.
    ///
    /// # Errors
    /// [`EngineError::InvalidBatch`] if `sampled` does not match `out`; pool errors (a bug).
    pub fn update_from_output(
        &mut self,
        out: &SchedulerOutput,
        sampled: &[Option<u32>],
        now: Instant,
    ) -> Result<Vec<SeqUpdate>> {
        if sampled.len() != out.seqs.len() {
            return Err(EngineError::InvalidBatch(format!(
                "{} sampled tokens for {} scheduled sequences",
                sampled.len(),
                out.seqs.len()
            )));
        }
        let mut updates = Vec::with_capacity(out.seqs.len());
        for (seq, &token) in out.seqs.iter().zip(sampled) {
            let id = seq.request_id;
            let Some(req) = self.requests.get_mut(&id) else {
                continue;
            };
            if req.status != RequestStatus::Running {
                // Aborted between scheduling and this update.
                continue;
            }
            req.num_computed_tokens = seq.start_pos + seq.token_ids.len();
            let mut update = SeqUpdate {
                request_id: id,
                new_token: None,
                finished: None,
            };
            if seq.want_logits {
                let Some(t) = token else {
                    return Err(EngineError::InvalidBatch(format!(
                        "no token sampled for {id}, which wanted logits"
                    )));
                };
                req.append_output_token(t, now);
                update.new_token = Some(t);
                update.finished = req.check_stop(self.config.max_model_len);
            }
            let computed = req.num_computed_tokens;
            self.kv
                .cache_full_blocks(id, &req.all_token_ids, computed)?;
            if let Some(reason) = update.finished {
                self.finish(id, reason)?;
            }
            updates.push(update);
        }
        Ok(updates)
    }

    fn finish(&mut self, id: RequestId, reason: FinishReason) -> Result<()> {
        self.kv.free(id)?;
        if let Some(pos) = self.running.iter().position(|&r| r == id) {
            self.running.remove(pos);
        } else if let Some(pos) = self.waiting.iter().position(|&r| r == id) {
            self.waiting.remove(pos);
        }
        if let Some(r) = self.requests.get_mut(&id) {
            r.status = RequestStatus::Finished(reason);
        }
        Ok(())
    }

    /// Finishes a live request with `reason` (the engine uses it for stop strings), freeing its
    /// blocks. Returns `false` if it is unknown or already finished.
    ///
    /// # Errors
    /// Pool errors (a bug).
    pub fn finish_request(&mut self, id: RequestId, reason: FinishReason) -> Result<bool> {
        match self.requests.get(&id) {
            Some(r) if !r.is_finished() => {
                self.finish(id, reason)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Aborts a request (waiting or running): it finishes with [`FinishReason::Abort`] and its
    /// blocks are freed. Returns `false` if it is unknown or already finished.
    ///
    /// # Errors
    /// Pool errors (a bug).
    pub fn abort(&mut self, id: RequestId) -> Result<bool> {
        self.finish_request(id, FinishReason::Abort)
    }

    /// Removes a finished request and returns it (live requests stay).
    pub fn take_finished(&mut self, id: RequestId) -> Option<Request> {
        if self.requests.get(&id)?.is_finished() {
            self.requests.remove(&id)
        } else {
            None
        }
    }
}
