//! Incremental detokenization (vLLM's `detokenize_incrementally`): each step decodes only a
//! short window of recent tokens and appends the text that became final, so the cost per token
//! does not grow with the output length. Text that ends in an incomplete UTF-8 sequence
//! (U+FFFD) is held back until the next token completes it.

use tokenizers::Tokenizer;

use crate::error::{EngineError, Result};

/// Turns a request's generated token ids into text, a few tokens at a time.
#[derive(Debug, Clone, Default)]
pub struct IncrementalDetokenizer {
    /// Start of the window decoded for context (its text is already emitted).
    prefix_offset: usize,
    /// Tokens before this index have all their text emitted.
    read_offset: usize,
    text: String,
}

impl IncrementalDetokenizer {
    /// A detokenizer with no text yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Cuts the text to `len` bytes (after a stop string).
    pub fn truncate(&mut self, len: usize) {
        self.text.truncate(len);
    }

    /// Decodes the tokens of `output_ids` not seen yet (`output_ids` only grows) and returns
    /// the new text.
    ///
    /// # Errors
    /// [`EngineError::Tokenizer`] if the tokenizer fails.
    pub fn update(&mut self, tokenizer: &Tokenizer, output_ids: &[u32]) -> Result<&str> {
        let decode = |ids: &[u32]| {
            tokenizer
                .decode(ids, true)
                .map_err(|e| EngineError::Tokenizer(e.to_string()))
        };
        let before = self.text.len();
        if output_ids.len() <= self.read_offset {
            return Ok(&self.text[before..]);
        }
        let prefix_text = decode(&output_ids[self.prefix_offset..self.read_offset])?;
        let full_text = decode(&output_ids[self.prefix_offset..])?;
        if full_text.len() > prefix_text.len()
            && !full_text.ends_with('\u{FFFD}')
            && full_text.starts_with(prefix_text.as_str())
        {
            self.text.push_str(&full_text[prefix_text.len()..]);
            self.prefix_offset = self.read_offset;
            self.read_offset = output_ids.len();
        } else if !full_text.starts_with(prefix_text.as_str()) {
            // The tokenizer re-segmented the window: fall back to decoding everything.
            let all = decode(output_ids)?;
            self.text = all;
            self.prefix_offset = output_ids.len();
            self.read_offset = output_ids.len();
            return Ok(self.text.get(before..).unwrap_or(""));
        }
        Ok(self.text.get(before..).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::wordlevel::WordLevel;

    #[test]
    fn incremental_text_equals_full_decode() {
        let model = WordLevel::builder()
            .vocab(
                ["<unk>", "the", "gpu", "is", "fast"]
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (w.to_string(), i as u32))
                    .collect(),
            )
            .unk_token("<unk>".into())
            .build()
            .map_err(|e| e.to_string());
        let tok = Tokenizer::new(model.unwrap_or_default());
        let ids = [1u32, 2, 3, 4, 1, 2];
        let mut d = IncrementalDetokenizer::new();
        let mut pieces = String::new();
        for n in 1..=ids.len() {
            pieces.push_str(d.update(&tok, &ids[..n]).unwrap_or("?"));
        }
        let full = tok.decode(&ids, true).unwrap_or_default();
        assert_eq!(full, "the gpu is fast the gpu");
        assert_eq!(d.text(), full);
        assert_eq!(pieces, full);
        d.truncate(3);
        assert_eq!(d.text(), "the");
    }
}
