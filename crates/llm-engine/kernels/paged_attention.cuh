// Paged attention (included once per dtype by paged_attention_<dtype>.cu, so that a process
// loads only the PTX of the dtype it runs) over the head-major KV cache ([num_kv_heads, num_slots, head_dim] per layer;
// position p of a sequence lives in slot block_table[p / block_size] * block_size + p % block_size).
//
// Two kernels, both writing their output rows straight into the step's [num_tokens, H * D]
// output in token order, both reading K/V in place from the blocks (no gathered copy), both
// with softmax in f32 and online (running max / sum), so no score matrix is materialised:
//
// - paged_decode_*: one query token per sequence (vLLM's paged_attention_v1 idea). Grid
//   (num_heads / QPB, num_decodes); a block serves QPB query heads of ONE kv head (GQA: each
//   cached row is loaded once for its QPB query heads); its DECODE_WARPS warps split the
//   context, each warp takes DECODE_UNROLL keys at a time (lanes split head_dim; in the wide
//   variant the next group's rows are loaded while the current one is used), and the warps'
//   partial (max, sum, acc) are merged through shared memory at the end.
// - paged_prefill_*: the new tokens of prefill chunks (causal over the cached prefix plus the
//   chunk itself), flash-attention style: a block takes a tile of PREFILL_ROWS (token, head)
//   query rows of ONE sequence and kv head, walks the keys in tiles of BK rows staged in
//   shared memory (each K/V row read once per tile of queries), lanes split the keys for the
//   scores and head_dim for P·V. Grid (num_query_tiles, num_heads / QPB), varlen: the tiles
//   of all prefill slices of the step in one launch.
//
// Common arguments:
//   out [num_tokens, H*D], q [num_tokens, H*D] (row-major, token order)
//   k_cache, v_cache: the layer's cache tensors
//   block_tables [num_slices, max_blocks], context_lens / query_starts [num_slices]
//   scale = 1/sqrt(D); sliding_window = 0 for none (a query at p sees keys > p - window).
// Template parameters: EPL = elements of head_dim per lane (head_dim <= 32 * EPL); QPB = query
// heads per block (divides num_heads / num_kv_heads).
#pragma once
#include "common.cuh"

#define DECODE_WARPS 4
// Warps of the wide decode variant (*_w16), for steps whose grid is too small to fill the
// GPU (batch 1: one block per query-head group): 4x as many keys in flight per block.
#define DECODE_WARPS_WIDE 16
#define DECODE_UNROLL 4
#define PREFILL_WARPS 4
#define PREFILL_ROWS 16

template <typename T, typename C, int EPL, int QPB, int NW>
__device__ void paged_decode_impl(T* __restrict__ out, const T* __restrict__ q,
                                  const C* __restrict__ k_cache, const C* __restrict__ v_cache,
                                  const uint32_t* __restrict__ block_tables,
                                  const uint32_t* __restrict__ context_lens,
                                  const uint32_t* __restrict__ query_starts,
                                  const uint32_t* __restrict__ decode_slices, int num_heads,
                                  int num_kv_heads, int head_dim, int block_size, int max_blocks,
                                  long long num_slots, float scale, int sliding_window) {
  constexpr int U = DECODE_UNROLL;
  extern __shared__ float smem[];
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const DecodeSeq seq = decode_seq(decode_slices, context_lens, query_starts, block_tables, max_blocks,
                                   num_heads, num_kv_heads, QPB, sliding_window);
  const int head0 = seq.head0, kvh = seq.kvh, ctx = seq.ctx, first = seq.first;
  const long long qrow = seq.qrow;
  const int e0 = lane * EPL;
  const bool aligned = head_dim == 32 * EPL;
  const long long row_stride = (long long)num_heads * head_dim;

  float qv[QPB][EPL];
#pragma unroll
  for (int h = 0; h < QPB; ++h) {
    load_floats<T, EPL>(q + qrow * row_stride + (long long)(head0 + h) * head_dim, e0, head_dim,
                        false, qv[h]);
#pragma unroll
    for (int i = 0; i < EPL; ++i) qv[h][i] *= scale;
  }
  const C* k_head = k_cache + (long long)kvh * num_slots * head_dim;
  const C* v_head = v_cache + (long long)kvh * num_slots * head_dim;

  float m[QPB], l[QPB], acc[QPB][EPL];
#pragma unroll
  for (int h = 0; h < QPB; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.f;
#pragma unroll
    for (int i = 0; i < EPL; ++i) acc[h][i] = 0.f;
  }

  // Each warp walks its keys U at a time. With PF (the wide variant: few blocks, bound by
  // memory latency) the K/V rows of its next U keys are loaded before the current ones are
  // used (two sets in flight per warp), so the latency of one group overlaps the arithmetic
  // of the other. Without (the 4-warp variant of big batches, where many resident blocks
  // already keep the memory busy) the extra registers would cost occupancy.
  constexpr bool PF = NW == DECODE_WARPS_WIDE;
  float kf[U][EPL], vf[U][EPL];
  auto load_group = [&](int j0, float (&kd)[U][EPL], float (&vd)[U][EPL]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int j = j0 + u;
      if (j < ctx) {
        const long long row = slot_of(seq.table, j, block_size) * head_dim;
        load_floats<C, EPL>(k_head + row, e0, head_dim, aligned, kd[u]);
        load_floats<C, EPL>(v_head + row, e0, head_dim, aligned, vd[u]);
      } else {
#pragma unroll
        for (int i = 0; i < EPL; ++i) kd[u][i] = vd[u][i] = 0.f;
      }
    }
  };
  if constexpr (PF) load_group(first + warp * U, kf, vf);
  for (int j0 = first + warp * U; j0 < ctx; j0 += NW * U) {
    float kn[U][EPL], vn[U][EPL];
    if constexpr (PF) {
      load_group(j0 + NW * U, kn, vn);
    } else {
      load_group(j0, kf, vf);
    }
#pragma unroll
    for (int h = 0; h < QPB; ++h) {
      float s[U];
      float chunk_max = -INFINITY;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        float part = 0.f;
#pragma unroll
        for (int i = 0; i < EPL; ++i) part += qv[h][i] * kf[u][i];
        s[u] = (j0 + u < ctx) ? warp_sum(part) : -INFINITY;
        chunk_max = fmaxf(chunk_max, s[u]);
      }
      // j0 < ctx, so chunk_max is finite and so is m_new.
      const float m_new = fmaxf(m[h], chunk_max);
      const float alpha = expf(m[h] - m_new);
      float p_sum = 0.f;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        s[u] = expf(s[u] - m_new);
        p_sum += s[u];
      }
      l[h] = l[h] * alpha + p_sum;
#pragma unroll
      for (int i = 0; i < EPL; ++i) {
        float a = acc[h][i] * alpha;
#pragma unroll
        for (int u = 0; u < U; ++u) a += s[u] * vf[u][i];
        acc[h][i] = a;
      }
      m[h] = m_new;
    }
    if constexpr (PF) {
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int i = 0; i < EPL; ++i) {
          kf[u][i] = kn[u][i];
          vf[u][i] = vn[u][i];
        }
    }
  }

  // Merge the warps: smem = m [NW][QPB], l [NW][QPB], acc [NW][QPB][32 * EPL].
  float* sm_m = smem;
  float* sm_l = smem + NW * QPB;
  float* sm_acc = smem + 2 * NW * QPB;
  if (lane == 0) {
#pragma unroll
    for (int h = 0; h < QPB; ++h) {
      sm_m[warp * QPB + h] = m[h];
      sm_l[warp * QPB + h] = l[h];
    }
  }
#pragma unroll
  for (int h = 0; h < QPB; ++h)
#pragma unroll
    for (int i = 0; i < EPL; ++i) sm_acc[(warp * QPB + h) * 32 * EPL + e0 + i] = acc[h][i];
  __syncthreads();
  merge_warp_partials<T, QPB, NW, false>(out + qrow * row_stride + (long long)head0 * head_dim,
                                         sm_m, sm_l, sm_acc, 32 * EPL, head_dim);
}

template <typename T, typename C, int EPL, int QPB, int BK>
__device__ void paged_prefill_impl(T* __restrict__ out, const T* __restrict__ q,
                                   const C* __restrict__ k_cache, const C* __restrict__ v_cache,
                                   const uint32_t* __restrict__ block_tables,
                                   const uint32_t* __restrict__ tiles, int num_heads,
                                   int num_kv_heads, int head_dim, int block_size, int max_blocks,
                                   long long num_slots, float scale, int sliding_window) {
  constexpr int NW = PREFILL_WARPS;
  constexpr int ROWS = PREFILL_ROWS;
  constexpr int RPW = ROWS / NW;
  extern __shared__ float smem[];
  const int D = head_dim;
  const int ks_stride = D + 1;  // lane k reads K row k: the +1 spreads the rows over the banks
  float* ks = smem;                 // [BK][D + 1]
  float* vs = ks + BK * ks_stride;  // [BK][D]
  float* qs = vs + BK * D;          // [ROWS][D], row r = token (r / QPB), head (r % QPB)
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const PrefillTile t = prefill_tile(tiles, block_tables, max_blocks, num_heads, num_kv_heads, QPB);
  const long long qrow0 = t.qrow0;
  const int nq = t.nq, p0 = t.p0, head0 = t.head0, kvh = t.kvh;
  const uint32_t* table = t.table;
  const long long row_stride = (long long)num_heads * D;
  const C* k_head = k_cache + (long long)kvh * num_slots * D;
  const C* v_head = v_cache + (long long)kvh * num_slots * D;

  for (int idx = threadIdx.x; idx < ROWS * D; idx += NW * 32) {
    const int r = idx / D;
    const int e = idx - r * D;
    const int tok = r / QPB;
    qs[idx] = tok < nq
                  ? to_float(q[(qrow0 + tok) * row_stride + (long long)(head0 + r % QPB) * D + e]) * scale
                  : 0.f;
  }
  const int key_hi = p0 + nq;
  const int key_lo = sliding_window > 0 ? max(0, p0 - sliding_window + 1) : 0;

  float m[RPW], l[RPW], acc[RPW][EPL];
#pragma unroll
  for (int rr = 0; rr < RPW; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int i = 0; i < EPL; ++i) acc[rr][i] = 0.f;
  }

  for (int kt = key_lo; kt < key_hi; kt += BK) {
    __syncthreads();  // the previous tile is consumed (and, the first time, q is staged)
    for (int idx = threadIdx.x; idx < BK * D; idx += NW * 32) {
      const int k = idx / D;
      const int e = idx - k * D;
      const int kp = kt + k;
      float kval = 0.f, vval = 0.f;
      if (kp < key_hi) {
        const long long off = slot_of(table, kp, block_size) * D + e;
        kval = to_float(k_head[off]);
        vval = to_float(v_head[off]);
      }
      ks[k * ks_stride + e] = kval;
      vs[k * D + e] = vval;
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < RPW; ++rr) {
      const int r = warp + rr * NW;
      const int tok = r / QPB;
      if (tok >= nq) continue;  // warp-uniform
      const int pos = p0 + tok;
      const int lo = sliding_window > 0 ? pos - sliding_window + 1 : 0;
      const int kp = kt + lane;
      float s = -INFINITY;
      if (lane < BK && kp <= pos && kp >= lo) {
        const float* qr = qs + r * D;
        const float* kr = ks + lane * ks_stride;
        float a = 0.f;
#pragma unroll 4
        for (int e = 0; e < D; ++e) a += qr[e] * kr[e];
        s = a;
      }
      const float tile_max = warp_max(s);
      if (tile_max == -INFINITY) continue;  // no visible key in this tile for this row
      const float m_new = fmaxf(m[rr], tile_max);
      const float alpha = expf(m[rr] - m_new);
      const float p = expf(s - m_new);
      l[rr] = l[rr] * alpha + warp_sum(p);
#pragma unroll
      for (int i = 0; i < EPL; ++i) acc[rr][i] *= alpha;
#pragma unroll 4
      for (int k = 0; k < BK; ++k) {
        const float pk = __shfl_sync(0xffffffffu, p, k);
        const float* vr = vs + k * D;
#pragma unroll
        for (int i = 0; i < EPL; ++i) {
          const int e = lane + 32 * i;
          if (e < D) acc[rr][i] += pk * vr[e];
        }
      }
      m[rr] = m_new;
    }
  }
#pragma unroll
  for (int rr = 0; rr < RPW; ++rr) {
    const int r = warp + rr * NW;
    const int tok = r / QPB;
    if (tok >= nq) continue;
    T* o = out + (qrow0 + tok) * row_stride + (long long)(head0 + r % QPB) * D;
    const float inv = 1.f / l[rr];
#pragma unroll
    for (int i = 0; i < EPL; ++i) {
      const int e = lane + 32 * i;
      if (e < D) o[e] = from_float<T>(acc[rr][i] * inv);
    }
  }
}

#define DECODE_KERNEL_NW(NAME, T, C, EPL, QPB, NW, SUFFIX)                                         \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                         \
      paged_decode_##NAME##_e##EPL##_q##QPB##SUFFIX(                                            \
          T* out, const T* q, const C* k_cache, const C* v_cache, const uint32_t* block_tables, \
          const uint32_t* context_lens, const uint32_t* query_starts,                           \
          const uint32_t* decode_slices, int num_heads, int num_kv_heads, int head_dim,         \
          int block_size, int max_blocks, long long num_slots, float scale,                     \
          int sliding_window) {                                                                 \
    paged_decode_impl<T, C, EPL, QPB, NW>(out, q, k_cache, v_cache, block_tables, context_lens,    \
                                       query_starts, decode_slices, num_heads, num_kv_heads,    \
                                       head_dim, block_size, max_blocks, num_slots, scale,      \
                                       sliding_window);                                         \
  }
#define DECODE_KERNEL(NAME, T, C, EPL, QPB) DECODE_KERNEL_NW(NAME, T, C, EPL, QPB, DECODE_WARPS, )
// The wide variants exist where EPL * QPB <= 16, so that a thread's registers fit the
// 128 a 512-thread block allows (host: `wide_decode_variant` in src/cuda/paged_attention.rs).
#define DECODE_KERNEL_WIDE(NAME, T, C, EPL, QPB) \
  DECODE_KERNEL_NW(NAME, T, C, EPL, QPB, DECODE_WARPS_WIDE, _w16)

#define PREFILL_KERNEL(NAME, T, C, EPL, QPB)                                                       \
  extern "C" __global__ void __launch_bounds__(PREFILL_WARPS * 32)                              \
      paged_prefill_##NAME##_e##EPL##_q##QPB(                                                   \
          T* out, const T* q, const C* k_cache, const C* v_cache, const uint32_t* block_tables, \
          const uint32_t* tiles, int num_heads, int num_kv_heads, int head_dim, int block_size, \
          int max_blocks, long long num_slots, float scale, int sliding_window) {               \
    paged_prefill_impl<T, C, EPL, QPB, (EPL >= 8 ? 8 : 32)>(                                       \
        out, q, k_cache, v_cache, block_tables, tiles, num_heads, num_kv_heads, head_dim,       \
        block_size, max_blocks, num_slots, scale, sliding_window);                              \
  }

#define FOR_QPB(M, NAME, T, C, EPL) \
  M(NAME, T, C, EPL, 1) M(NAME, T, C, EPL, 2) M(NAME, T, C, EPL, 4) M(NAME, T, C, EPL, 8)
// Every decode and prefill kernel for elements of EPL = 1, 2, 4, 8 per lane.
#define PAGED_ATTENTION_KERNELS(NAME, T)                                                        \
  FOR_QPB(DECODE_KERNEL, NAME, T, T, 1) FOR_QPB(DECODE_KERNEL, NAME, T, T, 2)                   \
  FOR_QPB(DECODE_KERNEL, NAME, T, T, 4) FOR_QPB(DECODE_KERNEL, NAME, T, T, 8)                   \
  FOR_QPB(PREFILL_KERNEL, NAME, T, T, 1) FOR_QPB(PREFILL_KERNEL, NAME, T, T, 2)                 \
  FOR_QPB(PREFILL_KERNEL, NAME, T, T, 4) FOR_QPB(PREFILL_KERNEL, NAME, T, T, 8)                 \
  DECODE_KERNEL_WIDE(NAME, T, T, 1, 1) DECODE_KERNEL_WIDE(NAME, T, T, 1, 2)                     \
  DECODE_KERNEL_WIDE(NAME, T, T, 1, 4) DECODE_KERNEL_WIDE(NAME, T, T, 1, 8)                     \
  DECODE_KERNEL_WIDE(NAME, T, T, 2, 1) DECODE_KERNEL_WIDE(NAME, T, T, 2, 2)                     \
  DECODE_KERNEL_WIDE(NAME, T, T, 2, 4) DECODE_KERNEL_WIDE(NAME, T, T, 4, 1)                     \
  DECODE_KERNEL_WIDE(NAME, T, T, 4, 2) DECODE_KERNEL_WIDE(NAME, T, T, 8, 1)                     \
  DECODE_KERNEL_WIDE(NAME, T, T, 2, 8) DECODE_KERNEL_WIDE(NAME, T, T, 4, 4)                     \
  DECODE_KERNEL_WIDE(NAME, T, T, 8, 2)
// The same over an fp8 E4M3 cache (kernels *_<t>_fp8_*), for head_dims 64 and 128 only
// (EPL 2 and 4): the fallbacks of the vector decode and register prefill kernels.
#define PAGED_ATTENTION_KERNELS_FP8(NAME, T)                                                    \
  FOR_QPB(DECODE_KERNEL, NAME, T, fp8_e4m3, 2) FOR_QPB(DECODE_KERNEL, NAME, T, fp8_e4m3, 4)     \
  FOR_QPB(PREFILL_KERNEL, NAME, T, fp8_e4m3, 2) FOR_QPB(PREFILL_KERNEL, NAME, T, fp8_e4m3, 4)   \
  DECODE_KERNEL_WIDE(NAME, T, fp8_e4m3, 2, 1) DECODE_KERNEL_WIDE(NAME, T, fp8_e4m3, 2, 2)       \
  DECODE_KERNEL_WIDE(NAME, T, fp8_e4m3, 2, 4) DECODE_KERNEL_WIDE(NAME, T, fp8_e4m3, 2, 8)       \
  DECODE_KERNEL_WIDE(NAME, T, fp8_e4m3, 4, 1) DECODE_KERNEL_WIDE(NAME, T, fp8_e4m3, 4, 2)       \
  DECODE_KERNEL_WIDE(NAME, T, fp8_e4m3, 4, 4)
