// Shared helpers of llm-engine's CUDA kernels: element conversions, vector loads, warp reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>

#include <type_traits>

// The fp8 KV cache's element (E4M3, per-tensor scale 1.0 as vLLM's uncalibrated
// --kv-cache-dtype fp8): writes round to nearest even and saturate to +-448 (NaN stays NaN).
using fp8_e4m3 = __nv_fp8_e4m3;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(fp8_e4m3 x) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(x.__x, __NV_E4M3)));
}

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ fp8_e4m3 from_float<fp8_e4m3>(float x) {
  fp8_e4m3 r;
  r.__x = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
  return r;
}

// A model-dtype value as a cache element: the identity where they are one type, else rounded
// through f32 (exact for f16 / bf16 inputs, so fp8 gets one rounding).
template <typename C, typename T> __device__ __forceinline__ C to_cache(T x) {
  if constexpr (std::is_same<C, T>::value) {
    return x;
  } else {
    return from_float<C>(to_float(x));
  }
}

// Two fp8 E4M3 values (the low byte first) as a pair of model-dtype elements, one register.
template <typename T> __device__ __forceinline__ uint32_t fp8x2_to(uint32_t two);
template <> __device__ __forceinline__ uint32_t fp8x2_to<__half>(uint32_t two) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)two, __NV_E4M3);
  return (uint32_t)h.x | ((uint32_t)h.y << 16);
}
template <> __device__ __forceinline__ uint32_t fp8x2_to<__nv_bfloat16>(uint32_t two) {
  // Every E4M3 value is exact in f16 and in bf16, so going through f16 and f32 is exact.
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)two, __NV_E4M3);
  const float2 f = __half22float2(__half2(h));
  const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
  return *reinterpret_cast<const uint32_t*>(&b);
}

// Four fp8 E4M3 values (a word, the lowest byte first) as two f16x2 registers: one unpack
// and two cvt e4m3x2 -> f16x2 (sm_89+; the halves are register selectors, no shifts).
__device__ __forceinline__ void fp8x4_to_half2x2(uint32_t w, uint32_t& lo, uint32_t& hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm("{\n .reg .b16 a, b;\n mov.b32 {a, b}, %2;\n cvt.rn.f16x2.e4m3x2 %0, a;\n cvt.rn.f16x2.e4m3x2 %1, b;\n}"
      : "=r"(lo), "=r"(hi)
      : "r"(w));
#else
  lo = fp8x2_to<__half>(w & 0xffffu);
  hi = fp8x2_to<__half>(w >> 16);
#endif
}

// 8 fp8 E4M3 bytes (as loaded) as 8 elements of the 2-byte model dtype in one 16-byte vector.
template <typename T> __device__ __forceinline__ uint4 widen8(const uint2& raw) {
  if constexpr (std::is_same<T, __half>::value) {
    uint4 h;
    fp8x4_to_half2x2(raw.x, h.x, h.y);
    fp8x4_to_half2x2(raw.y, h.z, h.w);
    return h;
  } else {
    return make_uint4(fp8x2_to<T>(raw.x & 0xffffu), fp8x2_to<T>(raw.x >> 16), fp8x2_to<T>(raw.y & 0xffffu),
                      fp8x2_to<T>(raw.y >> 16));
  }
}

// 8 consecutive cache elements at `p` as 8 model-dtype (2-byte) elements in one 16-byte
// vector: the vector itself where the cache has the model's dtype, else 8 fp8 bytes converted.
template <typename T, typename C> __device__ __forceinline__ uint4 load8_as(const C* __restrict__ p) {
  if constexpr (std::is_same<C, T>::value) {
    return *reinterpret_cast<const uint4*>(p);
  } else {
    static_assert(std::is_same<C, fp8_e4m3>::value && sizeof(T) == 2, "fp8 cache, 2-byte model dtype");
    return widen8<T>(*reinterpret_cast<const uint2*>(p));
  }
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

// The sequence and heads of decode block (blockIdx.x, blockIdx.y) for blocks of `qpb` query
// heads, as every decode kernel reads the step's metadata: the slice, its first query head and
// kv head, its context length, its query's row on the flat token axis, the first position it
// sees (a sliding window), and its block-table row.
struct DecodeSeq {
  int slice;
  int head0;
  int kvh;
  int ctx;
  long long qrow;
  int first;
  const uint32_t* table;
};

__device__ __forceinline__ DecodeSeq decode_seq(const uint32_t* __restrict__ decode_slices,
                                                const uint32_t* __restrict__ context_lens,
                                                const uint32_t* __restrict__ query_starts,
                                                const uint32_t* __restrict__ block_tables, int max_blocks,
                                                int num_heads, int num_kv_heads, int qpb, int sliding_window) {
  DecodeSeq d;
  d.slice = decode_slices[blockIdx.y];
  d.head0 = blockIdx.x * qpb;
  d.kvh = d.head0 / (num_heads / num_kv_heads);
  d.ctx = context_lens[d.slice];
  d.qrow = query_starts[d.slice];
  d.first = (sliding_window > 0 && d.ctx > sliding_window) ? d.ctx - sliding_window : 0;
  d.table = block_tables + (long long)d.slice * max_blocks;
  return d;
}

// Stages the block-table entries of positions [first, ctx) in shared memory (s_table indexed by
// block number, 2^block_shift positions a block); the caller synchronises before reading.
__device__ __forceinline__ void stage_block_table(uint32_t* s_table, const DecodeSeq& d, int block_shift) {
  for (int b = (d.first >> block_shift) + threadIdx.x; b <= ((d.ctx - 1) >> block_shift); b += blockDim.x)
    s_table[b] = d.table[b];
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

