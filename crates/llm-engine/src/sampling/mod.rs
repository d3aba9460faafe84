//! Sampling on host logits: [`SamplingParams`] (vLLM's names), greedy/temperature/top-k/top-p/
//! min-p with a per-request seed ([`sample_token`]), and stop strings on incrementally
//! decoded text ([`StopStringChecker`]).

mod detokenizer;
mod params;
mod sampler;
mod stop_strings;

pub use detokenizer::IncrementalDetokenizer;
pub use params::{RequestOutputKind, SamplingParams};
pub use sampler::{argmax, sample_from_candidates, sample_token, token_seed};
pub use stop_strings::StopStringChecker;
