//! Compiles `kernels/*.cu` when the `cuda` feature is on, to one fat binary per file
//! (`OUT_DIR/<name>.fatbin`, loaded at run time by `src/cuda/`) holding machine code for the
//! target GPU (`sm_<cap>`) and its PTX (`compute_<cap>`, which the driver compiles for newer
//! GPUs). The compute capability is candle's: `CUDA_COMPUTE_CAP` (`90`, `8.9`, ..), else what
//! `nvidia-smi` reports, else 90 (H100/H200); the kernels need 8.0 (tensor-core bf16) or more.
//! Machine code spares every process the driver's JIT compilation of several MB of PTX (about
//! 17 s a dtype's attention module, once per machine). Without the feature this does nothing,
//! so a CPU build never needs a CUDA compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels"); // a new kernel file reruns this too
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
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
    let cap = compute_cap();
    if cap < MIN_COMPUTE_CAP {
        println!(
            "cargo:warning=llm-engine: compute capability {cap} is below the kernels' {MIN_COMPUTE_CAP}; \
             building for {MIN_COMPUTE_CAP} (the engine's CUDA path will not load on this GPU)"
        );
    }
    let cap = cap.max(MIN_COMPUTE_CAP);
    let gencode = format!("-gencode=arch=compute_{cap},code=[sm_{cap},compute_{cap}]");
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
        let fatbin = out_dir.join(format!("{stem}.fatbin"));
        // No --use_fast_math: the softmax's exp and the f32 accumulation stay IEEE-accurate.
        let child = Command::new(&nvcc)
            .args(["--fatbin", &gencode, "-O3", "-std=c++17"])
            .arg("-I")
            .arg(kernels)
            .arg("-o")
            .arg(&fatbin)
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

/// The lowest compute capability the kernels compile for (mma.sync with bf16 inputs).
const MIN_COMPUTE_CAP: u32 = 80;

/// `CUDA_COMPUTE_CAP` (`90` or `9.0`), else the first GPU's from `nvidia-smi`, else 90, as
/// candle's kernels decide theirs.
fn compute_cap() -> u32 {
    let parse = |s: &str| -> Option<u32> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        match s.split_once('.') {
            Some((major, minor)) => {
                Some(major.parse::<u32>().ok()? * 10 + minor.parse::<u32>().ok()?)
            }
            None => s.parse().ok(),
        }
    };
    if let Ok(v) = std::env::var("CUDA_COMPUTE_CAP") {
        return parse(&v).unwrap_or_else(|| {
            panic!(
                "llm-engine: CUDA_COMPUTE_CAP={v:?} is not a compute capability such as 90 or 8.9"
            )
        });
    }
    Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|out| out.lines().next().and_then(parse))
        .unwrap_or(90)
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
