//! [`EngineSlot`]: one loaded engine kept across the points of a sweep that share its
//! configuration, reloaded only when a failed run may have left it unusable.

use llm_engine::{Engine, EngineConfig};

use crate::error::Result;

/// Holds at most one engine for `config`. It is loaded on first use and kept; after a run
/// that failed with requests still inside (a CUDA out-of-memory in the middle of a batch, say),
/// it is dropped — freeing its memory first — and loaded again for the next point.
#[derive(Debug)]
pub struct EngineSlot {
    config: EngineConfig,
    engine: Option<Engine>,
    loads: usize,
}

impl EngineSlot {
    /// An empty slot for `config` (nothing is loaded yet).
    pub fn new(config: EngineConfig) -> Self {
        EngineSlot {
            config,
            engine: None,
            loads: 0,
        }
    }

    /// The engine, loading it if the slot is empty.
    ///
    /// # Errors
    /// [`Engine::new`]'s errors.
    pub fn engine(&mut self) -> Result<&mut Engine> {
        let engine = match self.engine.take() {
            Some(e) => e,
            None => {
                self.loads += 1;
                Engine::new(self.config.clone())?
            }
        };
        Ok(self.engine.insert(engine))
    }

    /// Runs `f` on the engine; if it fails and requests are left unfinished, the engine is
    /// dropped so the next call loads a clean one.
    ///
    /// # Errors
    /// Loading errors and `f`'s.
    pub fn run<T>(&mut self, f: impl FnOnce(&mut Engine) -> Result<T>) -> Result<T> {
        let out = f(self.engine()?);
        if out.is_err()
            && self
                .engine
                .as_ref()
                .is_some_and(Engine::has_unfinished_requests)
        {
            tracing::info!(
                "a failed run left requests in the engine; it is reloaded for the next point"
            );
            self.engine = None;
        }
        out
    }

    /// How many times the engine was loaded.
    pub fn loads(&self) -> usize {
        self.loads
    }
}
