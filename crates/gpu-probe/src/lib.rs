//! `gpu_probe`: Typed NVIDIA GPU and host facts through NVML, with a built-in table of GPU architectures and their theoretical peaks.
//!
//! This crate is being built; see the workspace README for its place in gpubench.
#![deny(missing_docs)]
