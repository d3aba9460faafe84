//! [`SweepStore`]: a sweep's folder, `sweep.json` plus `points/<key>.json`, each file written
//! atomically (a reader, or a resumed sweep, sees a whole file or none).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{BenchError, Result};
use crate::sweep::record::PointRecord;

/// Version of the sweep folder layout; a resumed sweep must have the same.
pub const SWEEP_FORMAT_VERSION: u32 = 1;

const HEADER_FILE: &str = "sweep.json";
const POINTS_DIR: &str = "points";

/// One point of a sweep: a small serializable configuration with a stable key.
pub trait SweepPoint: Serialize + DeserializeOwned + Clone {
    /// A key unique within the sweep and the same from run to run (it names the point's
    /// file), e.g. `batch-16`.
    fn key(&self) -> String;
}

/// `sweep.json`: what a sweep varies and what it holds fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepHeader {
    /// [`SWEEP_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// gpubench's version.
    pub gpubench_version: String,
    /// Which sweep: `batch-sweep`, `config-tune`, `compare-models`.
    pub kind: String,
    /// The parameters that vary from point to point.
    pub swept: Vec<String>,
    /// The keys of the points asked for, in order.
    pub points: Vec<String>,
    /// Everything held fixed (model, device, lengths, seed...): a resumed sweep must match.
    pub fixed: Map<String, Value>,
    /// When the sweep was started (RFC 3339, UTC).
    pub created_at: String,
}

impl SweepHeader {
    /// A header for `points` of sweep `kind`, varying `swept`, holding `fixed`.
    pub fn new<P: SweepPoint>(
        kind: &str,
        swept: &[&str],
        points: &[P],
        fixed: Map<String, Value>,
    ) -> Self {
        SweepHeader {
            format_version: SWEEP_FORMAT_VERSION,
            gpubench_version: metrics::manifest::GPUBENCH_VERSION.to_string(),
            kind: kind.to_string(),
            swept: swept.iter().map(|s| s.to_string()).collect(),
            points: points.iter().map(SweepPoint::key).collect(),
            fixed,
            created_at: metrics::manifest::now_rfc3339_utc(),
        }
    }

    /// Why a sweep recorded under `self` cannot be resumed with `new`: the differing kind,
    /// format version or fixed settings, each named with both values. `None` if it can.
    pub fn resume_conflicts(&self, new: &SweepHeader) -> Option<String> {
        let mut diffs = Vec::new();
        if self.kind != new.kind {
            diffs.push(format!("kind {} (now {})", self.kind, new.kind));
        }
        if self.format_version != new.format_version {
            diffs.push(format!(
                "format version {} (now {})",
                self.format_version, new.format_version
            ));
        }
        if self.swept != new.swept {
            diffs.push(format!(
                "swept {} (now {})",
                self.swept.join(","),
                new.swept.join(",")
            ));
        }
        let keys: std::collections::BTreeSet<&String> =
            self.fixed.keys().chain(new.fixed.keys()).collect();
        for k in keys {
            let (old, now) = (self.fixed.get(k), new.fixed.get(k));
            if old != now {
                let show = |v: Option<&Value>| v.map_or("unset".to_string(), Value::to_string);
                diffs.push(format!("{k}={} (now {})", show(old), show(now)));
            }
        }
        (!diffs.is_empty()).then(|| diffs.join(", "))
    }
}

/// How to open a sweep folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// A new sweep: the folder must not exist or be empty.
    New,
    /// Start over: an earlier sweep's `sweep.json` and point files are removed first (other
    /// files in the folder are left alone).
    Force,
    /// Continue: keep the finished points of an earlier sweep with the same fixed settings
    /// (a folder without one starts a new sweep).
    Resume,
}

/// A sweep's folder on disk.
#[derive(Debug, Clone)]
pub struct SweepStore {
    dir: PathBuf,
    header: SweepHeader,
}

fn io_err(path: &Path, error: std::io::Error) -> BenchError {
    BenchError::Io {
        path: path.display().to_string(),
        error,
    }
}

impl SweepStore {
    /// Opens (creating it if needed) the sweep folder `dir` and writes `header` as its
    /// `sweep.json` (on resume, the earlier `created_at` is kept).
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] for a non-empty folder in [`StoreMode::New`], a
    /// folder that holds files but no `sweep.json` on resume, or a `sweep.json` whose kind,
    /// version or fixed settings differ from `header` (each difference named);
    /// [`BenchError::Io`] / [`BenchError::Metrics`] for file errors.
    pub fn open(dir: &Path, mut header: SweepHeader, mode: StoreMode) -> Result<SweepStore> {
        if dir.exists() && !dir.is_dir() {
            return Err(BenchError::InvalidArgument(format!(
                "{} is a file, not a sweep folder",
                dir.display()
            )));
        }
        let header_path = dir.join(HEADER_FILE);
        let non_empty = dir.is_dir()
            && std::fs::read_dir(dir)
                .map_err(|e| io_err(dir, e))?
                .next()
                .is_some();
        match mode {
            StoreMode::New if non_empty => {
                return Err(BenchError::InvalidArgument(format!(
                    "{} already exists and is not empty: pass --resume to continue the sweep in it or --force to start over",
                    dir.display()
                )));
            }
            StoreMode::Force => {
                remove_if_exists(&header_path)?;
                let points = dir.join(POINTS_DIR);
                if points.is_dir() {
                    std::fs::remove_dir_all(&points).map_err(|e| io_err(&points, e))?;
                }
            }
            StoreMode::Resume if header_path.is_file() => {
                let old: SweepHeader = read_json(&header_path)?;
                if let Some(diff) = old.resume_conflicts(&header) {
                    return Err(BenchError::InvalidArgument(format!(
                        "cannot --resume the sweep in {}: it was run with {diff}; use the same settings, another folder, or --force to start over",
                        dir.display()
                    )));
                }
                header.created_at = old.created_at;
            }
            StoreMode::Resume if non_empty => {
                return Err(BenchError::InvalidArgument(format!(
                    "cannot --resume in {}: it holds files but no {HEADER_FILE} (not a sweep folder)",
                    dir.display()
                )));
            }
            StoreMode::New | StoreMode::Resume => {}
        }
        let points = dir.join(POINTS_DIR);
        std::fs::create_dir_all(&points).map_err(|e| io_err(&points, e))?;
        metrics::write_json_atomic(&header_path, &header)?;
        Ok(SweepStore {
            dir: dir.to_path_buf(),
            header,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The header written to `sweep.json`.
    pub fn header(&self) -> &SweepHeader {
        &self.header
    }

    /// Where the point with `key` is written.
    pub fn point_path(&self, key: &str) -> PathBuf {
        self.dir
            .join(POINTS_DIR)
            .join(format!("{}.json", point_file_stem(key)))
    }

    /// Writes one finished point, atomically.
    ///
    /// # Errors
    /// [`BenchError::Metrics`] if the file cannot be written.
    pub fn record<P: Serialize, R: Serialize>(&self, record: &PointRecord<P, R>) -> Result<()> {
        metrics::write_json_atomic(&self.point_path(&record.key), record)?;
        Ok(())
    }

    /// The points recorded so far, by key (temporary files of an interrupted write are
    /// ignored).
    ///
    /// # Errors
    /// [`BenchError::Io`] if the folder cannot be read; [`BenchError::InvalidArgument`]
    /// naming a point file that is not a point of this sweep's kind.
    pub fn load<P: DeserializeOwned, R: DeserializeOwned>(
        &self,
    ) -> Result<BTreeMap<String, PointRecord<P, R>>> {
        let dir = self.dir.join(POINTS_DIR);
        let mut out = BTreeMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_err(&dir, e))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name else { continue };
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let record: PointRecord<P, R> = read_json(&path)?;
            out.insert(record.key.clone(), record);
        }
        Ok(out)
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path, e)),
        _ => Ok(()),
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        BenchError::InvalidArgument(format!(
            "{}: not a sweep file of this kind ({e})",
            path.display()
        ))
    })
}

/// The file name (without `.json`) for a point key: the key itself when it is made of ASCII
/// letters, digits, `.`, `_`, `-` and `=`; otherwise those characters kept, the rest turned
/// into `_`, and a hash of the whole key appended so two keys never share a file.
pub fn point_file_stem(key: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '=');
    if !key.is_empty() && key.chars().all(ok) && !key.starts_with('.') {
        return key.to_string();
    }
    let clean: String = key.chars().map(|c| if ok(c) { c } else { '_' }).collect();
    // FNV-1a, 64 bits: stable across runs and platforms.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{}-{hash:016x}", clean.trim_start_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe_and_distinct() {
        assert_eq!(point_file_stem("batch-16"), "batch-16");
        let a = point_file_stem("models/llama 7b");
        let b = point_file_stem("models_llama 7b");
        assert!(a.starts_with("models_llama_7b-"), "{a}");
        assert_ne!(a, b);
        assert!(!point_file_stem("../x").contains('/'));
        assert!(!point_file_stem(".hidden").starts_with('.'));
        assert_eq!(point_file_stem("a/b"), point_file_stem("a/b"));
    }

    #[test]
    fn resume_conflicts_name_each_setting() {
        #[derive(Clone, Serialize, Deserialize)]
        struct P;
        impl SweepPoint for P {
            fn key(&self) -> String {
                "p".into()
            }
        }
        let mut fixed = Map::new();
        fixed.insert("model".into(), "tiny-llama".into());
        fixed.insert("output_len".into(), 8.into());
        let a = SweepHeader::new("batch-sweep", &["batch_size"], &[P], fixed.clone());
        assert_eq!(a.resume_conflicts(&a.clone()), None);
        fixed.insert("output_len".into(), 16.into());
        fixed.insert("seed".into(), 1.into());
        let b = SweepHeader::new("batch-sweep", &["batch_size"], &[P], fixed);
        let diff = a.resume_conflicts(&b).unwrap_or_default();
        assert!(diff.contains("output_len=8 (now 16)"), "{diff}");
        assert!(diff.contains("seed=unset (now 1)"), "{diff}");
        assert!(!diff.contains("model"), "{diff}");
    }
}
