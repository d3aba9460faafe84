//! The results folder on disk: what may be in it, and how a run claims it (new, `--resume`,
//! `--force`).

use std::path::{Path, PathBuf};

use crate::error::{BenchError, Result};
use crate::sweep::StoreMode;

/// The human summary.
pub const SUMMARY_FILE: &str = "benchmark_summary.txt";
/// Everything, as JSON.
pub const RESULTS_FILE: &str = "benchmark_results.json";
/// The LLM runs as a list of seed-style records (`cost-analysis` reads it).
pub const LLM_RESULTS_FILE: &str = "llm_results.json";
/// The parts recorded as stages finish (for `--resume`).
pub const PARTS_DIR: &str = "parts";
/// The SVG charts.
pub const PLOTS_DIR: &str = "plots";
/// The tables, each written as `<name>.csv` and `<name>.md`.
pub const TABLES: [&str; 6] = [
    "gemm",
    "bandwidth",
    "llm",
    "batch_sweep",
    "roofline",
    "cost",
];

/// Whether `name` is a file or folder bench-all writes (or a hidden temporary file of an
/// interrupted atomic write).
pub fn is_results_entry(name: &str) -> bool {
    name.starts_with('.')
        || [
            SUMMARY_FILE,
            RESULTS_FILE,
            LLM_RESULTS_FILE,
            PARTS_DIR,
            PLOTS_DIR,
        ]
        .contains(&name)
        || TABLES
            .iter()
            .any(|t| name == format!("{t}.csv") || name == format!("{t}.md"))
}

/// A results folder claimed for one bench-all run.
#[derive(Debug, Clone)]
pub struct ResultsFolder {
    dir: PathBuf,
}

fn io_err(path: &Path, error: std::io::Error) -> BenchError {
    BenchError::Io {
        path: path.display().to_string(),
        error,
    }
}

fn entries(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

impl ResultsFolder {
    /// Claims `dir` for a run: a new run needs it absent or empty; `Resume` keeps the parts
    /// of an earlier run in it; `Force` deletes what an earlier run wrote there (and refuses
    /// when the folder holds anything else, so a mistyped `--out-dir` never loses files).
    ///
    /// # Errors
    /// [`BenchError::InvalidArgument`] for a file in place of the folder, a non-empty
    /// folder without `--resume`/`--force`, or foreign files under `--force`/`--resume`;
    /// [`BenchError::Io`] when it cannot be read, cleared or created.
    pub fn open(dir: &Path, mode: StoreMode) -> Result<ResultsFolder> {
        if dir.exists() && !dir.is_dir() {
            return Err(BenchError::InvalidArgument(format!(
                "{} is a file, not a results folder",
                dir.display()
            )));
        }
        let names = entries(dir)?;
        let foreign: Vec<&String> = names.iter().filter(|n| !is_results_entry(n)).collect();
        match mode {
            StoreMode::New if !names.is_empty() => {
                return Err(BenchError::InvalidArgument(format!(
                    "{} already exists and is not empty: pass --resume to continue the run recorded in it, or --force to replace it",
                    dir.display()
                )));
            }
            StoreMode::Force | StoreMode::Resume if !foreign.is_empty() => {
                let list: Vec<&str> = foreign.iter().take(5).map(|s| s.as_str()).collect();
                return Err(BenchError::InvalidArgument(format!(
                    "{} holds files bench-all did not write ({}): not a results folder; choose another --out-dir",
                    dir.display(),
                    list.join(", ")
                )));
            }
            StoreMode::Force => {
                for n in &names {
                    let p = dir.join(n);
                    let r = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    r.map_err(|e| io_err(&p, e))?;
                }
            }
            StoreMode::New | StoreMode::Resume => {}
        }
        for d in [dir.to_path_buf(), dir.join(PLOTS_DIR)] {
            std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
        }
        Ok(ResultsFolder {
            dir: dir.to_path_buf(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The parts folder.
    pub fn parts_dir(&self) -> PathBuf {
        self.dir.join(PARTS_DIR)
    }

    /// A chart's path (`plots/<name>.svg`).
    pub fn plot(&self, name: &str) -> PathBuf {
        self.dir.join(PLOTS_DIR).join(format!("{name}.svg"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn new_run_refuses_a_non_empty_folder_with_one_line() {
        let d = tmp();
        std::fs::write(d.path().join(SUMMARY_FILE), "x").unwrap();
        let e = ResultsFolder::open(d.path(), StoreMode::New)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--resume") && e.contains("--force") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn force_clears_our_files_and_refuses_foreign_ones() {
        let d = tmp();
        std::fs::write(d.path().join(RESULTS_FILE), "{}").unwrap();
        std::fs::create_dir_all(d.path().join("parts/points")).unwrap();
        ResultsFolder::open(d.path(), StoreMode::Force).unwrap();
        assert!(!d.path().join(RESULTS_FILE).exists());
        assert!(!d.path().join("parts").exists());
        std::fs::write(d.path().join("thesis.tex"), "precious").unwrap();
        let e = ResultsFolder::open(d.path(), StoreMode::Force)
            .unwrap_err()
            .to_string();
        assert!(e.contains("thesis.tex"), "{e}");
        assert!(d.path().join("thesis.tex").is_file());
    }

    #[test]
    fn new_folder_is_created_with_plots() {
        let d = tmp();
        let f = ResultsFolder::open(&d.path().join("results"), StoreMode::New).unwrap();
        assert!(f.dir().join(PLOTS_DIR).is_dir());
        assert!(is_results_entry("gemm.csv") && is_results_entry(".tmp123"));
        assert!(!is_results_entry("notes.txt"));
    }
}
