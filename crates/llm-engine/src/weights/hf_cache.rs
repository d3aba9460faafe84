//! Models by id from the local Hugging Face cache (`~/.cache/huggingface/hub`), offline.
//!
//! We never download at run time: a model that is not cached is an error that says where we
//! looked and how to fetch it.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use crate::error::{EngineError, Result};

/// The hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn hf_cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var_os("HOME").map(|h| {
        PathBuf::from(h)
            .join(".cache")
            .join("huggingface")
            .join("hub")
    })
}

/// A model snapshot found in the Hugging Face cache.
#[derive(Debug, Clone)]
pub struct HfCacheModel {
    /// The model id (`facebook/opt-1.3b`).
    pub model_id: String,
    /// The snapshot folder holding `config.json` and the weights.
    pub snapshot_dir: PathBuf,
}

impl HfCacheModel {
    /// Finds `model_id` (at `revision`, default `main`) in the cache at `cache_dir`.
    ///
    /// # Errors
    /// [`EngineError::NotInHfCache`] when the snapshot or its `config.json` is not cached.
    pub fn find_in(cache_dir: &Path, model_id: &str, revision: Option<&str>) -> Result<Self> {
        let cache = Cache::new(cache_dir.to_path_buf());
        let repo = match revision {
            Some(rev) => {
                Repo::with_revision(model_id.to_string(), RepoType::Model, rev.to_string())
            }
            None => Repo::model(model_id.to_string()),
        };
        let not_cached = || EngineError::NotInHfCache {
            model_id: model_id.to_string(),
            cache_dir: cache_dir.display().to_string(),
        };
        let config = cache.repo(repo).get("config.json").ok_or_else(not_cached)?;
        let snapshot_dir = config
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(not_cached)?;
        Ok(Self {
            model_id: model_id.to_string(),
            snapshot_dir,
        })
    }

    /// Finds `model_id` in the default cache ([`hf_cache_dir`]).
    ///
    /// # Errors
    /// [`EngineError::NotInHfCache`] when it is not cached or no cache folder can be determined.
    pub fn find(model_id: &str, revision: Option<&str>) -> Result<Self> {
        let dir = hf_cache_dir().ok_or_else(|| EngineError::NotInHfCache {
            model_id: model_id.to_string(),
            cache_dir: "no cache folder: neither HF_HUB_CACHE, HF_HOME nor HOME is set".into(),
        })?;
        Self::find_in(&dir, model_id, revision)
    }
}
