//! [`SamplingParams`]: how one request picks its tokens and when it stops (vLLM's names).

use crate::error::{EngineError, Result};

/// What [`crate::Engine::step`] reports for a request that is still running (vLLM's
/// `RequestOutputKind`). Its last output always comes, with the full
/// [`crate::CompletedRequest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutputKind {
    /// Every step: all tokens, text and token times so far (copies grow with the output:
    /// O(tokens) host work per request per step).
    #[default]
    Cumulative,
    /// Every step: only what is new since the request's previous output (tokens, text, token
    /// times), for streaming. Text that could still turn out to start a stop string is held
    /// back until it cannot.
    Delta,
    /// Nothing until the request finishes (offline batches and benchmarks: no per-step host
    /// work per request).
    FinalOnly,
}

/// Sampling and stopping settings of one request, named as in vLLM's `SamplingParams`.
///
/// `temperature == 0` means greedy (argmax). Filters apply in vLLM's order: temperature,
/// then top-k, then top-p, then min-p, then a draw from what is left.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SamplingParams {
    /// Softmax temperature; 0 = greedy.
    pub temperature: f32,
    /// Keep the smallest set of most likely tokens whose probability adds up to `top_p`
    /// (in (0, 1]; 1 = off).
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens whose probability is below `min_p` × the top token's (in [0, 1]; 0 = off).
    pub min_p: f32,
    /// Seed of this request's random draws: the same seed gives the same tokens, whatever
    /// else is in the batch. `None`: derived from the engine's seed and the request id.
    pub seed: Option<u64>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Stop when the generated text contains one of these (the string is left out of the text).
    pub stop: Vec<String>,
    /// Stop when one of these token ids is generated (the token is kept).
    pub stop_token_ids: Vec<u32>,
    /// Keep generating past the end-of-sequence token (for benchmarks).
    pub ignore_eos: bool,
    /// Decode the generated tokens to text (needs a tokenizer; stop strings need it).
    pub detokenize: bool,
    /// What each step reports while the request runs.
    pub output_kind: RequestOutputKind,
}

impl Default for SamplingParams {
    /// vLLM's defaults: temperature 1, no top-k/top-p/min-p, 16 tokens.
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
            max_tokens: 16,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            detokenize: true,
            output_kind: RequestOutputKind::Cumulative,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of at most `max_tokens` tokens (the seed's `temperature=0.0`).
    pub fn greedy(max_tokens: usize) -> Self {
        SamplingParams {
            temperature: 0.0,
            max_tokens,
            ..SamplingParams::default()
        }
    }

    /// Whether this request decodes greedily (temperature below 1e-5, as in vLLM).
    pub fn is_greedy(&self) -> bool {
        self.temperature < 1e-5
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// [`EngineError::InvalidSamplingParams`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(EngineError::InvalidSamplingParams(msg));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1".into());
        }
        if self.stop.iter().any(String::is_empty) {
            return bad("stop strings must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(SamplingParams::default().validate().is_ok());
        assert!(SamplingParams::greedy(1).is_greedy());
        for bad in [
            SamplingParams {
                temperature: -1.0,
                ..Default::default()
            },
            SamplingParams {
                temperature: f32::NAN,
                ..Default::default()
            },
            SamplingParams {
                top_p: 0.0,
                ..Default::default()
            },
            SamplingParams {
                top_p: 1.5,
                ..Default::default()
            },
            SamplingParams {
                min_p: -0.1,
                ..Default::default()
            },
            SamplingParams {
                max_tokens: 0,
                ..Default::default()
            },
            SamplingParams {
                stop: vec![String::new()],
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
