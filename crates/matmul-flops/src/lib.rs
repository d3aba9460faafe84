//! `matmul_flops`: GEMM TFLOP/s per dtype and memory bandwidth on the CPU and on NVIDIA GPUs (cuBLAS/cuBLASLt), checked against an f64 reference.
//!
//! This crate is being built; see the workspace README for its place in gpubench.
#![deny(missing_docs)]
