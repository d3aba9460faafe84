//! Compiles `kernels/*.cu` to PTX when the `cuda` feature is on (`OUT_DIR/<name>.ptx`, loaded
//! at run time by `src/cuda/`). Without the feature it does nothing, so a CPU build never
//! needs a CUDA compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels"); // a new kernel file reruns this too
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=NVCC");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernels = Path::new("kernels");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(kernels)
        .unwrap_or_else(|e| panic!("llm-engine: cannot read {}: {e}", kernels.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    sources.sort();
    for header in sources
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "cuh"))
    {
        println!("cargo:rerun-if-changed={}", header.display());
    }
    let nvcc = nvcc_path();
    // One nvcc per file, all at once (each is single-threaded).
    let mut jobs = Vec::new();
    for src in sources
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
    {
        println!("cargo:rerun-if-changed={}", src.display());
        let stem = src
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("kernel file name");
        let ptx = out_dir.join(format!("{stem}.ptx"));
        // No --use_fast_math: the softmax's exp and the f32 accumulation stay IEEE-accurate.
        let child = Command::new(&nvcc)
            .args(["--ptx", "-arch=compute_90", "-O3", "-std=c++17"])
            .arg("-I")
            .arg(kernels)
            .arg("-o")
            .arg(&ptx)
            .arg(src)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "llm-engine: cannot run the CUDA compiler `{}` ({e}). The `cuda` feature needs \
                     nvcc: install a CUDA toolkit, or on a machine without one run \
                     `source scripts/cuda-toolchain.sh` from the workspace root first",
                    nvcc.display()
                )
            });
        jobs.push((src.clone(), child));
    }
    for (src, mut child) in jobs {
        let status = child
            .wait()
            .unwrap_or_else(|e| panic!("llm-engine: nvcc on {}: {e}", src.display()));
        if !status.success() {
            panic!("llm-engine: nvcc failed on {} ({status})", src.display());
        }
    }
}

/// `$NVCC`, else `$CUDA_HOME/bin/nvcc`, else `nvcc` on `PATH`.
fn nvcc_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NVCC") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        let p = PathBuf::from(home).join("bin").join("nvcc");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("nvcc")
}
