// Paged decode attention on tensor cores over an fp8 E4M3 KV cache (included by
// paged_attention_<t>_fp8.cu): the job of paged_decode_vec_* (one query token per sequence,
// many sequences per launch, GQA aware with up to 8 query heads per kv head, online softmax in
// f32, output rows in token order) with both products on mma.sync m16n8k16 (f16/bf16 inputs,
// f32 accumulation).
//
// Why only over fp8: over an f16 cache paged_decode_vec_* is bound by the bytes (4.1 TB/s on
// an H200) and this layout was slower (161 against 136 us a layer at batch 256, session 9).
// Over fp8 the bytes halve and paged_decode_vec_* becomes bound by its instructions instead
// (per K/V element a conversion to f32 and an FFMA, plus the fp8 unpacking: 109 us, only 20%
// below f16): here a tile of 16 keys costs 2 * D / 16 mma, the fp8 -> f16 conversions and
// ~D / 4 byte permutes. Each warp loads its next tile (8-byte loads of fp8) before it computes
// the current one, so two tiles are in flight. Measured (H200, batch 256, session 10): 115.8 us
// a layer against paged_decode_vec_*'s 108.9 over the same cache (128 registers, 4 blocks a
// multiprocessor: ~2.5 TB/s, bound by latency rather than instructions), so it is opt-in
// (LLM_ENGINE_DECODE_TC=1); more tiles in flight per warp is the next thing to try.
//
// The products, for a tile of 16 keys (g = lane / 4, t = lane % 4, as in the PTX fragment
// layouts; the query heads of the block are the n = 8 columns, QPB <= 8 of them used):
// - S^T = K Q^T (m16 keys x n8 queries x k16 dims, D / 16 mma). A dot product may sum its dims
//   in any order, so the k index of chunk c maps to the dims lane t loads: logical columns
//   (2t, 2t+1, 2t+8, 2t+9) are the dims t * D/4 + 4c + (0, 1, 2, 3). Lane (g, t) thus loads
//   keys g and g + 8, dims [t * D/4, (t+1) * D/4), and its registers (converted to the dtype)
//   ARE the A fragments; Q^T (B) is loaded once with the same permutation.
// - O^T += V^T P^T (m16 dims x n8 queries x k16 keys, D / 16 mma). The keys are permuted too:
//   logical k (2t, 2t+1, 2t+8, 2t+9) are keys (2t, 2t+8, 2t+1, 2t+9), so that a lane's B
//   fragment (query g) packs P of two keys that one lane of S^T holds (keys g', g'+8): two
//   shuffles per register. Lane (g, t) loads V of keys 2t, 2t+1, 2t+8, 2t+9 at dims
//   [g * D/8, (g+1) * D/8) (chunk c's m rows g and g + 8 are dims g * D/8 + 2c and + 1) and
//   pairs two keys' halves into one register with a byte permute.
// - The C fragments of both products give lane (g, t) queries 2t and 2t + 1, so the softmax
//   rescale of O needs no data from other lanes; the running max is reduced over g (3
//   shuffles), the running sum per lane and added over g at the end.
// Keys past the context or before a sliding window load a valid row (masked), so P = 0 never
// meets a non-finite value in the mma. The block size must be a power of two and a multiple
// of 16 (a tile's keys are consecutive slots of one block).
//
// Grid (num_heads / QPB, num_decodes), 4 warps; warp w takes tiles w, w + 4, ... Shared
// memory as paged_decode_vec_* (block table [max_blocks] u32, m [NW][QPB], l [NW][QPB],
// acc [NW][QPB][D], merged by merge_warp_partials), then Q [8][D] in the dtype.
#pragma once
#include "mma.cuh"

template <typename T, int D, int QPB, int NW>
__device__ void paged_decode_tc_impl(T* __restrict__ out, const T* __restrict__ q,
                                     const fp8_e4m3* __restrict__ k_cache,
                                     const fp8_e4m3* __restrict__ v_cache,
                                     const uint32_t* __restrict__ block_tables,
                                     const uint32_t* __restrict__ context_lens,
                                     const uint32_t* __restrict__ query_starts,
                                     const uint32_t* __restrict__ decode_slices, int num_heads,
                                     int num_kv_heads, int block_shift, int max_blocks,
                                     long long num_slots, float scale, int sliding_window) {
  static_assert(sizeof(T) == 2, "f16 / bf16");
  static_assert(D % 64 == 0 && D <= 256, "head_dim a multiple of 64");
  static_assert(QPB >= 1 && QPB <= 8, "at most 8 query heads (the mma's n)");
  using Ops = MmaOps<T>;
  constexpr int CH = D / 16;  // 16-dim chunks: mma per product per tile
  constexpr int KV = D / 32;  // 16-byte vectors of a lane's quarter of a K row
  constexpr int VV = D / 64;  // 16-byte vectors of a lane's eighth of a V row
  constexpr unsigned FULL = 0xffffffffu;

  extern __shared__ float smem[];
  uint32_t* s_table = reinterpret_cast<uint32_t*>(smem);
  float* sm_m = smem + ((max_blocks + 3) & ~3);
  float* sm_l = sm_m + NW * QPB;
  float* sm_acc = sm_l + NW * QPB;
  // Q^T of the block: 8 rows (the mma's n) of D elements, rows past QPB zero. Kept here, not
  // in registers, so that a lane fits 96 registers (5 blocks a multiprocessor).
  uint4* sm_q = reinterpret_cast<uint4*>(sm_acc + NW * QPB * D);

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const DecodeSeq seq = decode_seq(decode_slices, context_lens, query_starts, block_tables, max_blocks,
                                   num_heads, num_kv_heads, QPB, sliding_window);
  const int head0 = seq.head0, kvh = seq.kvh, ctx = seq.ctx, first = seq.first;
  const long long qrow = seq.qrow;
  const int mask = (1 << block_shift) - 1;
  const long long row_stride = (long long)num_heads * D;

  stage_block_table(s_table, seq, block_shift);

  for (int i = threadIdx.x; i < 8 * D / 8; i += NW * 32) {
    const int r = i / (D / 8), v = i - r * (D / 8);
    sm_q[i] = r < QPB ? *reinterpret_cast<const uint4*>(q + qrow * row_stride + (long long)(head0 + r) * D + 8 * v)
                      : make_uint4(0u, 0u, 0u, 0u);
  }
  // Lane (g, t)'s Q^T fragments: query g's dims [t * D/4, (t+1) * D/4).
  const uint4* q_frag = sm_q + g * (D / 8) + t * KV;
  const fp8_e4m3* k_head = k_cache + (long long)kvh * num_slots * D + t * (D / 4);
  const fp8_e4m3* v_head = v_cache + (long long)kvh * num_slots * D + g * (D / 8);
  const float log2_scale = scale * 1.4426950408889634f;

  // Running max / per-lane sum of queries 2t and 2t + 1; O^T fragments (dims g*D/8 + 2c + {0,1}).
  float m_e = -INFINITY, m_o = -INFINITY, l_e = 0.f, l_o = 0.f;
  float o[CH][4];
#pragma unroll
  for (int c = 0; c < CH; ++c) o[c][0] = o[c][1] = o[c][2] = o[c][3] = 0.f;
  __syncthreads();  // the table is staged

  // One tile's fp8 rows as loaded: K keys g, g + 8 (KV vectors of 8 dims each), V keys 2t,
  // 2t + 1, 2t + 8, 2t + 9 (VV vectors each).
  auto load_tile = [&](int j0, uint2 (&kq)[2][KV], uint2 (&vq)[4][VV]) {
    // The block size is a multiple of 16, so the tile's 16 positions share one cache block.
    // Position j0 + o is clamped into [first, ctx), which stays inside the tile: masked keys
    // read a valid row of the same block.
    const uint32_t base = s_table[max(j0, first) >> block_shift] << block_shift;
    auto slot_of_key = [&](int o) -> uint32_t {
      return base | ((uint32_t)min(max(j0 + o, first), ctx - 1) & (uint32_t)mask);
    };
    const fp8_e4m3* k0 = k_head + (unsigned long long)slot_of_key(g) * D;
    const fp8_e4m3* k1 = k_head + (unsigned long long)slot_of_key(g + 8) * D;
#pragma unroll
    for (int v = 0; v < KV; ++v) {
      kq[0][v] = *reinterpret_cast<const uint2*>(k0 + 8 * v);
      kq[1][v] = *reinterpret_cast<const uint2*>(k1 + 8 * v);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const fp8_e4m3* vp = v_head + (unsigned long long)slot_of_key(2 * t + (i & 1) + 8 * (i >> 1)) * D;
#pragma unroll
      for (int v = 0; v < VV; ++v) vq[i][v] = *reinterpret_cast<const uint2*>(vp + 8 * v);
    }
  };
  const int j_first = (first & ~15) + warp * 16;
  uint2 kq[2][KV], vq[4][VV];
  if (j_first < ctx) load_tile(j_first, kq, vq);
  for (int j0 = j_first; j0 < ctx; j0 += NW * 16) {
    // The next tile's loads go out before this one's arithmetic (warp-uniform branch).
    uint2 kn[2][KV], vn[4][VV];
    if (j0 + NW * 16 < ctx) load_tile(j0 + NW * 16, kn, vn);
    // S^T = K Q^T: s[0], s[1] key g (queries 2t, 2t+1), s[2], s[3] key g + 8.
    float s[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int c = 0; c < CH; ++c) {
      const int v = c >> 1, w = 2 * (c & 1);
      const uint4 qv = q_frag[v];
      const uint4 k0 = widen8<T>(kq[0][v]), k1 = widen8<T>(kq[1][v]);
      Ops::mma(s, vec_word(k0, w), vec_word(k1, w), vec_word(k0, w + 1), vec_word(k1, w + 1),
               vec_word(qv, w), vec_word(qv, w + 1));
    }
    const bool valid_lo = j0 + g >= first && j0 + g < ctx;
    const bool valid_hi = j0 + g + 8 >= first && j0 + g + 8 < ctx;
    s[0] = valid_lo ? s[0] * log2_scale : -INFINITY;
    s[1] = valid_lo ? s[1] * log2_scale : -INFINITY;
    s[2] = valid_hi ? s[2] * log2_scale : -INFINITY;
    s[3] = valid_hi ? s[3] * log2_scale : -INFINITY;
    float mx_e = fmaxf(s[0], s[2]), mx_o = fmaxf(s[1], s[3]);
#pragma unroll
    for (int x = 4; x < 32; x <<= 1) {
      mx_e = fmaxf(mx_e, __shfl_xor_sync(FULL, mx_e, x));
      mx_o = fmaxf(mx_o, __shfl_xor_sync(FULL, mx_o, x));
    }
    // Every tile holds a valid key (j0 < ctx, and the first tile holds `first`): finite maxima.
    const float mn_e = fmaxf(m_e, mx_e), mn_o = fmaxf(m_o, mx_o);
    const float alpha_e = exp2f(m_e - mn_e), alpha_o = exp2f(m_o - mn_o);
    m_e = mn_e;
    m_o = mn_o;
    float p0, p1, p2, p3;
    const uint32_t pe = Ops::pack(exp2f(s[0] - mn_e), exp2f(s[2] - mn_e), p0, p2);
    const uint32_t po = Ops::pack(exp2f(s[1] - mn_o), exp2f(s[3] - mn_o), p1, p3);
    l_e = l_e * alpha_e + (p0 + p2);
    l_o = l_o * alpha_o + (p1 + p3);
    // P^T fragments of query g: keys (2t, 2t + 8) from lane (2t, g / 2), (2t + 1, 2t + 9) from
    // lane (2t + 1, g / 2); even queries are that lane's pe, odd ones its po.
    const int src0 = 8 * t + (g >> 1), src1 = src0 + 4;
    uint32_t b0 = __shfl_sync(FULL, pe, src0), b1 = __shfl_sync(FULL, pe, src1);
    if (QPB > 1) {
      const uint32_t o0 = __shfl_sync(FULL, po, src0), o1 = __shfl_sync(FULL, po, src1);
      if (g & 1) {
        b0 = o0;
        b1 = o1;
      }
    }
    if (__any_sync(FULL, alpha_e != 1.f || alpha_o != 1.f)) {
#pragma unroll
      for (int c = 0; c < CH; ++c) {
        o[c][0] *= alpha_e;
        o[c][1] *= alpha_o;
        o[c][2] *= alpha_e;
        o[c][3] *= alpha_o;
      }
    }
    // O^T += V^T P^T: m rows g, g + 8 of chunk c are dims 2c, 2c + 1 of the lane's V eighth.
#pragma unroll
    for (int c = 0; c < CH; ++c) {
      const int v = c >> 2, w = c & 3;
      const uint32_t x0 = vec_word(widen8<T>(vq[0][v]), w), x8 = vec_word(widen8<T>(vq[2][v]), w);
      const uint32_t x1 = vec_word(widen8<T>(vq[1][v]), w), x9 = vec_word(widen8<T>(vq[3][v]), w);
      Ops::mma(o[c], __byte_perm(x0, x8, 0x5410), __byte_perm(x0, x8, 0x7632),
               __byte_perm(x1, x9, 0x5410), __byte_perm(x1, x9, 0x7632), b0, b1);
    }
#pragma unroll
    for (int v = 0; v < KV; ++v) {
      kq[0][v] = kn[0][v];
      kq[1][v] = kn[1][v];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int v = 0; v < VV; ++v) vq[i][v] = vn[i][v];
  }

  // The 8 lane groups share m; add their sums.
#pragma unroll
  for (int x = 4; x < 32; x <<= 1) {
    l_e += __shfl_xor_sync(FULL, l_e, x);
    l_o += __shfl_xor_sync(FULL, l_o, x);
  }
#pragma unroll
  for (int par = 0; par < 2; ++par) {
    const int h = 2 * t + par;
    if (h < QPB) {
      if (g == 0) {
        sm_m[warp * QPB + h] = par ? m_o : m_e;
        sm_l[warp * QPB + h] = par ? l_o : l_e;
      }
      float* acc = sm_acc + (warp * QPB + h) * D + g * (D / 8);
#pragma unroll
      for (int c = 0; c < CH; ++c) {
        acc[2 * c] = o[c][par];
        acc[2 * c + 1] = o[c][2 + par];
      }
    }
  }
  __syncthreads();
  merge_warp_partials<T, QPB, NW, true>(out + qrow * row_stride + (long long)head0 * D, sm_m, sm_l,
                                        sm_acc, D, D);
}

#define DECODE_TC_KERNEL(NAME, T, D, QPB)                                                        \
  extern "C" __global__ void __launch_bounds__(128, 4) paged_decode_tc_##NAME##_d##D##_q##QPB(   \
      T* out, const T* q, const fp8_e4m3* k_cache, const fp8_e4m3* v_cache,                      \
      const uint32_t* block_tables, const uint32_t* context_lens, const uint32_t* query_starts,   \
      const uint32_t* decode_slices, int num_heads, int num_kv_heads, int block_shift,           \
      int max_blocks, long long num_slots, float scale, int sliding_window) {                    \
    paged_decode_tc_impl<T, D, QPB, 4>(out, q, k_cache, v_cache, block_tables, context_lens,     \
                                       query_starts, decode_slices, num_heads, num_kv_heads,     \
                                       block_shift, max_blocks, num_slots, scale,                \
                                       sliding_window);                                          \
  }
#define DECODE_TC_KERNELS_D(NAME, T, D)                                                      \
  DECODE_TC_KERNEL(NAME, T, D, 1) DECODE_TC_KERNEL(NAME, T, D, 2) DECODE_TC_KERNEL(NAME, T, D, 4) \
  DECODE_TC_KERNEL(NAME, T, D, 8)
// Over an fp8 cache, head_dims 64 and 128 (4 warps of 128 threads).
#define DECODE_TC_KERNELS_FP8(NAME, T) DECODE_TC_KERNELS_D(NAME, T, 64) DECODE_TC_KERNELS_D(NAME, T, 128)
