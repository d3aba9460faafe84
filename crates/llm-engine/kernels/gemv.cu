// Linear layers of a decode step with a handful of rows: y[m, n] = sum_k x[m, k] * w[n, k]
// (+ bias[n]), for M = 1..4 rows of x and the PyTorch weight layout w [n, k].
//
// At M = 1..4 a linear layer is a pass over its weight: the speed is how close the loads come
// to the memory bandwidth. One warp per output column n reads its weight row with 16-byte
// loads, four per lane in flight before any arithmetic; the x rows (a few KiB, shared by every
// warp) come through L1. f32 accumulation, one rounding to T at the end, as cuBLAS does.
//
// Requires k % (16 / sizeof(T)) == 0 and 16-byte-aligned w and x rows (the host checks and
// falls back to cuBLAS otherwise).
#include "common.cuh"

template <typename T, int M>
__device__ __forceinline__ void dot_chunk(float (&acc)[M], const uint4 wv, const T* __restrict__ x, int k,
                                          int chunk) {
  constexpr int V = 16 / sizeof(T);
  const T* we = reinterpret_cast<const T*>(&wv);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + (long long)m * k) + chunk);
    const T* xe = reinterpret_cast<const T*>(&xv);
#pragma unroll
    for (int e = 0; e < V; ++e) acc[m] = fmaf(to_float(we[e]), to_float(xe[e]), acc[m]);
  }
}

// U: 16-byte weight loads in flight per lane (U * 512 bytes per warp). A warp lives for
// ceil(k / (V * 32 * U)) round trips to memory; the longer it lives, the longer the tail of
// the last, partly filled wave of warps, where the GPU is not saturated.
template <typename T, int M, int U>
__device__ __forceinline__ void gemv_impl(T* __restrict__ y, const T* __restrict__ x, const T* __restrict__ w,
                                          const T* __restrict__ bias, int n, int k) {
  constexpr int V = 16 / sizeof(T);
  const int lane = threadIdx.x & 31;
  const long long col = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (col >= n) return;
  const uint4* wr = reinterpret_cast<const uint4*>(w + col * k);
  const int chunks = k / V;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  // Each round issues all U loads (the last round's past the row end predicated off) before
  // any arithmetic waits on them: one round trip to memory per round.
  for (int base = lane; base < chunks; base += U * 32) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = base + u * 32;
      wv[u] = c < chunks ? __ldg(wr + c) : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = base + u * 32;
      if (c < chunks) dot_chunk<T, M>(acc, wv[u], x, k, c);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float s = warp_sum(acc[m]);
    if (lane == 0) {
      if (bias != nullptr) s += to_float(bias[col]);
      y[(long long)m * n + col] = from_float<T>(s);
    }
  }
}

#define GEMV(NAME, T, M, U)                                                                       \
  extern "C" __global__ void gemv_m##M##_u##U##_##NAME(T* y, const T* x, const T* w, const T* bias, \
                                                      int n, int k) {                              \
    gemv_impl<T, M, U>(y, x, w, bias, n, k);                                                      \
  }

#define GEMV_U(NAME, T, U) GEMV(NAME, T, 1, U) GEMV(NAME, T, 2, U) GEMV(NAME, T, 3, U) GEMV(NAME, T, 4, U)
#define GEMV_ALL_M(NAME, T) GEMV_U(NAME, T, 4) GEMV_U(NAME, T, 8) GEMV_U(NAME, T, 16)

GEMV_ALL_M(f32, float)
GEMV_ALL_M(f16, __half)
GEMV_ALL_M(bf16, __nv_bfloat16)
