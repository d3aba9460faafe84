// Shared helpers of llm-engine's CUDA kernels: element conversions, vector loads, warp reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// N consecutive elements, aligned so that one (or two) vector loads fetch them.
template <typename T, int N> struct alignas(sizeof(T) * N) VecN { T v[N]; };

// Loads elements e0 .. e0+N of `row` as floats. `aligned`: e0+N <= len and the address is
// aligned to N elements (one vector load); otherwise element-wise, zero past `len`.
template <typename T, int N>
__device__ __forceinline__ void load_floats(const T* __restrict__ row, int e0, int len, bool aligned,
                                            float (&out)[N]) {
  if (aligned) {
    const VecN<T, N> v = *reinterpret_cast<const VecN<T, N>*>(row + e0);
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = to_float(v.v[i]);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = (e0 + i < len) ? to_float(row[e0 + i]) : 0.f;
  }
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// The cache slot (row of a head's [num_slots, head_dim] matrix) of position `pos`.
__device__ __forceinline__ long long slot_of(const uint32_t* __restrict__ table, int pos, int block_size) {
  return (long long)table[pos / block_size] * block_size + pos % block_size;
}
