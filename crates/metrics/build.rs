//! Records the git commit gpubench is built from, as `GPUBENCH_GIT_COMMIT`, when the
//! source is a git checkout and `git` is installed. Never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GPUBENCH_GIT_COMMIT");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());

    // An explicit value (e.g. from a packaging script) wins.
    if let Ok(commit) = std::env::var("GPUBENCH_GIT_COMMIT") {
        if !commit.trim().is_empty() {
            println!("cargo:rustc-env=GPUBENCH_GIT_COMMIT={}", commit.trim());
            return;
        }
    }
    let Some(commit) = git(&dir, &["rev-parse", "HEAD"]) else {
        return;
    };
    println!("cargo:rustc-env=GPUBENCH_GIT_COMMIT={commit}");

    // Rebuild when HEAD moves: watch HEAD, the branch ref it points to, and packed-refs
    // (`--git-path` resolves them correctly in worktrees too).
    let mut refs = vec!["HEAD".to_string(), "packed-refs".to_string()];
    refs.extend(git(&dir, &["symbolic-ref", "-q", "HEAD"]));
    for r in &refs {
        if let Some(path) = git(&dir, &["rev-parse", "--git-path", r]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
