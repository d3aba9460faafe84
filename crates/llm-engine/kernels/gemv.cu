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

// U: 16-byte weight loads in flight per lane (U * 512 bytes per warp); measured on the H200,
// 4 beats 8 and 16 over a whole Llama-2-7B step (more registers, fewer warps per
// multiprocessor). The *_u8 variants (U = 8, one warp per column) are for layers whose warps
// all fit on the GPU at once (n up to ~8,000 columns): there occupancy is not what limits, and
// a warp's row takes half as many round trips to memory.
// W: warps per output column. A layer with few columns (4,096 at Llama-2-7B's o_proj and
// down_proj) has too few warps (31 per multiprocessor on 132) to keep enough loads in flight;
// W warps share a column's row, each taking every W-th group of 32 chunks, and their partial
// sums meet in shared memory.
template <typename T, int M, int U, int W>
__device__ __forceinline__ void gemv_impl(T* __restrict__ y, const T* __restrict__ x, const T* __restrict__ w,
                                          const T* __restrict__ bias, int n, int k) {
  constexpr int V = 16 / sizeof(T);
  __shared__ float partial[32][M];  // one slot per warp of the block (at most 32 warps)
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int part = warp % W;
  const long long col = (long long)blockIdx.x * ((blockDim.x >> 5) / W) + warp / W;
  // No early return: with W > 1 every thread reaches the __syncthreads below.
  const bool valid = col < n;
  const uint4* wr = reinterpret_cast<const uint4*>(w + (valid ? col : 0) * k);
  const int chunks = valid ? k / V : 0;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  // Each round issues all U loads (the last round's past the row end predicated off) before
  // any arithmetic waits on them: one round trip to memory per round.
  for (int base = part * 32 + lane; base < chunks; base += U * 32 * W) {
    uint4 wv[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = base + u * 32 * W;
      wv[u] = c < chunks ? __ldg(wr + c) : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = base + u * 32 * W;
      if (c < chunks) dot_chunk<T, M>(acc, wv[u], x, k, c);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = warp_sum(acc[m]);
  if (W > 1) {
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < M; ++m) partial[warp][m] = acc[m];
    }
    __syncthreads();
    if (part == 0 && lane == 0) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float s = 0.f;
#pragma unroll
        for (int p = 0; p < W; ++p) s += partial[warp + p][m];
        acc[m] = s;
      }
    }
  }
  if (valid && part == 0 && lane == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float s = acc[m];
      if (bias != nullptr) s += to_float(bias[col]);
      y[(long long)m * n + col] = from_float<T>(s);
    }
  }
}

#define GEMV(NAME, T, M, W)                                                                       \
  extern "C" __global__ void gemv_m##M##_w##W##_##NAME(T* y, const T* x, const T* w, const T* bias, \
                                                      int n, int k) {                              \
    gemv_impl<T, M, 4, W>(y, x, w, bias, n, k);                                                   \
  }

#define GEMV_DEEP(NAME, T, M)                                                                     \
  extern "C" __global__ void gemv_m##M##_w1_u8_##NAME(T* y, const T* x, const T* w, const T* bias, \
                                                     int n, int k) {                              \
    gemv_impl<T, M, 8, 1>(y, x, w, bias, n, k);                                                   \
  }

#define GEMV_W(NAME, T, W) GEMV(NAME, T, 1, W) GEMV(NAME, T, 2, W) GEMV(NAME, T, 3, W) GEMV(NAME, T, 4, W)
#define GEMV_ALL(NAME, T)                                                                     \
  GEMV_W(NAME, T, 1) GEMV_W(NAME, T, 2) GEMV_W(NAME, T, 4) GEMV_DEEP(NAME, T, 1)              \
  GEMV_DEEP(NAME, T, 2) GEMV_DEEP(NAME, T, 3) GEMV_DEEP(NAME, T, 4)

GEMV_ALL(f32, float)
GEMV_ALL(f16, __half)
GEMV_ALL(bf16, __nv_bfloat16)
