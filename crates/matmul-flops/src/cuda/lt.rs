//! Thin RAII wrappers over the cuBLASLt descriptors we need (cudarc's safe `Matmul` asks the
//! heuristic for one algorithm per call and knows neither FP8 scales nor INT8; we build the
//! descriptors once per problem, ask for several algorithms, and launch with raw pointers).

use std::ffi::c_void;
use std::mem::size_of;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys;

use crate::error::{MatmulError, Result};

/// A cuBLASLt library handle.
pub(crate) struct LtHandle(pub(crate) sys::cublasLtHandle_t);

impl LtHandle {
    /// Creates a handle (the CUDA context must be current).
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(lt::create_handle()?))
    }
}

impl Drop for LtHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `create_handle` and is destroyed once.
        if let Err(e) = unsafe { lt::destroy_handle(self.0) } {
            tracing::warn!(error = ?e, "cublasLtDestroy failed");
        }
    }
}

/// A matrix layout descriptor (column-major, as cuBLAS sees memory).
pub(crate) struct Layout(pub(crate) sys::cublasLtMatrixLayout_t);

impl Layout {
    pub(crate) fn new(ty: sys::cudaDataType, rows: u64, cols: u64, ld: i64) -> Result<Self> {
        Ok(Self(lt::create_matrix_layout(ty, rows, cols, ld)?))
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        // SAFETY: created by `create_matrix_layout`, destroyed once.
        if let Err(e) = unsafe { lt::destroy_matrix_layout(self.0) } {
            tracing::warn!(error = ?e, "cublasLtMatrixLayoutDestroy failed");
        }
    }
}

/// A matmul operation descriptor.
pub(crate) struct MatmulDesc(pub(crate) sys::cublasLtMatmulDesc_t);

impl MatmulDesc {
    pub(crate) fn new(compute: sys::cublasComputeType_t, scale: sys::cudaDataType) -> Result<Self> {
        Ok(Self(lt::create_matmul_desc(compute, scale)?))
    }

    /// Sets `attr` to `value`, whose type must be the one cuBLASLt documents for `attr`.
    pub(crate) fn set<T: Copy>(
        &self,
        attr: sys::cublasLtMatmulDescAttributes_t,
        value: &T,
    ) -> Result<()> {
        // SAFETY: `value` points to `size_of::<T>()` readable bytes for the duration of the call.
        unsafe {
            lt::set_matmul_desc_attribute(
                self.0,
                attr,
                (value as *const T).cast::<c_void>(),
                size_of::<T>(),
            )?;
        }
        Ok(())
    }
}

impl Drop for MatmulDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_matmul_desc`, destroyed once.
        if let Err(e) = unsafe { lt::destroy_matmul_desc(self.0) } {
            tracing::warn!(error = ?e, "cublasLtMatmulDescDestroy failed");
        }
    }
}

/// A heuristic-search preference descriptor.
pub(crate) struct Preference(pub(crate) sys::cublasLtMatmulPreference_t);

impl Preference {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(lt::create_matmul_pref()?))
    }

    pub(crate) fn set<T: Copy>(
        &self,
        attr: sys::cublasLtMatmulPreferenceAttributes_t,
        value: &T,
    ) -> Result<()> {
        // SAFETY: as in `MatmulDesc::set`.
        unsafe {
            lt::set_matmul_pref_attribute(
                self.0,
                attr,
                (value as *const T).cast::<c_void>(),
                size_of::<T>(),
            )?;
        }
        Ok(())
    }
}

impl Drop for Preference {
    fn drop(&mut self) {
        // SAFETY: created by `create_matmul_pref`, destroyed once.
        if let Err(e) = unsafe { lt::destroy_matmul_pref(self.0) } {
            tracing::warn!(error = ?e, "cublasLtMatmulPreferenceDestroy failed");
        }
    }
}

/// Asks the heuristic for up to `count` algorithms, best first; only usable ones are kept.
pub(crate) fn heuristics(
    handle: &LtHandle,
    desc: &MatmulDesc,
    a: &Layout,
    b: &Layout,
    c: &Layout,
    pref: &Preference,
    count: usize,
) -> Result<Vec<sys::cublasLtMatmulHeuristicResult_t>> {
    let count = count.clamp(1, 64);
    // SAFETY: the zeroed struct is plain data (integers and floats) that cuBLASLt overwrites.
    let mut results: Vec<sys::cublasLtMatmulHeuristicResult_t> =
        vec![unsafe { std::mem::zeroed() }; count];
    let mut returned: std::ffi::c_int = 0;
    // SAFETY: all descriptors are live; `results` has room for `count` entries.
    let status = unsafe {
        sys::cublasLtMatmulAlgoGetHeuristic(
            handle.0,
            desc.0,
            a.0,
            b.0,
            c.0,
            c.0,
            pref.0,
            count as std::ffi::c_int,
            results.as_mut_ptr(),
            &mut returned,
        )
    };
    if status != sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Err(MatmulError::Cuda(format!(
            "cublasLtMatmulAlgoGetHeuristic: {status:?}"
        )));
    }
    results.truncate(usize::try_from(returned).unwrap_or(0));
    results.retain(|r| r.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS);
    Ok(results)
}

fn algo_attr<T: Copy + Default>(
    algo: &sys::cublasLtMatmulAlgo_t,
    attr: sys::cublasLtMatmulAlgoConfigAttributes_t,
) -> Option<T> {
    let mut value = T::default();
    let mut written = 0usize;
    // SAFETY: `value` has `size_of::<T>()` writable bytes; `algo` is a valid algorithm.
    let status = unsafe {
        sys::cublasLtMatmulAlgoConfigGetAttribute(
            algo,
            attr,
            (&mut value as *mut T).cast::<c_void>(),
            size_of::<T>(),
            &mut written,
        )
    };
    (status == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS).then_some(value)
}

/// `algo 66, tile 21, stages 35, split-k 1, reduction 0, workspace 0 B, waves 0.99`.
pub(crate) fn describe(h: &sys::cublasLtMatmulHeuristicResult_t) -> String {
    use sys::cublasLtMatmulAlgoConfigAttributes_t as A;
    let show = |v: Option<i64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    let id = algo_attr::<i32>(&h.algo, A::CUBLASLT_ALGO_CONFIG_ID).map(i64::from);
    let tile = algo_attr::<u32>(&h.algo, A::CUBLASLT_ALGO_CONFIG_TILE_ID).map(i64::from);
    let stages = algo_attr::<u32>(&h.algo, A::CUBLASLT_ALGO_CONFIG_STAGES_ID).map(i64::from);
    let split = algo_attr::<i32>(&h.algo, A::CUBLASLT_ALGO_CONFIG_SPLITK_NUM).map(i64::from);
    let reduction =
        algo_attr::<u32>(&h.algo, A::CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME).map(i64::from);
    format!(
        "algo {}, tile {}, stages {}, split-k {}, reduction {}, workspace {} B, waves {:.2}",
        show(id),
        show(tile),
        show(stages),
        show(split),
        show(reduction),
        h.workspaceSize,
        h.wavesCount
    )
}

/// The cuBLASLt version number (e.g. 130100 for 13.1.0).
pub(crate) fn version() -> usize {
    // SAFETY: a pure query with no arguments.
    unsafe { sys::cublasLtGetVersion() }
}
