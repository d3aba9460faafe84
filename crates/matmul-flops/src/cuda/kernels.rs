//! Our own CUDA kernels (`kernels/bandwidth.cu`), compiled with NVRTC when a device opens.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

use crate::error::Result;

/// The CUDA C source of the bandwidth and helper kernels.
pub(crate) const SOURCE: &str = include_str!("../../kernels/bandwidth.cu");

/// SM clock cycles the `spin` kernel holds the stream before a timed batch (~2 ms at 2 GHz):
/// longer than the host needs to queue a batch of launches.
const SPIN_CYCLES: u64 = 4_000_000;

/// The loaded kernels of one device.
pub(crate) struct Kernels {
    pub(crate) fill: CudaFunction,
    pub(crate) copy: CudaFunction,
    pub(crate) read: CudaFunction,
    pub(crate) write: CudaFunction,
    spin: CudaFunction,
}

/// NVRTC's `--gpu-architecture` for a compute capability we know; NVRTC's default otherwise.
fn arch_option(cc: (u32, u32)) -> Option<&'static str> {
    Some(match cc {
        (7, 0) => "compute_70",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

impl Kernels {
    /// Compiles [`SOURCE`] for `cc` and loads it into `ctx`.
    pub(crate) fn load(ctx: &Arc<CudaContext>, cc: (u32, u32)) -> Result<Self> {
        let opts = CompileOptions {
            arch: arch_option(cc),
            name: Some("matmul_flops_bandwidth.cu".into()),
            ..CompileOptions::default()
        };
        let ptx = compile_ptx_with_opts(SOURCE, opts)?;
        let module = ctx.load_module(ptx)?;
        Ok(Self {
            fill: module.load_function("bw_fill")?,
            copy: module.load_function("bw_copy")?,
            read: module.load_function("bw_read")?,
            write: module.load_function("bw_write")?,
            spin: module.load_function("spin")?,
        })
    }

    /// Queues the `spin` kernel, so the launches queued after it start back to back.
    pub(crate) fn spin(&self, stream: &Arc<CudaStream>) -> Result<()> {
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = stream.launch_builder(&self.spin);
        launch.arg(&SPIN_CYCLES);
        // SAFETY: `spin(u64)` takes one 64-bit integer by value.
        unsafe { launch.launch(cfg) }?;
        Ok(())
    }
}
