//! What one scheduling step hands the engine, and what the engine hands back.

use crate::block_pool::BlockId;
use crate::request::{FinishReason, RequestId};
use crate::scheduler::kv_cache_manager::BlockCopy;
use crate::stats::StepStats;

/// One request's share of a step: tokens to run and where their K/V go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledSeq {
    /// The request.
    pub request_id: RequestId,
    /// Tokens to run (a prefill chunk, or the one last sampled token for a decode).
    pub token_ids: Vec<u32>,
    /// Position of the first of them; positions before it are in the cache.
    pub start_pos: usize,
    /// The request's block table, covering `start_pos + token_ids.len()` positions.
    pub block_table: Vec<BlockId>,
    /// Whether this slice reaches the end of the request's known tokens, so a token is
    /// sampled from its last position (false for a non-final prefill chunk).
    pub want_logits: bool,
}

impl ScheduledSeq {
    /// Whether this is a decode step (one token after the prompt) rather than prefill.
    pub fn is_decode(&self, num_prompt_tokens: usize) -> bool {
        self.token_ids.len() == 1 && self.start_pos >= num_prompt_tokens
    }
}

/// Everything the engine needs to run one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulerOutput {
    /// The batch, running requests first (arrival order), then newly admitted ones.
    pub seqs: Vec<ScheduledSeq>,
    /// Block copies to do before the forward pass (copy-on-write), `(source, destination)`.
    pub blocks_to_copy: Vec<BlockCopy>,
    /// Requests preempted in this step (back in the waiting queue).
    pub preempted: Vec<RequestId>,
    /// The step's figures.
    pub stats: StepStats,
}

impl SchedulerOutput {
    /// Whether nothing was scheduled.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Tokens scheduled.
    pub fn num_tokens(&self) -> usize {
        self.seqs.iter().map(|s| s.token_ids.len()).sum()
    }
}

/// What happened to one scheduled request after the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqUpdate {
    /// The request.
    pub request_id: RequestId,
    /// The token sampled for it, if its slice wanted logits.
    pub new_token: Option<u32>,
    /// Set if it finished (token-level stop: EOS, stop token, length).
    pub finished: Option<FinishReason>,
}
