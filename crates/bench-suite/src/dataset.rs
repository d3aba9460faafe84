//! Workloads: which prompts a benchmark sends and how many tokens each asks for.
//!
//! | dataset | prompts | output lengths |
//! |---|---|---|
//! | [`DatasetSpec::Random`] | uniform random token ids, lengths from a [`LengthSpec`] (vLLM's `random` dataset) | a [`LengthSpec`] |
//! | [`DatasetSpec::Seed`] | the seed tutorial's `"Write a story about {i}: "` | a [`LengthSpec`] |
//! | [`DatasetSpec::File`] | a JSONL (or JSON array) file: ShareGPT conversations or `{"prompt": ...}` records | the reply's token count when tokenizable, the record's `output_len`, else the fallback |
//!
//! [`DatasetSpec::build`] turns a spec into `n` [`RequestSpec`]s, reproducibly from a seed,
//! through a [`PromptEncoder`] (the engine, or a fake in tests) that knows the vocabulary and
//! the tokenizer. A malformed or unreadable file is a [`BenchError`] that names the file and
//! the line.

mod file;
mod length;

use std::path::PathBuf;

use llm_engine::engine::workload;
use llm_engine::{Engine, Prompt};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

pub use file::{read_records, DatasetRecord};
pub use length::LengthSpec;

/// One request of a workload: its prompt and how many tokens to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// The prompt (token ids, or text for a model with a tokenizer).
    pub prompt: Prompt,
    /// Output tokens to generate (EOS is ignored unless the run says otherwise).
    pub output_len: usize,
}

/// What a workload needs to know about the model: vocabulary, special ids, tokenizer.
/// [`Engine`] implements it; tests use a fake.
pub trait PromptEncoder {
    /// Vocabulary size (random token ids are drawn below it).
    fn vocab_size(&self) -> usize;
    /// Ids random prompts must not contain (BOS, EOS).
    fn special_token_ids(&self) -> Vec<u32>;
    /// Whether text prompts are tokenized (else each byte becomes one token id).
    fn has_tokenizer(&self) -> bool;
    /// Tokens of `text` with the tokenizer (no special tokens added), `None` without one or
    /// if tokenizing fails.
    fn count_tokens(&self, text: &str) -> Option<usize>;
    /// Longest sequence the model takes (prompt + output).
    fn max_model_len(&self) -> usize;
}

impl PromptEncoder for Engine {
    fn vocab_size(&self) -> usize {
        self.model_config().vocab_size
    }

    fn special_token_ids(&self) -> Vec<u32> {
        let cfg = self.model_config();
        let mut ids = cfg.eos_token_ids.clone();
        ids.extend(cfg.bos_token_id);
        ids
    }

    fn has_tokenizer(&self) -> bool {
        self.tokenizer().is_some()
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.tokenizer()?
            .encode(text, false)
            .ok()
            .map(|e| e.get_ids().len())
    }

    fn max_model_len(&self) -> usize {
        Engine::max_model_len(self)
    }
}

/// Which workload to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dataset_name", rename_all = "snake_case")]
pub enum DatasetSpec {
    /// Random token ids (vLLM's `random` dataset).
    Random {
        /// Prompt lengths in tokens.
        input_len: LengthSpec,
        /// Output lengths in tokens.
        output_len: LengthSpec,
    },
    /// The seed tutorial's text prompts.
    Seed {
        /// Output lengths in tokens.
        output_len: LengthSpec,
    },
    /// Prompts from a file (JSONL or a JSON array): ShareGPT conversations or plain prompts.
    File {
        /// The file.
        path: PathBuf,
        /// Output length of records that give none and whose reply cannot be tokenized.
        output_len: usize,
    },
}

impl DatasetSpec {
    /// Short name for reports: `random`, `seed` or `file`.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetSpec::Random { .. } => "random",
            DatasetSpec::Seed { .. } => "seed",
            DatasetSpec::File { .. } => "file",
        }
    }

    /// The nominal prompt length (fixed or mean), if the spec sets one.
    pub fn nominal_input_len(&self) -> Option<f64> {
        match self {
            DatasetSpec::Random { input_len, .. } => Some(input_len.mean()),
            _ => None,
        }
    }

    /// The nominal output length (fixed or mean).
    pub fn nominal_output_len(&self) -> f64 {
        match self {
            DatasetSpec::Random { output_len, .. } | DatasetSpec::Seed { output_len } => {
                output_len.mean()
            }
            DatasetSpec::File { output_len, .. } => *output_len as f64,
        }
    }

    /// `n` requests, reproducible from `seed`. `first` offsets the seed prompts' numbering
    /// (so warm-up prompts differ from the timed ones).
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] for `n == 0` or an empty vocabulary;
    /// [`BenchError::Dataset`] for an unreadable or malformed file (with the line) or one
    /// with no usable record.
    pub fn build(
        &self,
        n: usize,
        seed: u64,
        first: usize,
        encoder: &dyn PromptEncoder,
    ) -> Result<Vec<RequestSpec>> {
        if n == 0 {
            return Err(BenchError::InvalidArgument(
                "a workload needs at least one request".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        match self {
            DatasetSpec::Random {
                input_len,
                output_len,
            } => {
                let vocab = encoder.vocab_size();
                let exclude = encoder.special_token_ids();
                (0..n)
                    .map(|i| {
                        let len = input_len.sample(&mut rng);
                        let prompt = workload::random_token_prompts(
                            1,
                            len,
                            vocab,
                            &exclude,
                            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                                .wrapping_add(i as u64),
                        )?
                        .pop()
                        .ok_or_else(|| {
                            BenchError::InvalidArgument("no random prompt was drawn".into())
                        })?;
                        Ok(RequestSpec {
                            prompt,
                            output_len: output_len.sample(&mut rng),
                        })
                    })
                    .collect()
            }
            DatasetSpec::Seed { output_len } => workload::seed_text_prompts(first, n)
                .iter()
                .map(|text| {
                    Ok(RequestSpec {
                        prompt: text_prompt(text, encoder)?,
                        output_len: output_len.sample(&mut rng),
                    })
                })
                .collect(),
            DatasetSpec::File { path, output_len } => {
                file::build_from_file(path, *output_len, n, &mut rng, encoder)
            }
        }
    }
}

/// Text as a prompt for this model: text when it has a tokenizer, else one id per byte.
pub(crate) fn text_prompt(text: &str, encoder: &dyn PromptEncoder) -> Result<Prompt> {
    if encoder.has_tokenizer() {
        Ok(Prompt::Text(text.to_string()))
    } else {
        Ok(workload::text_prompt(text, None, encoder.vocab_size())?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A model without a tokenizer: vocabulary 100, ids 0 and 1 special.
    pub(crate) struct FakeEncoder {
        pub tokenizer: bool,
        pub max_len: usize,
    }

    impl PromptEncoder for FakeEncoder {
        fn vocab_size(&self) -> usize {
            100
        }
        fn special_token_ids(&self) -> Vec<u32> {
            vec![0, 1]
        }
        fn has_tokenizer(&self) -> bool {
            self.tokenizer
        }
        fn count_tokens(&self, text: &str) -> Option<usize> {
            // One token per word.
            self.tokenizer.then(|| text.split_whitespace().count())
        }
        fn max_model_len(&self) -> usize {
            self.max_len
        }
    }

    pub(crate) const BYTES: FakeEncoder = FakeEncoder {
        tokenizer: false,
        max_len: 1000,
    };

    fn tokens(p: &Prompt) -> Vec<u32> {
        match p {
            Prompt::Tokens(t) => t.clone(),
            Prompt::Text(_) => Vec::new(),
        }
    }

    #[test]
    fn random_is_reproducible_with_lengths_in_range() -> Result<()> {
        let spec = DatasetSpec::Random {
            input_len: "10..20".parse()?,
            output_len: LengthSpec::Fixed(7),
        };
        let a = spec.build(50, 3, 0, &BYTES)?;
        assert_eq!(a, spec.build(50, 3, 0, &BYTES)?);
        assert_ne!(a, spec.build(50, 4, 0, &BYTES)?);
        let lens: Vec<usize> = a.iter().map(|r| tokens(&r.prompt).len()).collect();
        assert!(lens.iter().all(|l| (10..=20).contains(l)), "{lens:?}");
        assert!(lens.iter().min() < lens.iter().max(), "lengths vary");
        assert!(a.iter().all(|r| r.output_len == 7));
        assert!(a
            .iter()
            .flat_map(|r| tokens(&r.prompt))
            .all(|t| (2..100).contains(&t)));
        // Two prompts of the same length still differ.
        assert_ne!(tokens(&a[0].prompt), tokens(&a[1].prompt));
        Ok(())
    }

    #[test]
    fn seed_prompts_are_numbered_from_first() -> Result<()> {
        let spec = DatasetSpec::Seed {
            output_len: LengthSpec::Fixed(5),
        };
        let text = FakeEncoder {
            tokenizer: true,
            max_len: 100,
        };
        let r = spec.build(2, 0, 3, &text)?;
        assert_eq!(r[0].prompt, Prompt::Text("Write a story about 3: ".into()));
        assert_eq!(r[1].prompt, Prompt::Text("Write a story about 4: ".into()));
        // Without a tokenizer: one id per byte.
        let b = spec.build(1, 0, 0, &BYTES)?;
        assert_eq!(tokens(&b[0].prompt).len(), 23);
        assert!(spec.build(0, 0, 0, &BYTES).is_err());
        Ok(())
    }
}
