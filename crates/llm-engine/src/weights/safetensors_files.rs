//! Weights from `*.safetensors` files: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Files are memory-mapped; each tensor is read when asked for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{Device, Tensor};

use super::{Init, WeightSource};
use crate::error::{EngineError, Result};

/// Memory-mapped safetensors files of one model.
pub struct SafetensorsWeights {
    files: MmapedSafetensors,
    paths: Vec<PathBuf>,
    device: Device,
}

impl std::fmt::Debug for SafetensorsWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsWeights")
            .field("paths", &self.paths)
            .finish()
    }
}

impl SafetensorsWeights {
    /// The weight files of a model folder: the shards named by `model.safetensors.index.json`
    /// when it exists, else `model.safetensors`.
    ///
    /// # Errors
    /// [`EngineError::MalformedModelConfig`] for an unreadable index; [`EngineError::Io`] when
    /// neither file exists.
    pub fn files_in_dir(dir: &Path) -> Result<Vec<PathBuf>> {
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            return shard_files(&index);
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Ok(vec![single]);
        }
        Err(EngineError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no model.safetensors or model.safetensors.index.json (only safetensors weights are supported)",
            ),
        })
    }

    /// Memory-maps `paths`; tensors are loaded onto `device`.
    ///
    /// # Errors
    /// [`EngineError::Io`] when a file is missing; a candle error when a file is not valid
    /// safetensors.
    pub fn open(paths: Vec<PathBuf>, device: &Device) -> Result<Self> {
        for p in &paths {
            if !p.is_file() {
                return Err(EngineError::Io {
                    path: p.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "weight file not found",
                    ),
                });
            }
        }
        // SAFETY: the files are memory-mapped read-only; like every safetensors loader we rely on
        // them not being modified while the model is loading.
        let files = unsafe { MmapedSafetensors::multi(&paths) }.map_err(|e| match e {
            candle_core::Error::Io(source) => EngineError::Io {
                path: paths.first().cloned().unwrap_or_default(),
                source,
            },
            other => EngineError::Candle(other),
        })?;
        Ok(Self {
            files,
            paths,
            device: device.clone(),
        })
    }
}

/// The distinct shard files named by an index's `weight_map`, in name order.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let origin = index.display().to_string();
    let bad = |reason: String| EngineError::MalformedModelConfig {
        path: origin.clone(),
        reason,
    };
    let text = std::fs::read_to_string(index).map_err(|source| EngineError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut names = BTreeSet::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map entry `{tensor}` is not a file name")))?;
        names.insert(file.to_string());
    }
    let dir = index.parent().unwrap_or(Path::new("."));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

impl WeightSource for SafetensorsWeights {
    fn has(&self, name: &str) -> bool {
        self.files.get(name).is_ok()
    }

    fn load(&self, name: &str, shape: &[usize], _init: Init) -> Result<Tensor> {
        let view = self
            .files
            .get(name)
            .map_err(|_| EngineError::MissingTensor {
                name: name.to_string(),
                source_desc: self.describe(),
            })?;
        if view.shape() != shape {
            return Err(EngineError::TensorShapeMismatch {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        Ok(self.files.load(name, &self.device)?)
    }

    fn describe(&self) -> String {
        match self.paths.as_slice() {
            [one] => one.display().to_string(),
            many => format!(
                "{} shards in {}",
                many.len(),
                many.first()
                    .and_then(|p| p.parent())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        }
    }
}
