//! Benchmark prompts: vLLM's random dataset (uniform random token ids of a fixed length) and
//! the seed tutorial's text prompts (`"Write a story about {i}: "`).

use rand::{Rng, SeedableRng};
use tokenizers::Tokenizer;

use crate::error::{EngineError, Result};
use crate::request::Prompt;

/// `n` prompts of `input_len` token ids drawn uniformly from `0..vocab_size`, skipping the
/// ids in `exclude` (e.g. BOS/EOS), reproducible from `seed`.
///
/// # Errors
/// [`EngineError::InvalidConfig`] when no id is left to draw from.
pub fn random_token_prompts(
    n: usize,
    input_len: usize,
    vocab_size: usize,
    exclude: &[u32],
    seed: u64,
) -> Result<Vec<Prompt>> {
    let allowed: Vec<u32> = (0..vocab_size as u32)
        .filter(|t| !exclude.contains(t))
        .collect();
    if allowed.is_empty() {
        return Err(EngineError::InvalidConfig(
            "no token id left to build random prompts from".into(),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Ok((0..n)
        .map(|_| {
            Prompt::Tokens(
                (0..input_len)
                    .map(|_| allowed[rng.random_range(0..allowed.len())])
                    .collect(),
            )
        })
        .collect())
}

/// The seed tutorial's prompts: `"Write a story about {i}: "` for `i` in `first..first + n`.
pub fn seed_text_prompts(first: usize, n: usize) -> Vec<String> {
    (first..first + n)
        .map(|i| format!("Write a story about {i}: "))
        .collect()
}

/// Text as a prompt the model can take: tokenized when there is a tokenizer; otherwise (dummy
/// weights have none) each UTF-8 byte becomes token id `byte % vocab_size`, so the prompt has
/// a realistic length.
///
/// # Errors
/// [`EngineError::Tokenizer`] if the tokenizer fails.
pub fn text_prompt(text: &str, tokenizer: Option<&Tokenizer>, vocab_size: usize) -> Result<Prompt> {
    match tokenizer {
        Some(_) => Ok(Prompt::Text(text.to_string())),
        None => Ok(Prompt::Tokens(
            text.bytes()
                .map(|b| u32::from(b) % vocab_size.max(1) as u32)
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_prompts_are_reproducible_and_in_range() -> Result<()> {
        let a = random_token_prompts(4, 10, 50, &[0, 1], 3)?;
        let b = random_token_prompts(4, 10, 50, &[0, 1], 3)?;
        assert_eq!(a, b);
        assert_ne!(a, random_token_prompts(4, 10, 50, &[0, 1], 4)?);
        for p in &a {
            let Prompt::Tokens(ids) = p else {
                return Err(EngineError::EmptyPrompt);
            };
            assert_eq!(ids.len(), 10);
            assert!(ids.iter().all(|&t| (2..50).contains(&t)));
        }
        assert!(random_token_prompts(1, 1, 2, &[0, 1], 0).is_err());
        Ok(())
    }

    #[test]
    fn seed_prompts_and_byte_fallback() -> Result<()> {
        assert_eq!(
            seed_text_prompts(3, 2),
            vec!["Write a story about 3: ", "Write a story about 4: "]
        );
        assert_eq!(text_prompt("Hi", None, 100)?, Prompt::Tokens(vec![72, 5]));
        Ok(())
    }
}
