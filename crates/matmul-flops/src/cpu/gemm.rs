//! The CPU GEMM backend: the `gemm` crate (the one candle's CPU matmul uses), all cores.

use std::time::Instant;

use half::f16;

use crate::backend::{
    check_algorithm_index, gemm_device_bytes, rotation_sets, GemmBackend, GemmOptions, PreparedGemm,
};
use crate::device::{ensure_fits, host_available_bytes, DeviceInfo};
use crate::dtype::GemmDtype;
use crate::error::{MatmulError, Result};
use crate::mode::GemmMode;
use crate::operands::HostOperands;
use crate::shape::GemmShape;

/// GEMMs on the host CPU through the `gemm` crate, fp32 and fp16 (fp16 is widened to f32
/// inside the kernel), on every core.
#[derive(Debug, Clone)]
pub struct CpuGemmBackend {
    info: DeviceInfo,
}

impl Default for CpuGemmBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuGemmBackend {
    /// The backend for this host.
    pub fn new() -> Self {
        Self {
            info: super::cpu_device_info("gemm crate 0.19 (rayon, all cores)"),
        }
    }
}

impl GemmBackend for CpuGemmBackend {
    fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn supports(&self, dtype: GemmDtype) -> Result<()> {
        match dtype {
            GemmDtype::Fp32 | GemmDtype::Fp16 => Ok(()),
            _ => Err(MatmulError::UnsupportedDtype {
                dtype,
                device: "cpu".into(),
                reason: "the CPU backend runs fp32 and fp16; tf32, bf16, fp8 and int8 GEMMs are \
                         GPU tensor-core formats (use --device cuda)"
                    .into(),
            }),
        }
    }

    fn ensure_fits(
        &self,
        dtype: GemmDtype,
        shape: &GemmShape,
        options: &GemmOptions,
    ) -> Result<()> {
        self.supports(dtype)?;
        let needed = host_bytes_needed(dtype, shape, options);
        ensure_fits(
            &format!("{dtype} GEMM {shape}"),
            "cpu",
            needed,
            host_available_bytes(),
        )
    }

    fn prepare<'a>(
        &'a mut self,
        operands: &HostOperands,
        options: &GemmOptions,
    ) -> Result<Box<dyn PreparedGemm + 'a>> {
        let dtype = operands.dtype;
        self.supports(dtype)?;
        let shape = operands.shape;
        // The operands already exist; what is left to allocate are the rotated copies and C.
        let needed = gemm_device_bytes(dtype, &shape, sets_for(dtype, &shape, options), 0);
        ensure_fits(
            &format!("{dtype} GEMM {shape}"),
            "cpu",
            needed,
            host_available_bytes(),
        )?;
        let sets = sets_for(dtype, &shape, options);
        Ok(match dtype {
            GemmDtype::Fp16 => Box::new(CpuGemm::<f16>::new(operands, sets)),
            _ => Box::new(CpuGemm::<f32>::new(operands, sets)),
        })
    }
}

fn sets_for(dtype: GemmDtype, shape: &GemmShape, options: &GemmOptions) -> u64 {
    let set_bytes = shape
        .a_elements()
        .saturating_add(shape.b_elements())
        .saturating_mul(dtype.input_bytes());
    rotation_sets(set_bytes, options.rotation_bytes)
}

/// Host bytes a CPU GEMM needs: the f32 operands, the rotated copies and C.
fn host_bytes_needed(dtype: GemmDtype, shape: &GemmShape, options: &GemmOptions) -> u64 {
    HostOperands::host_bytes(shape).saturating_add(gemm_device_bytes(
        dtype,
        shape,
        sets_for(dtype, shape, options),
        0,
    ))
}

/// An element type the `gemm` crate multiplies.
trait CpuElement: Copy + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
    fn from_f32(v: f32) -> Self;
    fn to_f64(self) -> f64;
}

impl CpuElement for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl CpuElement for f16 {
    const ZERO: Self = f16::ZERO;
    const ONE: Self = f16::ONE;
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn to_f64(self) -> f64 {
        f64::from(self.to_f32())
    }
}

struct CpuGemm<T: CpuElement> {
    dtype: GemmDtype,
    shape: GemmShape,
    sets: usize,
    /// `sets` copies of A (`M×K` row-major), back to back.
    a: Vec<T>,
    /// `sets` copies of Bᵀ (`N×K` row-major), back to back.
    b_t: Vec<T>,
    /// C, `M×N` row-major.
    c: Vec<T>,
    next_set: usize,
}

impl<T: CpuElement> CpuGemm<T> {
    fn new(ops: &HostOperands, sets: u64) -> Self {
        let sets = usize::try_from(sets).unwrap_or(1).max(1);
        let one_a: Vec<T> = ops.a.iter().map(|&v| T::from_f32(v)).collect();
        let one_b: Vec<T> = ops.b_t.iter().map(|&v| T::from_f32(v)).collect();
        let a = one_a.repeat(sets);
        let b_t = one_b.repeat(sets);
        let c = vec![T::ZERO; ops.shape.m * ops.shape.n];
        Self {
            dtype: ops.dtype,
            shape: ops.shape,
            sets,
            a,
            b_t,
            c,
            next_set: 0,
        }
    }

    fn launch(&mut self, set: usize) {
        let GemmShape { m, n, k } = self.shape;
        let a = &self.a[set * m * k..(set + 1) * m * k];
        let b = &self.b_t[set * n * k..(set + 1) * n * k];
        // SAFETY: `a` is M×K row-major (col stride 1, row stride K), `b` holds Bᵀ so B[p][j]
        // is at `j*K + p` (row stride 1, col stride K), `c` is M×N row-major; the slices have
        // exactly those lengths, and `c` does not alias `a` or `b`.
        unsafe {
            ::gemm::gemm(
                m,
                n,
                k,
                self.c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                k as isize,
                1,
                T::ZERO,
                T::ONE,
                false,
                false,
                false,
                ::gemm::Parallelism::Rayon(0),
            );
        }
    }
}

impl<T: CpuElement> PreparedGemm for CpuGemm<T> {
    fn mode(&self) -> GemmMode {
        GemmMode::cpu(self.dtype)
    }

    fn algorithm_count(&self) -> usize {
        1
    }

    fn select_algorithm(&mut self, index: usize) -> Result<()> {
        check_algorithm_index(index, 1)
    }

    fn algorithm_label(&self) -> String {
        "gemm crate, rayon over all cores".into()
    }

    fn rotation_sets(&self) -> u64 {
        self.sets as u64
    }

    fn run_once(&mut self) -> Result<()> {
        self.c.iter_mut().for_each(|v| *v = T::ZERO);
        self.launch(0);
        Ok(())
    }

    fn read_rows(&mut self, rows: &[usize]) -> Result<Vec<Vec<f64>>> {
        let GemmShape { m, n, .. } = self.shape;
        rows.iter()
            .map(|&r| {
                if r >= m {
                    return Err(MatmulError::InvalidSize(format!(
                        "row {r} is outside a GEMM with {m} rows"
                    )));
                }
                Ok(self.c[r * n..(r + 1) * n]
                    .iter()
                    .map(|v| v.to_f64())
                    .collect())
            })
            .collect()
    }

    fn time_launches(&mut self, count: usize) -> Result<Vec<f64>> {
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            let set = self.next_set;
            self.next_set = (self.next_set + 1) % self.sets;
            let t = Instant::now();
            self.launch(set);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        std::hint::black_box(&self.c);
        Ok(times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check_rows, sample_rows, ReferenceRows};

    #[test]
    fn cpu_gemm_passes_the_f64_check_for_its_dtypes() {
        let mut backend = CpuGemmBackend::new();
        for dtype in [GemmDtype::Fp32, GemmDtype::Fp16] {
            let shape = GemmShape::new(33, 65, 130).unwrap();
            let ops = HostOperands::random(dtype, shape, 11).unwrap();
            let options = GemmOptions {
                rotation_bytes: 1 << 20,
                ..GemmOptions::default()
            };
            let mut g = backend.prepare(&ops, &options).unwrap();
            assert!(g.rotation_sets() > 1);
            g.run_once().unwrap();
            let rows = sample_rows(33, 8, 1);
            let reference = ReferenceRows::compute(&ops, &rows).unwrap();
            let got = g.read_rows(&rows).unwrap();
            let rep = check_rows(&ops, &reference, &got, "cpu").unwrap();
            assert!(rep.rel_error < dtype.tolerance(), "{dtype}: {rep:?}");
            let t = g.time_launches(3).unwrap();
            assert_eq!(t.len(), 3);
            assert!(g.read_rows(&[33]).is_err());
            assert!(g.select_algorithm(1).is_err());
        }
    }

    #[test]
    fn gpu_only_dtypes_are_refused_with_a_reason() {
        let b = CpuGemmBackend::new();
        for d in [
            GemmDtype::Tf32,
            GemmDtype::Bf16,
            GemmDtype::Fp8E4m3,
            GemmDtype::Int8,
        ] {
            let e = b.supports(d).unwrap_err().to_string();
            assert!(e.contains("not supported on cpu"), "{e}");
        }
    }

    #[test]
    fn a_gemm_too_large_for_ram_is_refused_before_allocating() {
        let b = CpuGemmBackend::new();
        let shape = GemmShape::square(10_000_000).unwrap();
        let e = b
            .ensure_fits(GemmDtype::Fp32, &shape, &GemmOptions::default())
            .unwrap_err();
        assert!(matches!(e, MatmulError::InsufficientMemory { .. }), "{e}");
        assert!(e.to_string().contains("GiB is free"));
    }
}
