//! Loading a Hugging Face `tokenizer.json` (tokenizers crate) and encoding / decoding with it.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{EngineError, Result};

/// Loads `tokenizer.json` from `dir`, or `None` when the folder has none.
///
/// # Errors
/// [`EngineError::Tokenizer`] when the file exists but cannot be parsed.
pub fn load_tokenizer(dir: &Path) -> Result<Option<Tokenizer>> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Ok(None);
    }
    Tokenizer::from_file(&path)
        .map(Some)
        .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))
}

/// Encodes `text` to token ids (without adding special tokens).
///
/// # Errors
/// [`EngineError::Tokenizer`] when encoding fails.
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    tokenizer
        .encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| EngineError::Tokenizer(format!("encoding failed: {e}")))
}

/// Decodes token ids to text, skipping special tokens.
///
/// # Errors
/// [`EngineError::Tokenizer`] when decoding fails.
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    tokenizer
        .decode(ids, true)
        .map_err(|e| EngineError::Tokenizer(format!("decoding failed: {e}")))
}
