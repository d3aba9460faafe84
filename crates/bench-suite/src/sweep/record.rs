//! One sweep point's outcome, and which failures count as "out of memory".

use serde::{Deserialize, Serialize};

use crate::error::BenchError;

/// How a point ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    /// It ran; the record has its result.
    Ok,
    /// It did not fit in memory; the record says what was needed.
    OutOfMemory,
    /// It failed for another reason; the record has the message.
    Error,
}

impl PointStatus {
    /// `ok`, `out_of_memory` or `error` (the JSON spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            PointStatus::Ok => "ok",
            PointStatus::OutOfMemory => "out_of_memory",
            PointStatus::Error => "error",
        }
    }

    /// Whether a resumed sweep keeps this point instead of running it again (`ok` and
    /// `out_of_memory`: an error may have been transient).
    pub fn is_final(self) -> bool {
        matches!(self, PointStatus::Ok | PointStatus::OutOfMemory)
    }
}

impl std::fmt::Display for PointStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finished point, as written to `points/<key>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRecord<P, R> {
    /// The point's stable key.
    pub key: String,
    /// The point itself.
    pub point: P,
    /// How it ended.
    pub status: PointStatus,
    /// The failure's message (`out_of_memory` and `error` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it measured (`ok` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<R>,
    /// Seconds the point took, set-up included.
    pub wall_time_s: f64,
    /// When it finished (RFC 3339, UTC).
    pub finished_at: String,
}

impl<P, R> PointRecord<P, R> {
    /// The result of an `ok` point.
    pub fn ok_result(&self) -> Option<&R> {
        match self.status {
            PointStatus::Ok => self.result.as_ref(),
            _ => None,
        }
    }
}

/// Whether `err` means the point did not fit in memory: [`BenchError::OutOfMemory`], the
/// engine's [`llm_engine::EngineError::OutOfKvBlocks`] and
/// [`llm_engine::EngineError::KvCacheTooSmall`], or a tensor error whose message says
/// "out of memory" (CUDA's `CUDA_ERROR_OUT_OF_MEMORY`).
pub fn is_out_of_memory(err: &BenchError) -> bool {
    use llm_engine::EngineError;
    match err {
        BenchError::OutOfMemory(_) => true,
        BenchError::Engine(EngineError::OutOfKvBlocks { .. })
        | BenchError::Engine(EngineError::KvCacheTooSmall { .. }) => true,
        BenchError::Engine(e @ EngineError::Candle(_)) => {
            let msg = e.to_string().to_ascii_lowercase();
            msg.contains("out of memory") || msg.contains("out_of_memory")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_engine::EngineError;

    #[test]
    fn out_of_memory_classification() {
        assert!(is_out_of_memory(&BenchError::OutOfMemory("x".into())));
        assert!(is_out_of_memory(&BenchError::Engine(
            EngineError::OutOfKvBlocks { needed: 3, free: 1 }
        )));
        assert!(is_out_of_memory(&BenchError::Engine(
            EngineError::KvCacheTooSmall {
                needed: 4,
                have: 2,
                max_model_len: 64
            }
        )));
        let cuda = candle_like("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")");
        assert!(is_out_of_memory(&BenchError::Engine(cuda)));
        let shape = candle_like("shape mismatch in matmul");
        assert!(!is_out_of_memory(&BenchError::Engine(shape)));
        assert!(!is_out_of_memory(&BenchError::InvalidArgument(
            "out of memory".into()
        )));
        assert!(!is_out_of_memory(&BenchError::Engine(
            EngineError::EmptyPrompt
        )));
    }

    fn candle_like(msg: &str) -> EngineError {
        EngineError::Candle(candle_core::Error::Msg(msg.to_string()))
    }

    #[test]
    fn status_spelling_and_finality() {
        assert_eq!(PointStatus::OutOfMemory.as_str(), "out_of_memory");
        assert_eq!(
            serde_json::to_value(PointStatus::OutOfMemory).ok(),
            Some(serde_json::json!("out_of_memory"))
        );
        assert!(PointStatus::Ok.is_final());
        assert!(PointStatus::OutOfMemory.is_final());
        assert!(!PointStatus::Error.is_final());
    }
}
