//! The GEMM backend trait, and the dispatch from a [`BenchDevice`] to a backend.
//!
//! A backend turns host operands into a [`PreparedGemm`]: device buffers (several copies of A
//! and B, so consecutive launches read memory that is not in cache), the candidate algorithms,
//! and a way to time a batch of launches. The generic driver in [`crate::runner`] does the
//! rest (check, autotune, stop rule, statistics), the same way for every backend.
//!
//! | backend | device | dtypes | timing |
//! |---|---|---|---|
//! | [`crate::cpu::CpuGemmBackend`] | `cpu` | fp32, fp16 (`gemm` crate) | `Instant` per launch |
//! | `cuda::CudaGemmBackend` (feature `cuda`) | `cuda:N` | all six (cuBLASLt) | CUDA events on the stream |
//!
//! Without the `cuda` feature, asking for `cuda:N` gives [`MatmulError::NotCompiledWithCuda`],
//! so callers compile without `cfg`s.

use serde::{Deserialize, Serialize};

use crate::device::{BenchDevice, DeviceInfo};
use crate::dtype::GemmDtype;
use crate::error::{MatmulError, Result};
use crate::mode::{GemmMode, NumericsOptions};
use crate::operands::HostOperands;
use crate::shape::GemmShape;

/// Bytes of inputs that consecutive launches rotate through by default: 256 MiB, five times
/// the 50 MB L2 of an H100, so no launch finds its inputs in cache.
pub const DEFAULT_ROTATION_BYTES: u64 = 256 << 20;

/// Most copies of the inputs a GEMM rotates through (tiny decode shapes).
pub const MAX_ROTATION_SETS: u64 = 4096;

/// Candidate algorithms the autotuner asks cuBLASLt's heuristic for by default.
pub const DEFAULT_AUTOTUNE_CANDIDATES: usize = 8;

/// How a GEMM is set up, beyond its dtype and shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GemmOptions {
    /// Reduced-precision reductions and fp8 fast accumulation.
    pub numerics: NumericsOptions,
    /// Algorithms to ask the heuristic for and time (1 = the library's default choice).
    pub autotune_candidates: usize,
    /// Bytes of A+B copies consecutive launches rotate through.
    pub rotation_bytes: u64,
}

impl Default for GemmOptions {
    fn default() -> Self {
        Self {
            numerics: NumericsOptions::default(),
            autotune_candidates: DEFAULT_AUTOTUNE_CANDIDATES,
            rotation_bytes: DEFAULT_ROTATION_BYTES,
        }
    }
}

/// How many copies of A and B (each `set_bytes`) to rotate through to cover `rotation_bytes`:
/// 1 when one copy is already that large, at most [`MAX_ROTATION_SETS`].
pub fn rotation_sets(set_bytes: u64, rotation_bytes: u64) -> u64 {
    if set_bytes == 0 {
        return 1;
    }
    rotation_bytes
        .div_ceil(set_bytes)
        .clamp(1, MAX_ROTATION_SETS)
}

/// Bytes a GEMM of `dtype` and `shape` needs on its device with `sets` input copies, plus
/// `extra` (workspace, scales).
pub fn gemm_device_bytes(dtype: GemmDtype, shape: &GemmShape, sets: u64, extra: u64) -> u64 {
    let set = shape
        .a_elements()
        .saturating_add(shape.b_elements())
        .saturating_mul(dtype.input_bytes());
    set.saturating_mul(sets)
        .saturating_add(shape.c_elements().saturating_mul(dtype.output_bytes()))
        .saturating_add(extra)
}

/// A GEMM engine on one device.
pub trait GemmBackend {
    /// The device this backend runs on.
    fn device(&self) -> &DeviceInfo;

    /// Whether this backend can run `dtype` at all.
    ///
    /// # Errors
    /// [`MatmulError::UnsupportedDtype`] with the reason (e.g. fp8 below compute capability 8.9).
    fn supports(&self, dtype: GemmDtype) -> Result<()>;

    /// Fails early if a GEMM of `dtype` and `shape` cannot fit into the device's free memory
    /// (checked before any long run starts).
    ///
    /// # Errors
    /// [`MatmulError::InsufficientMemory`] ("needs N GiB, M free"), or the errors of `supports`.
    fn ensure_fits(&self, dtype: GemmDtype, shape: &GemmShape, options: &GemmOptions)
        -> Result<()>;

    /// Uploads `operands` (rotated copies), builds the candidate algorithms, and returns a GEMM
    /// ready to check and time.
    ///
    /// # Errors
    /// Unsupported dtype, not enough memory, or a device/library failure.
    fn prepare<'a>(
        &'a mut self,
        operands: &HostOperands,
        options: &GemmOptions,
    ) -> Result<Box<dyn PreparedGemm + 'a>>;
}

/// A GEMM with its buffers on the device, ready to check and time.
pub trait PreparedGemm {
    /// The numerics it runs with.
    fn mode(&self) -> GemmMode;

    /// How many candidate algorithms there are (at least 1).
    fn algorithm_count(&self) -> usize;

    /// Chooses candidate `index` for the following launches.
    ///
    /// # Errors
    /// [`MatmulError::InvalidParameter`] if `index >= algorithm_count()`.
    fn select_algorithm(&mut self, index: usize) -> Result<()>;

    /// What the selected algorithm is (`cuBLASLt heuristic #2: algo 66, tile 21, ...`).
    fn algorithm_label(&self) -> String;

    /// Copies of A and B the timed launches rotate through.
    fn rotation_sets(&self) -> u64;

    /// Runs the selected algorithm once on the first copy of the inputs and waits for it.
    ///
    /// # Errors
    /// A device or library failure.
    fn run_once(&mut self) -> Result<()>;

    /// Rows of C (as f64, scales applied) from the last [`PreparedGemm::run_once`].
    ///
    /// # Errors
    /// A row index outside `0..M`, or a device failure.
    fn read_rows(&mut self, rows: &[usize]) -> Result<Vec<Vec<f64>>>;

    /// Runs `count` launches back to back, rotating through the input copies, and returns
    /// the milliseconds of each.
    ///
    /// # Errors
    /// A device or library failure.
    fn time_launches(&mut self, count: usize) -> Result<Vec<f64>>;
}

/// Opens the GEMM backend of `device`.
///
/// # Errors
/// [`MatmulError::NotCompiledWithCuda`] for a CUDA device in a build without the `cuda`
/// feature; [`MatmulError::NoSuchDevice`] for an ordinal the host does not have; driver errors.
pub fn open_gemm_backend(device: BenchDevice) -> Result<Box<dyn GemmBackend>> {
    match device {
        BenchDevice::Cpu => Ok(Box::new(crate::cpu::CpuGemmBackend::new())),
        BenchDevice::Cuda(ordinal) => open_cuda_gemm(ordinal),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda_gemm(ordinal: usize) -> Result<Box<dyn GemmBackend>> {
    Ok(Box::new(crate::cuda::CudaGemmBackend::open(ordinal)?))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda_gemm(_ordinal: usize) -> Result<Box<dyn GemmBackend>> {
    Err(MatmulError::NotCompiledWithCuda)
}

/// Checks `index` against `count` for [`PreparedGemm::select_algorithm`].
///
/// # Errors
/// [`MatmulError::InvalidParameter`] if `index >= count`.
pub(crate) fn check_algorithm_index(index: usize, count: usize) -> Result<()> {
    if index >= count {
        return Err(MatmulError::InvalidParameter(format!(
            "algorithm {index} does not exist ({count} candidates)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_covers_the_target_with_whole_sets() {
        assert_eq!(rotation_sets(1 << 30, DEFAULT_ROTATION_BYTES), 1);
        assert_eq!(rotation_sets(64 << 20, DEFAULT_ROTATION_BYTES), 4);
        assert_eq!(rotation_sets(100 << 20, DEFAULT_ROTATION_BYTES), 3);
        assert_eq!(rotation_sets(1, DEFAULT_ROTATION_BYTES), MAX_ROTATION_SETS);
        assert_eq!(rotation_sets(0, DEFAULT_ROTATION_BYTES), 1);
    }

    #[test]
    fn device_bytes_count_sets_output_and_extra() {
        let s = GemmShape::square(1024).unwrap();
        let b = gemm_device_bytes(GemmDtype::Bf16, &s, 2, 100);
        assert_eq!(b, 2 * (2 * 1024 * 1024 * 2) + 1024 * 1024 * 2 + 100);
    }

    #[test]
    fn cuda_without_the_feature_says_how_to_fix_it() {
        if crate::device::CUDA_COMPILED {
            return;
        }
        let e = open_gemm_backend(BenchDevice::Cuda(0)).err();
        assert!(matches!(e, Some(MatmulError::NotCompiledWithCuda)));
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("rebuild with --features cuda"));
    }
}
