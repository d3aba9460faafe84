//! Prompt files: JSON Lines (one record a line) or one JSON array (ShareGPT's own
//! `ShareGPT_V3_unfiltered_cleaned_split.json`), with two record kinds:
//!
//! - ShareGPT: `{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...]}`
//!   — the prompt is the first human (`human`/`user`) turn, the reply the next `gpt`/
//!   `assistant` turn after it;
//! - plain: `{"prompt": "...", "output_len": N}` (`output_len` optional).
//!
//! A line that is not JSON, or a record of neither kind, is an error naming the file and the
//! line; a conversation without a human turn is skipped (vLLM filters those too), as is a
//! prompt that does not fit the model's `max_model_len`.

use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;

use super::{text_prompt, PromptEncoder, RequestSpec};
use crate::error::{BenchError, Result};

/// One usable record of a prompt file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRecord {
    /// 1-based line (JSONL) or element (JSON array) it came from.
    pub line: usize,
    /// The prompt text.
    pub prompt: String,
    /// The reference reply (ShareGPT), if any.
    pub reply: Option<String>,
    /// The record's own output length, if it gives one.
    pub output_len: Option<usize>,
}

fn dataset_error(path: &Path, line: Option<usize>, reason: impl Into<String>) -> BenchError {
    BenchError::Dataset {
        path: path.display().to_string(),
        line,
        reason: reason.into(),
    }
}

/// The usable records of `path`, in file order (unusable conversations skipped).
///
/// # Errors
/// [`BenchError::Dataset`] naming the file (and the line, or the array element) when it
/// cannot be read, a line is not JSON, or a record is of neither kind; and when no record
/// is usable.
pub fn read_records(path: &Path) -> Result<Vec<DatasetRecord>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| dataset_error(path, None, format!("cannot read: {e}")))?;
    let mut records = Vec::new();
    let mut skipped = 0usize;
    let mut take = |line: usize, v: &Value| -> Result<()> {
        match parse_record(line, v).map_err(|r| dataset_error(path, Some(line), r))? {
            Some(r) => records.push(r),
            None => skipped += 1,
        }
        Ok(())
    };
    if text.trim_start().starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| dataset_error(path, Some(e.line()), format!("not a JSON array: {e}")))?;
        for (i, v) in values.iter().enumerate() {
            take(i + 1, v)?;
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .map_err(|e| dataset_error(path, Some(i + 1), format!("not JSON: {e}")))?;
            take(i + 1, &v)?;
        }
    }
    if skipped > 0 {
        tracing::warn!(skipped, file = %path.display(), "records without a human turn skipped");
    }
    if records.is_empty() {
        return Err(dataset_error(path, None, "no usable prompt in the file"));
    }
    Ok(records)
}

/// A record, `Ok(None)` for a conversation with no human turn, `Err(reason)` when malformed.
fn parse_record(line: usize, v: &Value) -> std::result::Result<Option<DatasetRecord>, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_string())?;
    if let Some(conv) = obj.get("conversations") {
        let turns = conv
            .as_array()
            .ok_or_else(|| "\"conversations\" is not an array".to_string())?;
        let mut parsed = Vec::with_capacity(turns.len());
        for (i, t) in turns.iter().enumerate() {
            let from = t.get("from").and_then(Value::as_str);
            let value = t.get("value").and_then(Value::as_str);
            match (from, value) {
                (Some(f), Some(v)) => parsed.push((f, v)),
                _ => {
                    return Err(format!(
                        "conversation turn {} needs string \"from\" and \"value\"",
                        i + 1
                    ))
                }
            }
        }
        let Some(h) = parsed
            .iter()
            .position(|(f, _)| matches!(*f, "human" | "user"))
        else {
            return Ok(None);
        };
        let reply = parsed[h + 1..]
            .iter()
            .find(|(f, _)| matches!(*f, "gpt" | "assistant" | "chatgpt" | "bard"))
            .map(|(_, v)| v.to_string());
        return Ok(Some(DatasetRecord {
            line,
            prompt: parsed[h].1.to_string(),
            reply,
            output_len: None,
        }));
    }
    if let Some(p) = obj.get("prompt") {
        let prompt = p
            .as_str()
            .ok_or_else(|| "\"prompt\" is not a string".to_string())?;
        let output_len = match obj.get("output_len") {
            None | Some(Value::Null) => None,
            Some(n) => match n.as_u64() {
                Some(n) if n >= 1 => Some(n as usize),
                _ => {
                    return Err(format!(
                        "\"output_len\" must be a whole number ≥ 1, got {n}"
                    ))
                }
            },
        };
        if prompt.is_empty() {
            return Err("\"prompt\" is empty".into());
        }
        return Ok(Some(DatasetRecord {
            line,
            prompt: prompt.to_string(),
            reply: None,
            output_len,
        }));
    }
    Err("expected a \"conversations\" (ShareGPT) or a \"prompt\" record".into())
}

/// `n` requests from the file: records in a seeded random order (repeated when the file has
/// fewer than `n`), output length from the record, else the reply's tokens, else `fallback`.
pub(super) fn build_from_file(
    path: &Path,
    fallback: usize,
    n: usize,
    rng: &mut StdRng,
    encoder: &dyn PromptEncoder,
) -> Result<Vec<RequestSpec>> {
    let max_len = encoder.max_model_len();
    let mut usable = Vec::new();
    for r in read_records(path)? {
        let prompt_len = encoder
            .count_tokens(&r.prompt)
            .unwrap_or(r.prompt.len())
            .max(1);
        if prompt_len >= max_len {
            continue;
        }
        let wanted = r
            .output_len
            .or_else(|| r.reply.as_deref().and_then(|t| encoder.count_tokens(t)))
            .unwrap_or(fallback)
            .max(1);
        usable.push((r, wanted.min(max_len - prompt_len)));
    }
    if usable.is_empty() {
        return Err(dataset_error(
            path,
            None,
            format!("no prompt is shorter than max_model_len ({max_len})"),
        ));
    }
    let mut order: Vec<usize> = (0..usable.len()).collect();
    order.shuffle(rng);
    if n > usable.len() {
        tracing::warn!(
            records = usable.len(),
            requests = n,
            "fewer usable records than requests: records are repeated"
        );
    }
    order
        .iter()
        .cycle()
        .take(n)
        .map(|&i| {
            let (r, output_len) = &usable[i];
            Ok(RequestSpec {
                prompt: text_prompt(&r.prompt, encoder)?,
                output_len: *output_len,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::{FakeEncoder, BYTES};
    use crate::dataset::DatasetSpec;
    use llm_engine::Prompt;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    const SHAREGPT: &str = r#"{"conversations":[{"from":"human","value":"Hello there friend"},{"from":"gpt","value":"Hi how are you today"}]}
{"prompt":"Plain prompt","output_len":9}

{"conversations":[{"from":"gpt","value":"no human turn"}]}
{"prompt":"No length"}
"#;

    #[test]
    fn reads_both_kinds_and_skips_conversations_without_a_human_turn() -> Result<()> {
        let f = file(SHAREGPT);
        let r = read_records(f.path())?;
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].prompt, "Hello there friend");
        assert_eq!(r[0].reply.as_deref(), Some("Hi how are you today"));
        assert_eq!((r[1].line, r[1].output_len), (2, Some(9)));
        assert_eq!((r[2].line, r[2].output_len), (5, None));
        Ok(())
    }

    #[test]
    fn output_len_from_record_reply_or_fallback() -> Result<()> {
        let f = file(SHAREGPT);
        let spec = DatasetSpec::File {
            path: f.path().to_path_buf(),
            output_len: 11,
        };
        let words = FakeEncoder {
            tokenizer: true,
            max_len: 1000,
        };
        let mut got: Vec<(Prompt, usize)> = spec
            .build(3, 7, 0, &words)?
            .into_iter()
            .map(|r| (r.prompt, r.output_len))
            .collect();
        got.sort_by_key(|(_, n)| *n);
        assert_eq!(
            got,
            vec![
                (Prompt::Text("Hello there friend".into()), 5),
                (Prompt::Text("Plain prompt".into()), 9),
                (Prompt::Text("No length".into()), 11),
            ]
        );
        // No tokenizer: the reply cannot be counted, so the fallback; byte prompts.
        let bytes = spec.build(6, 7, 0, &BYTES)?;
        assert_eq!(bytes.len(), 6, "records repeat to reach n");
        assert!(bytes.iter().all(|r| matches!(r.prompt, Prompt::Tokens(_))));
        assert!(bytes.iter().any(|r| r.output_len == 11));
        assert_eq!(bytes, spec.build(6, 7, 0, &BYTES)?, "reproducible");
        Ok(())
    }

    #[test]
    fn json_arrays_are_read_too() -> Result<()> {
        let f = file(r#"[{"prompt":"a b"},{"conversations":[{"from":"user","value":"q"}]}]"#);
        let r = read_records(f.path())?;
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].reply, None);
        Ok(())
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        for (text, line, needle) in [
            ("{\"prompt\":\"ok\"}\n\n{not json\n", 3, "not JSON"),
            ("{\"prompt\":\"ok\"}\n{\"text\":\"x\"}\n", 2, "expected a"),
            ("{\"prompt\":5}\n", 1, "not a string"),
            ("{\"prompt\":\"x\",\"output_len\":0}\n", 1, "output_len"),
            ("{\"conversations\":[{\"from\":\"human\"}]}\n", 1, "turn 1"),
            ("[1,\n2,\n", 3, "not a JSON array"),
        ] {
            let f = file(text);
            let e = read_records(f.path()).expect_err(text).to_string();
            assert!(e.contains(&f.path().display().to_string()), "{e}");
            assert!(e.contains(&format!("line {line}:")), "{text:?}: {e}");
            assert!(e.contains(needle), "{e}");
        }
        let missing = read_records(Path::new("/no/such/file.jsonl"))
            .expect_err("missing")
            .to_string();
        assert!(missing.contains("/no/such/file.jsonl") && missing.contains("cannot read"));
        let f = file("\n\n");
        assert!(read_records(f.path())
            .expect_err("empty")
            .to_string()
            .contains("no usable prompt"));
    }

    #[test]
    fn prompts_longer_than_the_model_are_dropped() {
        let f = file("{\"prompt\":\"one two three four\"}\n");
        let spec = DatasetSpec::File {
            path: f.path().to_path_buf(),
            output_len: 4,
        };
        let short = FakeEncoder {
            tokenizer: true,
            max_len: 4,
        };
        let e = spec.build(1, 0, 0, &short).expect_err("too long");
        assert!(e.to_string().contains("max_model_len (4)"), "{e}");
        let ok = FakeEncoder {
            tokenizer: true,
            max_len: 6,
        };
        let r = spec.build(1, 0, 0, &ok).expect("fits");
        assert_eq!(
            r[0].output_len, 2,
            "output clamped to max_model_len - prompt"
        );
    }
}
