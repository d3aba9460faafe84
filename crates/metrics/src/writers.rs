//! Result writers: JSON, CSV and text files written atomically, and Markdown tables.
//!
//! Every file is first written to a temporary file in the target's own directory, flushed
//! and synced, then renamed over the target ([`tempfile::NamedTempFile::persist`]): a
//! reader sees the old file or the whole new one, never half a file, and a failed write
//! leaves nothing behind. Serialisation happens before any file is created.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{MetricsError, Result};

/// Writes `value` as pretty JSON (with a trailing newline) to `path`, atomically.
///
/// # Errors
/// [`MetricsError::Json`] if `value` cannot be serialised, [`MetricsError::DirectoryNotFound`]
/// / [`MetricsError::NotADirectory`] / [`MetricsError::DirectoryNotWritable`] for a bad
/// target directory, [`MetricsError::Io`] if writing or renaming fails.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| MetricsError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_bytes_atomic(path, &bytes)
}

/// Writes `rows` as CSV to `path`, atomically: a header row from the first row's field
/// names, then one line per row. Rows must be flat (structs or tuples of scalars,
/// `Option`s allowed); an empty slice writes an empty file.
///
/// # Errors
/// [`MetricsError::Csv`] if a row cannot be written as CSV (e.g. a nested struct or a
/// `Vec` field), plus the directory and I/O errors of [`write_json_atomic`].
pub fn write_csv_atomic<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let csv_err = |source| MetricsError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row).map_err(csv_err)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv_err(csv::Error::from(e.into_error())))?;
    write_bytes_atomic(path, &bytes)
}

/// Writes flat key/value records (e.g. [`ServingMetrics::to_flat_map`] of several runs) as
/// CSV to `path`, atomically. Columns are the keys in first-seen order (the first record's
/// order, then any new keys of later records); a record without a key gets an empty cell.
/// `null` is an empty cell, strings are written as is, other JSON values as compact JSON.
/// Use this where the rows are maps, which [`write_csv_atomic`] (the csv crate) rejects.
///
/// [`ServingMetrics::to_flat_map`]: crate::serving::ServingMetrics::to_flat_map
///
/// # Errors
/// [`MetricsError::Csv`] if encoding fails, plus the directory and I/O errors of
/// [`write_json_atomic`].
pub fn write_records_csv_atomic(path: &Path, records: &[Vec<(String, Value)>]) -> Result<()> {
    let csv_err = |source| MetricsError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut columns: Vec<&str> = Vec::new();
    for (key, _) in records.iter().flatten() {
        if !columns.contains(&key.as_str()) {
            columns.push(key);
        }
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    if !columns.is_empty() {
        writer.write_record(&columns).map_err(csv_err)?;
    }
    for record in records {
        let row =
            columns.iter().map(
                |c| match record.iter().find(|(k, _)| k == c).map(|(_, v)| v) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                },
            );
        writer.write_record(row).map_err(csv_err)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv_err(csv::Error::from(e.into_error())))?;
    write_bytes_atomic(path, &bytes)
}

/// Writes `text` to `path`, atomically.
///
/// # Errors
/// The directory and I/O errors of [`write_json_atomic`].
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    write_bytes_atomic(path, text.as_bytes())
}

/// Writes `bytes` to `path`, atomically (temporary file in the same directory + rename).
///
/// # Errors
/// [`MetricsError::DirectoryNotFound`] if the parent directory does not exist,
/// [`MetricsError::NotADirectory`] if it is a file, [`MetricsError::DirectoryNotWritable`]
/// if a file cannot be created in it, [`MetricsError::Io`] if writing, syncing or renaming
/// fails (e.g. `path` is an existing directory).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    match std::fs::metadata(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MetricsError::DirectoryNotFound { path: dir })
        }
        Err(source) => return Err(MetricsError::DirectoryNotWritable { path: dir, source }),
        Ok(meta) if !meta.is_dir() => return Err(MetricsError::NotADirectory { path: dir }),
        Ok(_) => {}
    }
    let io_err = |source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".gpubench-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|source| MetricsError::DirectoryNotWritable {
            path: dir.clone(),
            source,
        })?;
    tmp.write_all(bytes).map_err(io_err)?;
    tmp.flush().map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    tracing::debug!(path = %path.display(), bytes = bytes.len(), "wrote file");
    Ok(())
}

/// The directory `path` lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Renders a Markdown (GitHub) table with padded, aligned columns.
///
/// Columns whose non-empty cells all parse as numbers are right-aligned (`---:`), the
/// rest left-aligned. `|` inside a cell is escaped and newlines become spaces. Rows
/// shorter than the header are padded with empty cells; extra cells get an empty header.
/// No headers and no cells give an empty string.
/// Widths count characters, not display columns (wide CJK or emoji may misalign).
///
/// ```
/// let t = metrics::writers::markdown_table(&["GPU", "tok/s"], &[
///     vec!["H100".into(), "1520.5".into()],
///     vec!["L4".into(), "98".into()],
/// ]);
/// assert_eq!(t, "\
/// | GPU  |  tok/s |
/// | ---- | -----: |
/// | H100 | 1520.5 |
/// | L4   |     98 |
/// ");
/// ```
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).fold(headers.len(), usize::max);
    if ncols == 0 {
        return String::new();
    }
    let clean = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
    let header: Vec<String> = (0..ncols)
        .map(|c| clean(headers.get(c).copied().unwrap_or("")))
        .collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            (0..ncols)
                .map(|c| clean(r.get(c).map_or("", String::as_str)))
                .collect()
        })
        .collect();
    let width = |c: usize| {
        body.iter()
            .map(|r| r[c].chars().count())
            .chain([header[c].chars().count(), 3])
            .max()
            .unwrap_or(3)
    };
    let widths: Vec<usize> = (0..ncols).map(width).collect();
    let numeric: Vec<bool> = (0..ncols)
        .map(|c| {
            let mut cells = body.iter().map(|r| r[c].trim()).filter(|s| !s.is_empty());
            let mut any = false;
            let all = cells.all(|s| {
                any = true;
                s.parse::<f64>().is_ok()
            });
            any && all
        })
        .collect();

    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, s)| {
                let pad = widths[c] - s.chars().count();
                if numeric[c] {
                    format!("{}{s}", " ".repeat(pad))
                } else {
                    format!("{s}{}", " ".repeat(pad))
                }
            })
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let rule: Vec<String> = (0..ncols)
        .map(|c| {
            if numeric[c] {
                format!("{}:", "-".repeat(widths[c] - 1))
            } else {
                "-".repeat(widths[c])
            }
        })
        .collect();

    let mut out = line(&header);
    out.push_str(&format!("| {} |\n", rule.join(" | ")));
    for r in &body {
        out.push_str(&line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        gpu: &'static str,
        tflops: f64,
        note: Option<&'static str>,
    }

    #[test]
    fn json_is_written_whole_and_pretty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_json_atomic(&path, &serde_json::json!({"a": 1, "b": [1, 2]})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \"a\": 1"), "{text}");
        assert!(text.ends_with("}\n"));
        // Overwrite replaces the file; no temporary files are left behind.
        write_json_atomic(&path, &[1, 2, 3]).unwrap();
        let v: Vec<i32> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v, [1, 2, 3]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn csv_has_header_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let rows = [
            Row {
                gpu: "H100",
                tflops: 756.5,
                note: None,
            },
            Row {
                gpu: "L4, 24GB",
                tflops: 121.0,
                note: Some("fp16"),
            },
        ];
        write_csv_atomic(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "gpu,tflops,note\nH100,756.5,\n\"L4, 24GB\",121.0,fp16\n"
        );
    }

    #[test]
    fn records_csv_unions_keys_in_first_seen_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.csv");
        let records = vec![
            vec![
                ("gpu".to_string(), Value::from("H100")),
                ("tok_s".to_string(), Value::from(1520.5)),
                ("goodput".to_string(), Value::Null),
            ],
            vec![
                ("gpu".to_string(), Value::from("L4")),
                ("extra".to_string(), serde_json::json!([1, 2])),
                ("tok_s".to_string(), Value::from(98)),
            ],
        ];
        write_records_csv_atomic(&path, &records).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "gpu,tok_s,goodput,extra\nH100,1520.5,,\nL4,98,,\"[1,2]\"\n"
        );
        write_records_csv_atomic(&path, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn csv_rejects_nested_rows_without_leaving_a_file() {
        #[derive(Serialize)]
        struct Nested {
            xs: Vec<Row>,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        let rows = [Nested {
            xs: vec![Row {
                gpu: "x",
                tflops: 1.0,
                note: None,
            }],
        }];
        let e = write_csv_atomic(&path, &rows).unwrap_err();
        assert!(matches!(e, MetricsError::Csv { .. }), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_directory_is_a_typed_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = write_text_atomic(&missing.join("out.txt"), "x").unwrap_err();
        match &e {
            MetricsError::DirectoryNotFound { path } => assert_eq!(path, &missing),
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn parent_that_is_a_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = write_text_atomic(&file.join("out.txt"), "x").unwrap_err();
        assert!(matches!(e, MetricsError::NotADirectory { .. }), "{e}");
    }

    #[test]
    fn target_that_is_a_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = write_text_atomic(&sub, "x").unwrap_err();
        assert!(matches!(e, MetricsError::Io { .. }), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn read_only_directory_is_not_writable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // root ignores permission bits; only check when the directory really is read-only.
        if tempfile::tempfile_in(&ro).is_err() {
            let e = write_text_atomic(&ro.join("x.txt"), "x").unwrap_err();
            match &e {
                MetricsError::DirectoryNotWritable { path, .. } => assert_eq!(path, &ro),
                other => panic!("{other}"),
            }
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn markdown_alignment_escaping_and_ragged_rows() {
        let t = markdown_table(
            &["model", "p99 ms"],
            &[
                vec!["a|b".into(), "12.5".into(), "extra".into()],
                vec!["gpt2".into()],
            ],
        );
        assert_eq!(
            t,
            "| model | p99 ms |       |\n\
             | ----- | -----: | ----- |\n\
             | a\\|b  |   12.5 | extra |\n\
             | gpt2  |        |       |\n"
        );
        assert_eq!(markdown_table(&[], &[]), "");
    }
}
