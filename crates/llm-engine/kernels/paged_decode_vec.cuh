// Paged decode attention with 16-byte loads (included by paged_attention_<dtype>.cu after
// paged_attention.cuh): the same job as paged_decode_* (one query token per sequence, many
// sequences per launch, GQA aware, online softmax in f32, output rows in token order) for
// head_dims whose row is 4, 8, 16 or 32 vectors of 16 bytes (f16/bf16: 32, 64, 128, 256;
// f32: 16, 32, 64, 128) and power-of-two block sizes.
//
// Why a second kernel: paged_decode_* gives each key a whole warp (lanes split head_dim, 4 or
// 8 bytes each) and looks its block up in global memory right before loading it, so a warp
// has ~2 KB in flight behind a chain of two dependent loads; at batch 256 it reads the cache
// at about half the card's bandwidth. Here:
// - a key row is read by LPK = D * sizeof(T) / 16 lanes with one 16-byte load each, so a
//   warp-wide load instruction covers KPR = 32 / LPK keys, and a warp issues R such loads of
//   K and of V (R * KPR keys: 16 for D = 128 at QPB 1, ~8 KB) before it uses any;
// - the sequence's block-table entries are staged in shared memory once per block, and the
//   slot of a position is a shift and a mask (block_shift = log2(block_size));
// - scores live in the log2 domain (q is scaled by scale * log2(e)), so every exponential is
//   one exp2f; loads past the context re-read the last row (masked) instead of branching;
// - the dot products reduce over the LPK lanes of a key only, all R keys of a lane at once
//   (a transposed reduction: R - 1 shuffles for R >= LPK, not R * log2(LPK)), each lane then
//   holds a few keys' scores: one exp2f each, one warp-wide max, and the weights go back to the
//   lanes by one shuffle per key; the groups' partial (sum, acc) are added at the end: m is
//   warp-uniform throughout.
//
// - over an fp8 E4M3 cache (C = fp8_e4m3, kernels *_<t>_fp8_*) a lane keeps its dims (VE of the
//   model dtype's 16-byte vector) and loads them as 8 bytes; a warp then issues twice as many
//   loads (R) per iteration, so it has the same bytes in flight, and converts pairs of fp8
//   values with one instruction each (cvt e4m3x2 -> f16x2, exact) before the f32 math.
//
// Grid (num_heads / QPB, num_decodes), NW warps; warp w takes key groups w, w + NW, ...
// Shared memory: block table [max_blocks] u32, then m [NW][QPB], l [NW][QPB], acc [NW][QPB][D].
#pragma once
#include "common.cuh"

// A lane's N cache elements as f32: `v` holds them in the model dtype (VecN) or as fp8 E4M3
// bytes (uint2, 8 elements: two unpacks and four cvt e4m3x2 -> f16x2, then f32).
template <typename T, int N>
__device__ __forceinline__ void cache_floats(const VecN<T, N>& v, float (&out)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = to_float(v.v[i]);
}
__device__ __forceinline__ void cache_floats(const uint2& v, float (&out)[8]) {
  uint32_t h[4];
  fp8x4_to_half2x2(v.x, h[0], h[1]);
  fp8x4_to_half2x2(v.y, h[2], h[3]);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&h[i]));
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

template <typename T, typename C, int D, int QPB, int NW>
__device__ void paged_decode_vec_impl(T* __restrict__ out, const T* __restrict__ q,
                                      const C* __restrict__ k_cache, const C* __restrict__ v_cache,
                                      const uint32_t* __restrict__ block_tables,
                                      const uint32_t* __restrict__ context_lens,
                                      const uint32_t* __restrict__ query_starts,
                                      const uint32_t* __restrict__ decode_slices, int num_heads,
                                      int num_kv_heads, int block_shift, int max_blocks,
                                      long long num_slots, float scale, int sliding_window) {
  constexpr int VE = 16 / sizeof(T);  // elements per 16-byte vector
  constexpr int LPK = D / VE;         // lanes per key row
  static_assert(LPK == 4 || LPK == 8 || LPK == 16 || LPK == 32, "row of 4..32 vectors");
  constexpr int KPR = 32 / LPK;  // keys per warp-wide load
  // Loads of K (and of V) per warp iteration: 2x over an fp8 cache (8-byte loads) at QPB 1
  // (more query heads leave no registers for them).
  constexpr int R = (QPB >= 8 ? 1 : 8 / QPB) * (QPB == 1 ? (int)(sizeof(T) / sizeof(C)) : 1);
  constexpr int KPI = R * KPR;  // keys per warp iteration
  using Vec = VecN<T, VE>;
  constexpr bool FP8 = !std::is_same<C, T>::value;
  static_assert(!FP8 || (std::is_same<C, fp8_e4m3>::value && VE == 8), "fp8 cache, 2-byte model dtype");
  // A lane's VE cache elements as loaded: the model dtype's vector, or 8 fp8 bytes.
  using Raw = typename std::conditional<FP8, uint2, Vec>::type;

  extern __shared__ float smem[];
  uint32_t* s_table = reinterpret_cast<uint32_t*>(smem);
  float* sm_m = smem + ((max_blocks + 3) & ~3);
  float* sm_l = sm_m + NW * QPB;
  float* sm_acc = sm_l + NW * QPB;

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int sub = lane / LPK;  // which key of a warp-wide load
  const int e0 = (lane % LPK) * VE;
  const DecodeSeq seq = decode_seq(decode_slices, context_lens, query_starts, block_tables, max_blocks,
                                   num_heads, num_kv_heads, QPB, sliding_window);
  const int head0 = seq.head0, kvh = seq.kvh, ctx = seq.ctx, first = seq.first;
  const long long qrow = seq.qrow;
  const int mask = (1 << block_shift) - 1;
  const long long row_stride = (long long)num_heads * D;

  stage_block_table(s_table, seq, block_shift);

  // Scores in the log2 domain (q carries scale * log2(e)), so each exponential is one exp2f.
  const float q_scale = scale * 1.4426950408889634f;
  float qv[QPB][VE];
#pragma unroll
  for (int h = 0; h < QPB; ++h) {
    const Vec v = *reinterpret_cast<const Vec*>(q + qrow * row_stride + (long long)(head0 + h) * D + e0);
#pragma unroll
    for (int i = 0; i < VE; ++i) qv[h][i] = to_float(v.v[i]) * q_scale;
  }
  const C* k_head = k_cache + (long long)kvh * num_slots * D + e0;
  const C* v_head = v_cache + (long long)kvh * num_slots * D + e0;

  float m[QPB], l[QPB], acc[QPB][VE];
#pragma unroll
  for (int h = 0; h < QPB; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.f;
#pragma unroll
    for (int i = 0; i < VE; ++i) acc[h][i] = 0.f;
  }
  __syncthreads();  // the table is staged

  for (int j0 = first + warp * KPI; j0 < ctx; j0 += NW * KPI) {
    Raw kr[R], vr[R];
    // Positions past the context load the last row instead (no branch around the loads, so
    // all 2R of them issue back to back); their scores are masked.
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int j = j0 + r * KPR + sub;
      const int jl = j < ctx ? j : ctx - 1;
      const long long row = ((long long)s_table[jl >> block_shift] << block_shift | (jl & mask)) * D;
      kr[r] = *reinterpret_cast<const Raw*>(k_head + row);
      vr[r] = *reinterpret_cast<const Raw*>(v_head + row);
    }
#pragma unroll
    for (int h = 0; h < QPB; ++h) {
      // Each lane's partial dot products of its R keys, summed over the LPK lanes of a key
      // group "transposed": at each level a lane keeps half of its values and adds its
      // partner's copy of them, so the group needs R - 1 shuffles in all (R >= LPK) instead
      // of R * log2(LPK), and each lane ends with NF scores, those of keys
      // r = k + (lane % LPK) * R / LPK (k < NF). Same additions as a butterfly, so the same sums.
      float part[R];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float kk[VE];
        cache_floats(kr[r], kk);
        float a = 0.f;
#pragma unroll
        for (int i = 0; i < VE; ++i) a += qv[h][i] * kk[i];
        part[r] = a;
      }
#pragma unroll
      for (int o = LPK / 2, n = R; o > 0; o >>= 1) {
        if (n > 1) {
          const bool upper = (lane & o) != 0;
#pragma unroll
          for (int k = 0; k < n / 2; ++k) {
            const float send = upper ? part[k] : part[k + n / 2];
            const float keep = upper ? part[k + n / 2] : part[k];
            part[k] = keep + __shfl_xor_sync(0xffffffffu, send, o);
          }
          n /= 2;
        } else {
          part[0] += __shfl_xor_sync(0xffffffffu, part[0], o);
        }
      }
      constexpr int NF = R >= LPK ? R / LPK : 1;  // scores a lane holds
      const int r_base = R >= LPK ? (lane % LPK) * (R / LPK) : (lane % LPK) / (LPK / R);
      float own[NF];
      float group_max = -INFINITY;
#pragma unroll
      for (int k = 0; k < NF; ++k) {
        own[k] = (j0 + (r_base + k) * KPR + sub < ctx) ? part[k] : -INFINITY;
        group_max = fmaxf(group_max, own[k]);
      }
      group_max = warp_max(group_max);
      // Key j0 is valid (j0 < ctx), so group_max and m_new are finite.
      const float m_new = fmaxf(m[h], group_max);
      const float alpha = exp2f(m[h] - m_new);
#pragma unroll
      for (int k = 0; k < NF; ++k) own[k] = exp2f(own[k] - m_new);
      // Every lane of the group needs every key's weight: from the lane that holds it.
      float s[R];
      float p_sum = 0.f;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int holder = R >= LPK ? r / (R / LPK) : r * (LPK / R);
        s[r] = __shfl_sync(0xffffffffu, own[R >= LPK ? r % (R / LPK) : 0], (lane & ~(LPK - 1)) | holder);
        p_sum += s[r];
      }
      l[h] = l[h] * alpha + p_sum;
      // Per element: acc * alpha, then + s[r] * v[r] for r = 0, 1, ... in order.
#pragma unroll
      for (int i = 0; i < VE; ++i) acc[h][i] *= alpha;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float vv[VE];
        cache_floats(vr[r], vv);
#pragma unroll
        for (int i = 0; i < VE; ++i) acc[h][i] += s[r] * vv[i];
      }
      m[h] = m_new;
    }
  }

  // The KPR key groups of a warp share m: add their sums.
#pragma unroll
  for (int h = 0; h < QPB; ++h) {
#pragma unroll
    for (int o = LPK; o < 32; o <<= 1) {
      l[h] += __shfl_xor_sync(0xffffffffu, l[h], o);
#pragma unroll
      for (int i = 0; i < VE; ++i) acc[h][i] += __shfl_xor_sync(0xffffffffu, acc[h][i], o);
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int h = 0; h < QPB; ++h) {
      sm_m[warp * QPB + h] = m[h];
      sm_l[warp * QPB + h] = l[h];
    }
  }
  if (sub == 0) {
#pragma unroll
    for (int h = 0; h < QPB; ++h)
#pragma unroll
      for (int i = 0; i < VE; ++i) sm_acc[(warp * QPB + h) * D + e0 + i] = acc[h][i];
  }
  __syncthreads();
  merge_warp_partials<T, QPB, NW, true>(out + qrow * row_stride + (long long)head0 * D, sm_m, sm_l,
                                        sm_acc, D, D);
}

#define DECODE_VEC_KERNEL_NW(NAME, T, C, D, QPB, NW)                                             \
  extern "C" __global__ void __launch_bounds__(NW * 32, (NW == 4 && QPB <= 2) ? 5 : 1) paged_decode_vec_##NAME##_d##D##_q##QPB##_w##NW( \
      T* out, const T* q, const C* k_cache, const C* v_cache, const uint32_t* block_tables,      \
      const uint32_t* context_lens, const uint32_t* query_starts, const uint32_t* decode_slices,  \
      int num_heads, int num_kv_heads, int block_shift, int max_blocks, long long num_slots,     \
      float scale, int sliding_window) {                                                         \
    paged_decode_vec_impl<T, C, D, QPB, NW>(out, q, k_cache, v_cache, block_tables, context_lens, \
                                            query_starts, decode_slices, num_heads, num_kv_heads, \
                                            block_shift, max_blocks, num_slots, scale,            \
                                            sliding_window);                                      \
  }
#define DECODE_VEC_KERNEL(NAME, T, C, D, QPB) \
  DECODE_VEC_KERNEL_NW(NAME, T, C, D, QPB, 4) DECODE_VEC_KERNEL_NW(NAME, T, C, D, QPB, 16)
#define DECODE_VEC_KERNELS_D(NAME, T, C, D)                                                   \
  DECODE_VEC_KERNEL(NAME, T, C, D, 1) DECODE_VEC_KERNEL(NAME, T, C, D, 2) DECODE_VEC_KERNEL(NAME, T, C, D, 4) \
  DECODE_VEC_KERNEL(NAME, T, C, D, 8)
// head_dims of 4..32 vectors of 16 bytes: 32..256 for 2-byte types, 16..128 for f32.
#define DECODE_VEC_KERNELS_HALF(NAME, T) \
  DECODE_VEC_KERNELS_D(NAME, T, T, 32) DECODE_VEC_KERNELS_D(NAME, T, T, 64) \
  DECODE_VEC_KERNELS_D(NAME, T, T, 128) DECODE_VEC_KERNELS_D(NAME, T, T, 256)
#define DECODE_VEC_KERNELS_F32(NAME, T) \
  DECODE_VEC_KERNELS_D(NAME, T, T, 16) DECODE_VEC_KERNELS_D(NAME, T, T, 32) \
  DECODE_VEC_KERNELS_D(NAME, T, T, 64) DECODE_VEC_KERNELS_D(NAME, T, T, 128)
// Over an fp8 E4M3 cache: head_dims 64 and 128.
#define DECODE_VEC_KERNELS_FP8(NAME, T) \
  DECODE_VEC_KERNELS_D(NAME, T, fp8_e4m3, 64) DECODE_VEC_KERNELS_D(NAME, T, fp8_e4m3, 128)
