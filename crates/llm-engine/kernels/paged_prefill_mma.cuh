// Prefill attention on tensor cores with every fragment in registers (included by
// paged_attention_f16.cu / _bf16.cu): the job of paged_prefill_tc_* (the new tokens of prefill
// chunks, causal over the cached prefix plus the chunk, sliding window, online softmax, no
// score matrix in memory) for head_dims 64 and 128, written the flash-attention-2 way:
// paged_prefill_tc_* goes through shared memory for S, P and O (WMMA fragments are opaque), and
// ran at ~15 TFLOP/s on 64 x 128-token steps.
//
// One warp per tile of the step's prefill tiles (16 (token, head) query rows of ONE sequence
// and kv head, row r = token r / QPB, query head r % QPB), the same grid and metadata as
// paged_prefill_tc_*. Keys go by groups of 16 (the block size is a multiple of 16, so a group
// is 16 consecutive slots of one block); with g = lane / 4, t = lane % 4 (the PTX fragment
// layouts of mma.sync m16n8k16):
// - S = Q K^T as two n-tiles of 8 keys, D / 16 k-chunks each. The dims of chunk c are
//   permuted (a dot product may sum in any order): logical k (2t, 2t+1, 2t+8, 2t+9) are dims
//   t * D/4 + 4c + (0..3). Lane (g, t) holds Q rows g and g + 8 at dims [t * D/4, (t+1) * D/4)
//   for the whole tile, and loads key g of each n-tile at the same dims: its 16-byte vectors
//   ARE the B fragments.
// - The C fragments of S (rows g and g + 8, keys 2t, 2t + 1 of each n-tile) are, packed to the
//   dtype, the A fragments of P for O += P V (the flash-attention-2 register reuse): no shuffle.
// - V is the B operand (k16 keys x n8 dims, D / 8 n-tiles): lane (g, t) loads keys 2t, 2t + 1,
//   2t + 8, 2t + 9 at dims [g * D/8, (g+1) * D/8) (n-tile n's column g is dim g * D/8 + n) and
//   pairs two keys' halves into one register with a byte permute.
// - O's C fragments give lane (g, t) rows g and g + 8 at dims 2t * D/8 + n and (2t+1) * D/8 + n:
//   the rescale by the rows' exp2(m_old - m_new) is in-lane, the running max is reduced over the
//   4 lanes of a row (2 shuffles), the sum per lane and added at the end; each lane writes two
//   runs of D/8 dims per row.
// Keys outside [key_lo, key_hi) of a group load a valid row of the group (masked), so P = 0
// never meets a non-finite value in the mma.
// Over an fp8 E4M3 cache (C = fp8_e4m3, kernels paged_prefill_mma_<t>_fp8_*) each of those
// 16-byte loads is an 8-byte load of the same 8 dims, converted exactly to the model dtype
// (load8_as): the fragments and the mma are the same.
#pragma once
#include "mma.cuh"

template <typename T, typename C, int D, int QPB>
__device__ void paged_prefill_mma_impl(T* __restrict__ out, const T* __restrict__ q,
                                       const C* __restrict__ k_cache,
                                       const C* __restrict__ v_cache,
                                       const uint32_t* __restrict__ block_tables,
                                       const uint32_t* __restrict__ tiles, int num_heads,
                                       int num_kv_heads, int block_size, int max_blocks,
                                       long long num_slots, float scale, int sliding_window) {
  static_assert(sizeof(T) == 2, "f16 / bf16");
  static_assert(D == 64 || D == 128, "head_dim 64 or 128");
  using Ops = MmaOps<T>;
  constexpr int CH = D / 16;  // k-chunks of Q K^T
  constexpr int KV = D / 32;  // 16-byte vectors of a lane's quarter of a Q / K row
  constexpr int VV = D / 64;  // 16-byte vectors of a lane's eighth of a V row
  constexpr int NT = D / 8;   // n-tiles of P V
  constexpr unsigned FULL = 0xffffffffu;
  const int lane = threadIdx.x;
  const int g = lane >> 2;
  const int t = lane & 3;

  const PrefillTile tile = prefill_tile(tiles, block_tables, max_blocks, num_heads, num_kv_heads, QPB);
  const long long row_stride = (long long)num_heads * D;
  const int rows = tile.nq * QPB;
  const C* k_head = k_cache + (long long)tile.kvh * num_slots * D + t * (D / 4);
  const C* v_head = v_cache + (long long)tile.kvh * num_slots * D + g * (D / 8);

  // Rows g and g + 8: Q (zero past the tile), position, window start.
  uint4 qa[2][KV];
  int pos[2], lo[2];
  bool rv[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = g + 8 * h;
    rv[h] = r < rows;
    pos[h] = tile.p0 + r / QPB;
    lo[h] = sliding_window > 0 ? pos[h] - sliding_window + 1 : 0;
    const T* qr = q + (tile.qrow0 + r / QPB) * row_stride + (long long)(tile.head0 + r % QPB) * D + t * (D / 4);
#pragma unroll
    for (int v = 0; v < KV; ++v)
      qa[h][v] = rv[h] ? *reinterpret_cast<const uint4*>(qr + 8 * v) : make_uint4(0u, 0u, 0u, 0u);
  }
  const int key_hi = tile.p0 + tile.nq;  // exclusive
  const int key_lo = sliding_window > 0 ? max(0, tile.p0 - sliding_window + 1) : 0;
  const float log2_scale = scale * 1.4426950408889634f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

  for (int j0 = key_lo & ~15; j0 < key_hi; j0 += 16) {
    // The group's positions clamped into [key_lo, key_hi) stay in the group, so in one block.
    const int jmin = max(j0, key_lo), jmax = min(j0 + 15, key_hi - 1);
    const uint32_t slot0 = tile.table[j0 / block_size] * (uint32_t)block_size + j0 % block_size;
    auto slot = [&](int o) { return slot0 + (uint32_t)(min(max(j0 + o, jmin), jmax) - j0); };
    uint4 kb[2][KV], vb[4][VV];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const C* kp = k_head + (unsigned long long)slot(8 * j + g) * D;
#pragma unroll
      for (int v = 0; v < KV; ++v) kb[j][v] = load8_as<T>(kp + 8 * v);
    }
    // V keys 2t, 2t + 1, 2t + 8, 2t + 9.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const C* vp = v_head + (unsigned long long)slot(2 * t + (i & 1) + 8 * (i >> 1)) * D;
#pragma unroll
      for (int v = 0; v < VV; ++v) vb[i][v] = load8_as<T>(vp + 8 * v);
    }
    // S: s[j][0..1] row g, keys 8j + 2t + (0, 1); s[j][2..3] row g + 8.
    float s[2][4];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
      for (int c = 0; c < CH; ++c) {
        const int v = c >> 1, w = 2 * (c & 1);
        Ops::mma(s[j], vec_word(qa[0][v], w), vec_word(qa[1][v], w), vec_word(qa[0][v], w + 1),
                 vec_word(qa[1][v], w + 1), vec_word(kb[j][v], w), vec_word(kb[j][v], w + 1));
      }
    }
    // Mask (causal, window, past the chunk: kp <= pos < key_hi) and scale to the log2 domain.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int h = i >> 1;
        const int kp = j0 + 8 * j + 2 * t + (i & 1);
        const bool visible = rv[h] && kp <= pos[h] && kp >= lo[h];
        s[j][i] = visible ? s[j][i] * log2_scale : -INFINITY;
        mx[h] = fmaxf(mx[h], s[j][i]);
      }
    float alpha[2], mn[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(FULL, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(FULL, mx[h], 2));
      mn[h] = fmaxf(m[h], mx[h]);
      // No visible key yet for this row: nothing to add or rescale.
      alpha[h] = mn[h] == -INFINITY ? 1.f : exp2f(m[h] - mn[h]);
      m[h] = mn[h];
    }
    // P, rounded to the dtype, packed as the A fragments of P V; l adds the rounded values.
    uint32_t pa[4];
    float psum[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float e0 = mn[h] == -INFINITY ? 0.f : exp2f(s[j][2 * h] - mn[h]);
        const float e1 = mn[h] == -INFINITY ? 0.f : exp2f(s[j][2 * h + 1] - mn[h]);
        float r0, r1;
        pa[2 * j + h] = Ops::pack(e0, e1, r0, r1);
        psum[h] += r0 + r1;
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) l[h] = l[h] * alpha[h] + psum[h];
    if (__any_sync(FULL, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        o[n][0] *= alpha[0];
        o[n][1] *= alpha[0];
        o[n][2] *= alpha[1];
        o[n][3] *= alpha[1];
      }
    }
    // O += P V: n-tile n's B fragment pairs keys (2t, 2t+1) and (2t+8, 2t+9) at dim g*D/8 + n.
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const int v = n >> 3, w = (n >> 1) & 3;
      const uint32_t sel = (n & 1) ? 0x7632 : 0x5410;
      const uint32_t b0 = __byte_perm(vec_word(vb[0][v], w), vec_word(vb[1][v], w), sel);
      const uint32_t b1 = __byte_perm(vec_word(vb[2][v], w), vec_word(vb[3][v], w), sel);
      Ops::mma(o[n], pa[0], pa[1], pa[2], pa[3], b0, b1);
    }
  }

  // Rows g and g + 8: add the 4 lanes' sums, write dims 2t * D/8 + n and (2t+1) * D/8 + n.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(FULL, l[h], 1);
    l[h] += __shfl_xor_sync(FULL, l[h], 2);
    const int r = g + 8 * h;
    if (!rv[h]) continue;
    const float inv = 1.f / l[h];
    T* orow = out + (tile.qrow0 + r / QPB) * row_stride + (long long)(tile.head0 + r % QPB) * D;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
#pragma unroll
      for (int v = 0; v < NT / 8; ++v) {
        uint32_t w[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          float a, b;
          w[i] = Ops::pack(o[8 * v + 2 * i][2 * h + e] * inv, o[8 * v + 2 * i + 1][2 * h + e] * inv, a, b);
        }
        *reinterpret_cast<uint4*>(orow + (2 * t + e) * (D / 8) + 8 * v) = make_uint4(w[0], w[1], w[2], w[3]);
      }
    }
  }
}

#define PREFILL_MMA_KERNEL(NAME, T, C, D, QPB)                                                  \
  extern "C" __global__ void __launch_bounds__(32) paged_prefill_mma_##NAME##_d##D##_q##QPB(     \
      T* out, const T* q, const C* k_cache, const C* v_cache, const uint32_t* block_tables,     \
      const uint32_t* tiles, int num_heads, int num_kv_heads, int block_size, int max_blocks,   \
      long long num_slots, float scale, int sliding_window) {                                   \
    paged_prefill_mma_impl<T, C, D, QPB>(out, q, k_cache, v_cache, block_tables, tiles,         \
                                         num_heads, num_kv_heads, block_size, max_blocks,       \
                                         num_slots, scale, sliding_window);                     \
  }
#define PREFILL_MMA_KERNELS_D(NAME, T, C, D)                                       \
  PREFILL_MMA_KERNEL(NAME, T, C, D, 1) PREFILL_MMA_KERNEL(NAME, T, C, D, 2)        \
  PREFILL_MMA_KERNEL(NAME, T, C, D, 4) PREFILL_MMA_KERNEL(NAME, T, C, D, 8)
#define PREFILL_MMA_KERNELS(NAME, T) PREFILL_MMA_KERNELS_D(NAME, T, T, 64) PREFILL_MMA_KERNELS_D(NAME, T, T, 128)
// Over an fp8 E4M3 cache.
#define PREFILL_MMA_KERNELS_FP8(NAME, T) \
  PREFILL_MMA_KERNELS_D(NAME, T, fp8_e4m3, 64) PREFILL_MMA_KERNELS_D(NAME, T, fp8_e4m3, 128)
