//! The CUDA GEMM backend: cuBLASLt, every dtype, several heuristic candidates to autotune.
//!
//! Layout: C is row-major `M×N`, i.e. column-major `N×M`, so cuBLASLt computes
//! `C_cm(N×M) = op(Bᵀ_stored)(N×K) · A_stored(K×M)` with op = transpose on the first operand
//! and none on the second: the "TN" layout FP8 and INT8 tensor cores require, used for every
//! dtype so all run the same way. Row `i` of C is then `N` contiguous elements.

use std::ffi::c_void;

use cudarc::cublaslt::result as lt_result;
use cudarc::cublaslt::sys;
use cudarc::driver::{CudaSlice, DevicePtr};
use half::{bf16, f16};

use super::context::OpenDevice;
use super::events::EventTimer;
use super::kernels::Kernels;
use super::lt::{self, Layout, LtHandle, MatmulDesc, Preference};
use crate::backend::{
    check_algorithm_index, gemm_device_bytes, rotation_sets, GemmBackend, GemmOptions, PreparedGemm,
};
use crate::device::{ensure_fits, DeviceInfo};
use crate::dtype::GemmDtype;
use crate::error::{MatmulError, Result};
use crate::fp8::f32_to_e4m3;
use crate::mode::{GemmMode, NumericsOptions};
use crate::operands::HostOperands;
use crate::shape::GemmShape;

/// Byte alignment of each rotated copy of A and B (cuBLASLt wants 16; 256 keeps every copy
/// on its own cache lines).
const COPY_ALIGN: u64 = 256;

/// GEMMs on one CUDA device through cuBLASLt.
pub struct CudaGemmBackend {
    dev: OpenDevice,
    handle: LtHandle,
    workspace: CudaSlice<u8>,
    /// Our helper kernels (the pre-batch `spin`); `None` if NVRTC failed, which only costs
    /// accuracy on GEMMs shorter than the host's launch overhead.
    kernels: Option<Kernels>,
    timer: EventTimer,
}

impl CudaGemmBackend {
    /// Opens CUDA device `ordinal`: context, cuBLASLt handle, workspace (32 MiB on Hopper and
    /// newer, 4 MiB before, as NVIDIA recommends) and our helper kernels.
    ///
    /// # Errors
    /// [`MatmulError::NoSuchDevice`] for an ordinal past the device count; driver, cuBLASLt or
    /// NVRTC failures.
    pub fn open(ordinal: usize) -> Result<Self> {
        let mut dev = OpenDevice::open(ordinal, "cuBLASLt")?;
        dev.ctx.bind_to_thread()?;
        dev.info.library = format!("cuBLASLt {}", lt::version());
        let handle = LtHandle::new()?;
        let ws_bytes: usize = if dev.compute_capability.0 >= 9 {
            32 << 20
        } else {
            4 << 20
        };
        let workspace = dev.stream.alloc_zeros::<u8>(ws_bytes)?;
        let kernels = match Kernels::load(&dev.ctx, dev.compute_capability) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(error = %e, "helper kernels unavailable; timing without the pre-batch spin");
                None
            }
        };
        let timer = EventTimer::new(dev.ctx.clone());
        Ok(Self {
            dev,
            handle,
            workspace,
            kernels,
            timer,
        })
    }

    fn sets_for(dtype: GemmDtype, shape: &GemmShape, options: &GemmOptions) -> u64 {
        rotation_sets(copy_bytes(dtype, shape), options.rotation_bytes)
    }
}

/// Bytes of one aligned copy of A plus B.
fn copy_bytes(dtype: GemmDtype, shape: &GemmShape) -> u64 {
    aligned(shape.a_elements().saturating_mul(dtype.input_bytes())).saturating_add(aligned(
        shape.b_elements().saturating_mul(dtype.input_bytes()),
    ))
}

fn aligned(bytes: u64) -> u64 {
    bytes.div_ceil(COPY_ALIGN).saturating_mul(COPY_ALIGN)
}

impl GemmBackend for CudaGemmBackend {
    fn device(&self) -> &DeviceInfo {
        &self.dev.info
    }

    fn supports(&self, dtype: GemmDtype) -> Result<()> {
        let (major, minor) = self.dev.compute_capability;
        let what = match dtype {
            GemmDtype::Fp8E4m3 => "fp8 tensor cores",
            _ => "bf16/tf32 tensor cores",
        };
        match dtype.min_compute_capability() {
            Some(cc) if (major, minor) < cc => Err(MatmulError::UnsupportedDtype {
                dtype,
                device: format!("{} ({})", self.dev.info.device, self.dev.info.name),
                reason: format!(
                    "{what} need compute capability {}.{} or newer; this GPU is {major}.{minor}",
                    cc.0, cc.1
                ),
            }),
            _ => Ok(()),
        }
    }

    fn ensure_fits(
        &self,
        dtype: GemmDtype,
        shape: &GemmShape,
        options: &GemmOptions,
    ) -> Result<()> {
        self.supports(dtype)?;
        let sets = Self::sets_for(dtype, shape, options);
        let needed = gemm_device_bytes(dtype, shape, sets, 0).max(
            copy_bytes(dtype, shape)
                .saturating_mul(sets)
                .saturating_add(shape.c_elements().saturating_mul(dtype.output_bytes())),
        );
        ensure_fits(
            &format!("{dtype} GEMM {shape}"),
            &self.dev.info.device,
            needed,
            self.dev.free_bytes()?,
        )
    }

    fn prepare<'a>(
        &'a mut self,
        operands: &HostOperands,
        options: &GemmOptions,
    ) -> Result<Box<dyn PreparedGemm + 'a>> {
        let dtype = operands.dtype;
        let shape = operands.shape;
        self.ensure_fits(dtype, &shape, options)?;
        self.dev.ctx.bind_to_thread()?;
        let sets = Self::sets_for(dtype, &shape, options);
        let a_stride = aligned(shape.a_elements() * dtype.input_bytes());
        let b_stride = aligned(shape.b_elements() * dtype.input_bytes());
        let stream = self.dev.stream.clone();

        // Inputs: one encoded copy on the host, uploaded into every rotated copy.
        let a_host = encode(dtype, &operands.a);
        let b_host = encode(dtype, &operands.b_t);
        let mut a_all = stream.alloc_zeros::<u8>(to_usize(a_stride * sets)?)?;
        let mut b_all = stream.alloc_zeros::<u8>(to_usize(b_stride * sets)?)?;
        for s in 0..sets {
            let a0 = to_usize(s * a_stride)?;
            let b0 = to_usize(s * b_stride)?;
            stream.memcpy_htod(&a_host, &mut a_all.slice_mut(a0..a0 + a_host.len()))?;
            stream.memcpy_htod(&b_host, &mut b_all.slice_mut(b0..b0 + b_host.len()))?;
        }
        let c_bytes = to_usize(shape.c_elements() * dtype.output_bytes())?;
        let d = stream.alloc_zeros::<u8>(c_bytes)?;
        // cuBLAS's A is our Bᵀ and its B is our A, so the scales swap too.
        // Each scale on its own 16-byte boundary.
        let scales = stream.clone_htod(&[
            operands.b_scale,
            0.0,
            0.0,
            0.0,
            operands.a_scale,
            0.0,
            0.0,
            0.0,
        ])?;

        let problem = LtProblem::new(dtype, &shape, options.numerics, self.workspace.len())?;
        // The scale pointers are part of the problem: set them before asking for algorithms,
        // or cuBLASLt offers candidates that it then refuses to launch (NOT_SUPPORTED).
        let scale_ptr = raw_ptr(&scales, &stream);
        if dtype == GemmDtype::Fp8E4m3 {
            use sys::cublasLtMatmulDescAttributes_t as D;
            let a_scale_ptr = scale_ptr;
            let b_scale_ptr = scale_ptr + 16;
            problem
                .desc
                .set(D::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale_ptr)?;
            problem
                .desc
                .set(D::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale_ptr)?;
        }
        let algos = lt::heuristics(
            &self.handle,
            &problem.desc,
            &problem.a_layout,
            &problem.b_layout,
            &problem.c_layout,
            &problem.pref,
            options.autotune_candidates,
        )?;
        if algos.is_empty() {
            return Err(MatmulError::NoAlgorithm(format!(
                "{dtype} GEMM {shape} ({})",
                GemmMode::cublaslt(dtype, options.numerics)
            )));
        }
        // Raw pointers for the launch loop; the guards only matter with several streams, and
        // everything here runs on one.
        let a_ptr = raw_ptr(&a_all, &stream);
        let b_ptr = raw_ptr(&b_all, &stream);
        let d_ptr = raw_ptr(&d, &stream);
        let ws_ptr = raw_ptr(&self.workspace, &stream);
        let raw = RawLaunch {
            handle: self.handle.0,
            first_operand: b_ptr,
            first_stride: b_stride,
            second_operand: a_ptr,
            second_stride: a_stride,
            d: d_ptr,
            workspace: ws_ptr,
            workspace_bytes: self.workspace.len(),
            stream: self.dev.stream.cu_stream(),
            integer_scale: dtype == GemmDtype::Int8,
        };
        Ok(Box::new(CudaGemm {
            dtype,
            shape,
            numerics: options.numerics,
            sets,
            problem,
            algos,
            selected: 0,
            next_set: 0,
            raw,
            d,
            _a_all: a_all,
            _b_all: b_all,
            _scales: scales,
            backend: self,
        }))
    }
}

fn raw_ptr<T>(slice: &CudaSlice<T>, stream: &std::sync::Arc<cudarc::driver::CudaStream>) -> u64 {
    let (ptr, _guard) = slice.device_ptr(stream);
    ptr
}

fn to_usize(bytes: u64) -> Result<usize> {
    usize::try_from(bytes)
        .map_err(|_| MatmulError::InvalidSize(format!("{bytes} bytes is not addressable")))
}

/// The values of `values` as the device stores them for `dtype`, little-endian bytes.
fn encode(dtype: GemmDtype, values: &[f32]) -> Vec<u8> {
    match dtype {
        GemmDtype::Fp32 | GemmDtype::Tf32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GemmDtype::Fp16 => values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes())
            .collect(),
        GemmDtype::Bf16 => values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_bits().to_le_bytes())
            .collect(),
        GemmDtype::Fp8E4m3 => values.iter().map(|&v| f32_to_e4m3(v)).collect(),
        // Values are integers in -127..=127; `as i8` is exact, `as u8` keeps the bits.
        GemmDtype::Int8 => values.iter().map(|&v| (v as i8) as u8).collect(),
    }
}

/// Output values of `dtype` from little-endian bytes, as f64.
fn decode_output(dtype: GemmDtype, bytes: &[u8]) -> Vec<f64> {
    match dtype {
        GemmDtype::Fp32 | GemmDtype::Tf32 => bytes
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        GemmDtype::Int8 => bytes
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        GemmDtype::Fp16 => bytes
            .chunks_exact(2)
            .map(|c| f64::from(f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()))
            .collect(),
        GemmDtype::Bf16 | GemmDtype::Fp8E4m3 => bytes
            .chunks_exact(2)
            .map(|c| f64::from(bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()))
            .collect(),
    }
}

/// The cuBLASLt descriptors of one problem.
struct LtProblem {
    desc: MatmulDesc,
    a_layout: Layout,
    b_layout: Layout,
    c_layout: Layout,
    pref: Preference,
}

impl LtProblem {
    fn new(
        dtype: GemmDtype,
        shape: &GemmShape,
        numerics: NumericsOptions,
        workspace_bytes: usize,
    ) -> Result<Self> {
        use sys::cublasComputeType_t as C;
        use sys::cudaDataType_t as T;
        let (input, output, compute, scale) = match dtype {
            GemmDtype::Fp32 => (
                T::CUDA_R_32F,
                T::CUDA_R_32F,
                C::CUBLAS_COMPUTE_32F,
                T::CUDA_R_32F,
            ),
            GemmDtype::Tf32 => (
                T::CUDA_R_32F,
                T::CUDA_R_32F,
                C::CUBLAS_COMPUTE_32F_FAST_TF32,
                T::CUDA_R_32F,
            ),
            GemmDtype::Fp16 => (
                T::CUDA_R_16F,
                T::CUDA_R_16F,
                C::CUBLAS_COMPUTE_32F,
                T::CUDA_R_32F,
            ),
            GemmDtype::Bf16 => (
                T::CUDA_R_16BF,
                T::CUDA_R_16BF,
                C::CUBLAS_COMPUTE_32F,
                T::CUDA_R_32F,
            ),
            GemmDtype::Fp8E4m3 => (
                T::CUDA_R_8F_E4M3,
                T::CUDA_R_16BF,
                C::CUBLAS_COMPUTE_32F,
                T::CUDA_R_32F,
            ),
            GemmDtype::Int8 => (
                T::CUDA_R_8I,
                T::CUDA_R_32I,
                C::CUBLAS_COMPUTE_32I,
                T::CUDA_R_32I,
            ),
        };
        let (m, n, k) = (shape.m as u64, shape.n as u64, shape.k as u64);
        let a_layout = Layout::new(input, k, n, k as i64)?; // Bᵀ stored: K×N col-major, op T
        let b_layout = Layout::new(input, k, m, k as i64)?; // A stored: K×M col-major, op N
        let c_layout = Layout::new(output, n, m, n as i64)?; // C: N×M col-major = M×N row-major
        let desc = MatmulDesc::new(compute, scale)?;
        {
            use sys::cublasLtMatmulDescAttributes_t as D;
            let op_t: i32 = 1; // CUBLAS_OP_T
            let op_n: i32 = 0; // CUBLAS_OP_N
            desc.set(D::CUBLASLT_MATMUL_DESC_TRANSA, &op_t)?;
            desc.set(D::CUBLASLT_MATMUL_DESC_TRANSB, &op_n)?;
            // Off is cuBLASLt's default: set the attribute only to turn fast accumulation on.
            if dtype == GemmDtype::Fp8E4m3 && numerics.fp8_fast_accum {
                let fast: i8 = 1;
                desc.set(D::CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast)?;
            }
        }
        let pref = Preference::new()?;
        {
            use sys::cublasLtMatmulPreferenceAttributes_t as P;
            use sys::cublasLtReductionScheme_t as R;
            let ws = workspace_bytes as u64;
            pref.set(P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws)?;
            let sixteen_bit_out = matches!(
                dtype,
                GemmDtype::Fp16 | GemmDtype::Bf16 | GemmDtype::Fp8E4m3
            );
            if sixteen_bit_out && !numerics.reduced_precision_reduction {
                // Split-K partial sums only in the f32 compute type: no reductions in the
                // 16-bit output type (OUTPUT_TYPE) or in place in the output (INPLACE).
                let mask = R::CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE as u32;
                pref.set(P::CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask)?;
            }
        }
        Ok(Self {
            desc,
            a_layout,
            b_layout,
            c_layout,
            pref,
        })
    }
}

/// Raw values one launch needs (the buffers they point into are owned by [`CudaGemm`]).
#[derive(Clone, Copy)]
struct RawLaunch {
    handle: sys::cublasLtHandle_t,
    first_operand: u64,
    first_stride: u64,
    second_operand: u64,
    second_stride: u64,
    d: u64,
    workspace: u64,
    workspace_bytes: usize,
    stream: cudarc::driver::sys::CUstream,
    integer_scale: bool,
}

impl RawLaunch {
    /// Queues one GEMM on copy `set` of the inputs.
    fn launch(
        &self,
        problem: &LtProblem,
        algo: &sys::cublasLtMatmulHeuristicResult_t,
        set: u64,
    ) -> Result<()> {
        let (alpha_f, beta_f) = (1f32, 0f32);
        let (alpha_i, beta_i) = (1i32, 0i32);
        let (alpha, beta): (*const c_void, *const c_void) = if self.integer_scale {
            (
                (&alpha_i as *const i32).cast(),
                (&beta_i as *const i32).cast(),
            )
        } else {
            (
                (&alpha_f as *const f32).cast(),
                (&beta_f as *const f32).cast(),
            )
        };
        let a = self.first_operand + set * self.first_stride;
        let b = self.second_operand + set * self.second_stride;
        // SAFETY: the descriptors match the buffers (sizes checked when they were allocated),
        // every pointer is a live allocation owned by the `CudaGemm` this launch belongs to,
        // alpha/beta have the descriptor's scale type and outlive the call.
        unsafe {
            lt_result::matmul(
                self.handle,
                problem.desc.0,
                alpha,
                beta,
                a as *const c_void,
                problem.a_layout.0,
                b as *const c_void,
                problem.b_layout.0,
                self.d as *const c_void,
                problem.c_layout.0,
                self.d as *mut c_void,
                problem.c_layout.0,
                &algo.algo,
                self.workspace as *mut c_void,
                self.workspace_bytes,
                self.stream as *mut _,
            )?;
        }
        Ok(())
    }
}

/// One GEMM with its buffers on the device.
struct CudaGemm<'a> {
    dtype: GemmDtype,
    shape: GemmShape,
    numerics: NumericsOptions,
    sets: u64,
    problem: LtProblem,
    algos: Vec<sys::cublasLtMatmulHeuristicResult_t>,
    selected: usize,
    next_set: u64,
    raw: RawLaunch,
    d: CudaSlice<u8>,
    _a_all: CudaSlice<u8>,
    _b_all: CudaSlice<u8>,
    _scales: CudaSlice<f32>,
    backend: &'a mut CudaGemmBackend,
}

impl PreparedGemm for CudaGemm<'_> {
    fn mode(&self) -> GemmMode {
        GemmMode::cublaslt(self.dtype, self.numerics)
    }

    fn algorithm_count(&self) -> usize {
        self.algos.len()
    }

    fn select_algorithm(&mut self, index: usize) -> Result<()> {
        check_algorithm_index(index, self.algos.len())?;
        self.selected = index;
        Ok(())
    }

    fn algorithm_label(&self) -> String {
        format!(
            "cuBLASLt heuristic #{} of {}: {}",
            self.selected,
            self.algos.len(),
            lt::describe(&self.algos[self.selected])
        )
    }

    fn rotation_sets(&self) -> u64 {
        self.sets
    }

    fn run_once(&mut self) -> Result<()> {
        let stream = self.backend.dev.stream.clone();
        stream.memset_zeros(&mut self.d)?;
        self.raw
            .launch(&self.problem, &self.algos[self.selected], 0)?;
        stream.synchronize()?;
        Ok(())
    }

    fn read_rows(&mut self, rows: &[usize]) -> Result<Vec<Vec<f64>>> {
        let GemmShape { m, n, .. } = self.shape;
        let row_bytes = n * self.dtype.output_bytes() as usize;
        let stream = self.backend.dev.stream.clone();
        rows.iter()
            .map(|&r| {
                if r >= m {
                    return Err(MatmulError::InvalidSize(format!(
                        "row {r} is outside a GEMM with {m} rows"
                    )));
                }
                let bytes = stream.clone_dtoh(&self.d.slice(r * row_bytes..(r + 1) * row_bytes))?;
                Ok(decode_output(self.dtype, &bytes))
            })
            .collect()
    }

    fn time_launches(&mut self, count: usize) -> Result<Vec<f64>> {
        let CudaGemmBackend {
            dev,
            kernels,
            timer,
            ..
        } = &mut *self.backend;
        let stream = dev.stream.clone();
        let (raw, problem, algo) = (self.raw, &self.problem, &self.algos[self.selected]);
        let sets = self.sets;
        let mut set = self.next_set;
        let times = timer.time(
            &stream,
            count,
            || kernels.as_ref().map_or(Ok(()), |k| k.spin(&stream)),
            |_| {
                let this = set;
                set = (set + 1) % sets;
                raw.launch(problem, algo, this)
            },
        )?;
        self.next_set = set;
        Ok(times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_through_decoding_for_16_bit_outputs() {
        let v = [1.5f32, -2.25, 0.0, 3.0];
        let bytes = encode(GemmDtype::Bf16, &v);
        assert_eq!(
            decode_output(GemmDtype::Bf16, &bytes),
            [1.5, -2.25, 0.0, 3.0]
        );
        let bytes = encode(GemmDtype::Fp16, &v);
        assert_eq!(
            decode_output(GemmDtype::Fp16, &bytes),
            [1.5, -2.25, 0.0, 3.0]
        );
        assert_eq!(encode(GemmDtype::Int8, &[-127.0, 5.0]), [0x81, 0x05]);
        assert_eq!(encode(GemmDtype::Fp8E4m3, &[1.0]), [0x38]);
    }
}
