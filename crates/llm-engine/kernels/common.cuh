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

// One prefill tile of the step's metadata, as every prefill kernel reads it: the tile's
// sequence slice, first query row on the flat token axis, number of queries and their first
// position, the block's first query head and its kv head, and the slice's block-table row.
struct PrefillTile {
  int slice;
  long long qrow0;
  int nq;
  int p0;
  int head0;
  int kvh;
  const uint32_t* table;
};

// The tile of block (blockIdx.x, blockIdx.y) for blocks of `qpb` query heads.
__device__ __forceinline__ PrefillTile prefill_tile(const uint32_t* __restrict__ tiles,
                                                    const uint32_t* __restrict__ block_tables,
                                                    int max_blocks, int num_heads,
                                                    int num_kv_heads, int qpb) {
  const uint32_t* tile = tiles + 4 * (long long)blockIdx.x;
  PrefillTile t;
  t.slice = tile[0];
  t.qrow0 = tile[1];
  t.nq = tile[2];
  t.p0 = tile[3];
  t.head0 = blockIdx.y * qpb;
  t.kvh = t.head0 / (num_heads / num_kv_heads);
  t.table = block_tables + (long long)t.slice * max_blocks;
  return t;
}

// The end of a decode block: merges its NW warps' partial softmax states over QPB query heads
// (running max m and sum l at sm_m / sm_l [NW][QPB], the unnormalised output rows at sm_acc,
// acc_stride floats per (warp, head)) and writes the QPB rows of head_dim elements at out_row.
// LOG2: m is in the log2 domain (exp2f), else natural (expf). The caller has synchronised the
// block after writing the partials.
template <typename T, int QPB, int NW, bool LOG2>
__device__ __forceinline__ void merge_warp_partials(T* __restrict__ out_row, const float* sm_m,
                                                    const float* sm_l, const float* sm_acc,
                                                    int acc_stride, int head_dim) {
  for (int idx = threadIdx.x; idx < QPB * head_dim; idx += NW * 32) {
    const int h = idx / head_dim;
    const int e = idx - h * head_dim;
    float big = -INFINITY;
#pragma unroll
    for (int w = 0; w < NW; ++w) big = fmaxf(big, sm_m[w * QPB + h]);
    float denom = 0.f, num = 0.f;
#pragma unroll
    for (int w = 0; w < NW; ++w) {
      const float mw = sm_m[w * QPB + h];
      const float f = (mw == -INFINITY) ? 0.f : (LOG2 ? exp2f(mw - big) : expf(mw - big));
      denom += sm_l[w * QPB + h] * f;
      num += sm_acc[(w * QPB + h) * acc_stride + e] * f;
    }
    out_row[(long long)h * head_dim + e] = from_float<T>(num / denom);
  }
}

