//! One generation request as the engine tracks it: its prompt, the tokens generated so far,
//! how many of its tokens already have K/V in the paged cache, and its timestamps.
//!
//! A [`Request`] is plain data (no tensors). The [`crate::scheduler::Scheduler`] owns every
//! live request; the engine reads them to build forward batches and to report progress.

use std::fmt;
use std::time::Instant;

use crate::sampling::SamplingParams;

/// Identifies a request inside one engine (assigned in arrival order, starting at 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req-{}", self.0)
    }
}

/// A prompt: text (tokenized by the model's tokenizer) or token ids used as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Text, encoded with the model's tokenizer (special tokens such as BOS added as the
    /// tokenizer's post-processor says).
    Text(String),
    /// Token ids, fed to the model unchanged (vLLM's `prompt_token_ids`).
    Tokens(Vec<u32>),
}

impl From<&str> for Prompt {
    fn from(text: &str) -> Self {
        Prompt::Text(text.to_owned())
    }
}

impl From<String> for Prompt {
    fn from(text: String) -> Self {
        Prompt::Text(text)
    }
}

impl From<Vec<u32>> for Prompt {
    fn from(ids: Vec<u32>) -> Self {
        Prompt::Tokens(ids)
    }
}

/// Why a request stopped generating (vLLM's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token, a stop token id or a stop string was produced.
    Stop,
    /// `max_tokens` was reached, or the sequence reached `max_model_len`.
    Length,
    /// The request was aborted by the caller.
    Abort,
}

impl FinishReason {
    /// The name vLLM uses (`"stop"`, `"length"`, `"abort"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// In the waiting queue, never scheduled yet.
    Waiting,
    /// In the running set: it holds KV blocks and gets tokens scheduled each step.
    Running,
    /// Preempted by recompute: its blocks were freed and it waits (at the front of the
    /// queue) to be prefilled again over its prompt and the tokens generated so far.
    Preempted,
    /// Done; it holds no blocks.
    Finished(FinishReason),
}

/// A request's state: prompt, generated tokens, cache progress, timestamps.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request's id.
    pub id: RequestId,
    /// The prompt's token ids.
    pub prompt_token_ids: Vec<u32>,
    /// Prompt followed by the generated tokens (what the model sees).
    pub all_token_ids: Vec<u32>,
    /// Sampling settings.
    pub params: SamplingParams,
    /// The model's end-of-sequence tokens (honoured unless `params.ignore_eos`).
    pub eos_token_ids: Vec<u32>,
    /// Where the request is in its life.
    pub status: RequestStatus,
    /// How many of `all_token_ids` have K/V in the cache (from prefix-cache hits or forwards).
    pub num_computed_tokens: usize,
    /// Prompt tokens found in the prefix cache when the request was first scheduled.
    pub num_cached_prompt_tokens: usize,
    /// How many times the request was preempted.
    pub num_preemptions: usize,
    /// When the request was added.
    pub arrival: Instant,
    /// When it was first scheduled.
    pub first_scheduled: Option<Instant>,
    /// When each output token was produced (one entry per output token).
    pub token_times: Vec<Instant>,
}

impl Request {
    /// A new waiting request.
    pub fn new(
        id: RequestId,
        prompt_token_ids: Vec<u32>,
        params: SamplingParams,
        eos_token_ids: Vec<u32>,
        arrival: Instant,
    ) -> Self {
        Request {
            id,
            all_token_ids: prompt_token_ids.clone(),
            prompt_token_ids,
            params,
            eos_token_ids,
            status: RequestStatus::Waiting,
            num_computed_tokens: 0,
            num_cached_prompt_tokens: 0,
            num_preemptions: 0,
            arrival,
            first_scheduled: None,
            token_times: Vec::new(),
        }
    }

    /// Number of prompt tokens.
    pub fn num_prompt_tokens(&self) -> usize {
        self.prompt_token_ids.len()
    }

    /// Number of generated tokens so far.
    pub fn num_output_tokens(&self) -> usize {
        self.all_token_ids.len() - self.prompt_token_ids.len()
    }

    /// Prompt plus generated tokens.
    pub fn num_tokens(&self) -> usize {
        self.all_token_ids.len()
    }

    /// The generated token ids.
    pub fn output_token_ids(&self) -> &[u32] {
        &self.all_token_ids[self.prompt_token_ids.len()..]
    }

    /// Whether the request has finished.
    pub fn is_finished(&self) -> bool {
        matches!(self.status, RequestStatus::Finished(_))
    }

    /// Appends a generated token produced at `at`.
    pub fn append_output_token(&mut self, token: u32, at: Instant) {
        self.all_token_ids.push(token);
        self.token_times.push(at);
    }

    /// Checks the token-level stop conditions after a token was appended: a stop token id,
    /// EOS (unless `ignore_eos`), `max_tokens`, or `max_model_len`. Stop strings need text
    /// and are checked by the engine.
    pub fn check_stop(&self, max_model_len: usize) -> Option<FinishReason> {
        let last = *self.output_token_ids().last()?;
        if self.params.stop_token_ids.contains(&last) {
            return Some(FinishReason::Stop);
        }
        if !self.params.ignore_eos && self.eos_token_ids.contains(&last) {
            return Some(FinishReason::Stop);
        }
        if self.num_output_tokens() >= self.params.max_tokens || self.num_tokens() >= max_model_len
        {
            return Some(FinishReason::Length);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(params: SamplingParams) -> Request {
        Request::new(RequestId(0), vec![1, 2, 3], params, vec![9], Instant::now())
    }

    #[test]
    fn stop_conditions() {
        let mut r = req(SamplingParams::greedy(3));
        assert_eq!(r.check_stop(100), None);
        r.append_output_token(5, Instant::now());
        assert_eq!(r.check_stop(100), None);
        r.append_output_token(9, Instant::now());
        assert_eq!(r.check_stop(100), Some(FinishReason::Stop));

        let mut r = req(SamplingParams {
            ignore_eos: true,
            ..SamplingParams::greedy(2)
        });
        r.append_output_token(9, Instant::now());
        assert_eq!(r.check_stop(100), None);
        r.append_output_token(9, Instant::now());
        assert_eq!(r.check_stop(100), Some(FinishReason::Length));

        let mut r = req(SamplingParams {
            stop_token_ids: vec![7],
            ..SamplingParams::greedy(10)
        });
        r.append_output_token(7, Instant::now());
        assert_eq!(r.check_stop(100), Some(FinishReason::Stop));

        let mut r = req(SamplingParams::greedy(10));
        r.append_output_token(4, Instant::now());
        assert_eq!(r.check_stop(4), Some(FinishReason::Length));
        assert_eq!(r.output_token_ids(), &[4]);
        assert_eq!(r.num_tokens(), 4);
    }
}
