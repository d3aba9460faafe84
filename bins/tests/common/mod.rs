//! Helpers the binaries' integration tests share.

use std::process::{Command, Output};

/// Runs the binary at `exe` with `args`.
pub fn run(exe: &str, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {exe}: {e}"))
}

/// Asserts a clean failure of `exe args`: non-zero exit, no panic, and an `error:` line on
/// stderr that contains `needle`.
pub fn fails_with(exe: &str, args: &[&str], needle: &str) {
    let out = run(exe, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} should fail; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr}"));
    assert!(line.contains(needle), "{args:?}: {line:?} lacks {needle:?}");
}
