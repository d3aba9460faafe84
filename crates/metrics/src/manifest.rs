//! [`RunManifest`]: where and how a result was produced. Every result file carries one.
//!
//! | field | source |
//! |---|---|
//! | `timestamp_utc` | system clock, RFC 3339 UTC (`2025-01-31T12:00:00Z`) |
//! | `hostname`, `host` | [`gpu_probe::HostInfo`] (sysinfo) |
//! | `gpus`, `driver_version`, `cuda_driver_version`, `nvml_version` | [`gpu_probe::probe`] (NVML); empty / `None` without a GPU, with `gpu_unavailable_reason` saying why |
//! | `gpubench_version` | `CARGO_PKG_VERSION` of the workspace |
//! | `git_commit` | `git rev-parse HEAD` at build time (build.rs), else at run time in the source directory, else `None` |
//! | `command_line` | the process arguments (lossy UTF-8) |
//! | `built_with_cuda` | whether the `cuda` feature was compiled in |
//!
//! Capturing never fails: every missing fact is `None`, `"unknown"` or a reason string.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use gpu_probe::{GpuInfo, HostInfo, SystemReport};
use serde::{Deserialize, Serialize};

/// The gpubench version these crates were built as.
pub const GPUBENCH_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where and how a result was produced; see the [module docs](self) for each field's source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// When the manifest was captured, RFC 3339 in UTC.
    pub timestamp_utc: String,
    /// The host's name (`"unknown"` if the OS does not say).
    pub hostname: String,
    /// CPU, memory and OS of the host.
    pub host: HostInfo,
    /// Every NVIDIA GPU NVML reports (empty without one).
    pub gpus: Vec<GpuInfo>,
    /// Why `gpus` is empty, when there is no usable GPU.
    pub gpu_unavailable_reason: Option<String>,
    /// NVIDIA driver version, e.g. `"580.95.05"`.
    pub driver_version: Option<String>,
    /// Highest CUDA version the driver supports, e.g. `"13.0"`.
    pub cuda_driver_version: Option<String>,
    /// NVML library version.
    pub nvml_version: Option<String>,
    /// gpubench version ([`GPUBENCH_VERSION`]).
    pub gpubench_version: String,
    /// Git commit of the gpubench source, when known.
    pub git_commit: Option<String>,
    /// Whether the `cuda` feature was compiled in.
    pub built_with_cuda: bool,
    /// The command line, program name first.
    pub command_line: Vec<String>,
}

impl RunManifest {
    /// Captures the manifest now, with this process's command line. Probes the host and
    /// GPUs (a few milliseconds; NVML start-up on a GPU host can take longer).
    pub fn capture() -> RunManifest {
        let args = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Self::capture_with_args(args)
    }

    /// Captures the manifest now, recording `args` as the command line.
    pub fn capture_with_args(args: Vec<String>) -> RunManifest {
        Self::from_report(gpu_probe::probe(), args)
    }

    /// A manifest for an already probed machine (saves probing twice when the caller has
    /// a [`SystemReport`]); the timestamp and git commit are taken now.
    pub fn from_report(report: SystemReport, args: Vec<String>) -> RunManifest {
        let gpus = &report.gpus;
        RunManifest {
            timestamp_utc: now_rfc3339_utc(),
            hostname: report.host.hostname.clone(),
            gpus: gpus.devices().to_vec(),
            gpu_unavailable_reason: gpus.unavailable_reason().map(str::to_string),
            driver_version: gpus.driver_version().map(str::to_string),
            cuda_driver_version: gpus.cuda_driver_version().map(str::to_string),
            nvml_version: gpus.nvml_version().map(str::to_string),
            host: report.host,
            gpubench_version: GPUBENCH_VERSION.to_string(),
            git_commit: git_commit(),
            built_with_cuda: cfg!(feature = "cuda"),
            command_line: args,
        }
    }

    /// The command line as one shell-like string (arguments with spaces or quotes are
    /// single-quoted), for printing.
    pub fn command_line_string(&self) -> String {
        self.command_line
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The current time as RFC 3339 in UTC, to the second: `2025-01-31T12:00:00Z`.
pub fn now_rfc3339_utc() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The git commit gpubench was built from: recorded by build.rs, else asked of `git` in
/// the source directory now, else `None`. Never fails.
pub fn git_commit() -> Option<String> {
    if let Some(commit) = option_env!("GPUBENCH_GIT_COMMIT") {
        return Some(commit.to_string());
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !dir.is_dir() {
        return None;
    }
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && is_commit_hash(&commit)).then_some(commit)
}

fn is_commit_hash(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_this_machine() {
        let m = RunManifest::capture_with_args(vec![
            "llm-bench".into(),
            "--model".into(),
            "gpt2".into(),
        ]);
        assert_eq!(m.command_line, ["llm-bench", "--model", "gpt2"]);
        assert_eq!(m.gpubench_version, env!("CARGO_PKG_VERSION"));
        assert!(!m.hostname.is_empty());
        assert_eq!(m.hostname, m.host.hostname);
        // Either GPUs with a driver, or none with a reason: never both, never neither.
        assert_eq!(m.gpus.is_empty(), m.gpu_unavailable_reason.is_some());
        assert_eq!(
            m.driver_version.is_some(),
            m.gpu_unavailable_reason.is_none()
        );
        if let Some(commit) = &m.git_commit {
            assert!(is_commit_hash(commit), "{commit}");
        }
        assert_eq!(m.built_with_cuda, cfg!(feature = "cuda"));
    }

    #[test]
    fn timestamp_is_rfc3339_utc() {
        let t = now_rfc3339_utc();
        // 2025-01-31T12:00:00Z
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "T");
        assert!(t[..4].parse::<u32>().unwrap() >= 2024);
        assert!(humantime::parse_rfc3339(&t).is_ok());
    }

    #[test]
    fn git_commit_in_this_checkout() {
        // The tests run from the source tree, which is a git checkout in CI and here.
        if Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.git")
            .exists()
        {
            let c = git_commit().expect("commit of a git checkout");
            assert!(is_commit_hash(&c), "{c}");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = RunManifest::capture_with_args(vec!["x".into()]);
        let json = serde_json::to_string_pretty(&m).unwrap();
        let back: RunManifest = serde_json::from_str(&json).unwrap();
        // Compare what JSON keeps exactly (GPU floats may differ in the last bit).
        assert_eq!(back.timestamp_utc, m.timestamp_utc);
        assert_eq!(back.host, m.host);
        assert_eq!(back.gpus.len(), m.gpus.len());
        assert_eq!(back.git_commit, m.git_commit);
        assert_eq!(back.command_line, m.command_line);
        for key in [
            "timestamp_utc",
            "gpubench_version",
            "git_commit",
            "command_line",
            "host",
        ] {
            assert!(json.contains(&format!("\"{key}\"")), "{key}");
        }
    }

    #[test]
    fn command_line_is_quoted_for_shells() {
        let m = RunManifest::capture_with_args(vec![
            "tflops".into(),
            "--out".into(),
            "my results/r.json".into(),
            "it's".into(),
        ]);
        assert_eq!(
            m.command_line_string(),
            r#"tflops --out 'my results/r.json' 'it'\''s'"#
        );
    }
}
