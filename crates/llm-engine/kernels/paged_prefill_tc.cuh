// Prefill attention on tensor cores (included by paged_attention_f16.cu / _bf16.cu): the job of
// paged_prefill_* (the new tokens of prefill chunks, causal over the cached prefix plus the
// chunk, flash-attention style with an online softmax, no score matrix in memory) with the two
// products on WMMA 16x16x16 fragments (inputs in the cache dtype, f32 accumulation) instead of
// scalar f32 FMAs.
//
// One warp per tile of the step's prefill tiles (the metadata's 16 (token, head) query rows of
// ONE sequence and kv head; row r = token r / QPB, query head r % QPB). Keys go by rounds of
// 32 (two 16-key fragments; the block size is a multiple of 16, so a fragment's keys are 16
// consecutive slots of one cache block and load straight from the cache, row stride D):
//   S = Q K^T (16 x 32, f32, to shared memory), masked (causal, window, past the chunk) and
//   scaled to the log2 domain; lanes 2r and 2r+1 own row r: running max m, sum l, and the
//   rescale of their half of the row's f32 accumulator O (shared memory) by exp2(m_old - m);
//   P = exp2(S - m) rounded to the dtype (l sums the rounded values, as P·V uses them);
//   O += P V on fragments loaded from and stored back to shared memory.
// The output row is O / l. Shared memory per warp: Q [16][D] T, S [16][36] f32, P [16][40] T,
// O [16][D] f32 (S and P rows padded against bank conflicts; O is swept in order).
#pragma once
#include <mma.h>
#include "common.cuh"

#define PREFILL_TC_KEYS 32
// Row strides of S (f32) and P (T) in shared memory: padded (WMMA needs multiples of 16
// bytes) so that the 16 rows' lanes of the softmax fall in different banks.
#define PREFILL_TC_S_LD (PREFILL_TC_KEYS + 4)
#define PREFILL_TC_P_LD (PREFILL_TC_KEYS + 8)

template <typename T, int D, int QPB>
__device__ void paged_prefill_tc_impl(T* __restrict__ out, const T* __restrict__ q,
                                      const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                                      const uint32_t* __restrict__ block_tables,
                                      const uint32_t* __restrict__ tiles, int num_heads,
                                      int num_kv_heads, int block_size, int max_blocks,
                                      long long num_slots, float scale, int sliding_window) {
  using namespace nvcuda;
  constexpr int ROWS = 16;
  constexpr int KT = PREFILL_TC_KEYS;
  constexpr int SLD = PREFILL_TC_S_LD;
  constexpr int PLD = PREFILL_TC_P_LD;
  static_assert(D % 16 == 0 && D <= 256, "head_dim a multiple of 16, at most 256");
  extern __shared__ __align__(128) unsigned char smem_tc[];
  T* qs = reinterpret_cast<T*>(smem_tc);                       // [ROWS][D]
  float* ss = reinterpret_cast<float*>(qs + ROWS * D);         // [ROWS][SLD]
  T* ps = reinterpret_cast<T*>(ss + ROWS * SLD);               // [ROWS][PLD]
  float* os = reinterpret_cast<float*>(ps + ROWS * PLD);       // [ROWS][D]
  const int lane = threadIdx.x;

  const PrefillTile t = prefill_tile(tiles, block_tables, max_blocks, num_heads, num_kv_heads, QPB);
  const long long qrow0 = t.qrow0;
  const int nq = t.nq, p0 = t.p0, head0 = t.head0, kvh = t.kvh;
  const uint32_t* table = t.table;
  const long long row_stride = (long long)num_heads * D;
  const T* k_head = k_cache + (long long)kvh * num_slots * D;
  const T* v_head = v_cache + (long long)kvh * num_slots * D;
  const int rows = nq * QPB;

  // Stage Q (zero rows past the tile) and clear O.
  for (int idx = lane; idx < ROWS * D; idx += 32) {
    const int r = idx / D;
    const int e = idx - r * D;
    qs[idx] = r < rows ? q[(qrow0 + r / QPB) * row_stride + (long long)(head0 + r % QPB) * D + e]
                       : from_float<T>(0.f);
    os[idx] = 0.f;
  }
  __syncwarp();

  const int key_hi = p0 + nq;  // exclusive
  const int key_lo = sliding_window > 0 ? max(0, p0 - sliding_window + 1) : 0;
  // This lane's row and half of the key round / of the head dim.
  const int my_row = lane >> 1;
  const int my_half = lane & 1;
  const bool row_valid = my_row < rows;
  const int my_pos = p0 + my_row / QPB;
  const int my_lo = sliding_window > 0 ? my_pos - sliding_window + 1 : 0;
  const float log2_scale = scale * 1.4426950408889634f;
  float m = -INFINITY;
  float l = 0.f;

  for (int kt = key_lo & ~15; kt < key_hi; kt += KT) {
    // S = Q K^T for the round's key fragments that hold keys of the chunk.
#pragma unroll
    for (int f = 0; f < KT / 16; ++f) {
      const int j0 = kt + 16 * f;
      if (j0 < key_hi) {  // warp-uniform
        const long long slot0 = (long long)table[j0 / block_size] * block_size + j0 % block_size;
        const T* kp = k_head + slot0 * D;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.f);
#pragma unroll
        for (int ds = 0; ds < D / 16; ++ds) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
          wmma::load_matrix_sync(a, qs + ds * 16, D);
          wmma::load_matrix_sync(b, kp + ds * 16, D);
          wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(ss + 16 * f, acc, SLD, wmma::mem_row_major);
      }
    }
    __syncwarp();
    // Online softmax over this round: lane (row, half) takes 16 of the 32 keys.
    float sv[16];
    float round_max = -INFINITY;
#pragma unroll
    for (int c = 0; c < 16; ++c) {
      const int col = my_half * 16 + c;
      const int key = kt + col;
      const bool visible = row_valid && key < key_hi && key <= my_pos && key >= my_lo && key >= key_lo;
      sv[c] = visible ? ss[my_row * SLD + col] * log2_scale : -INFINITY;
      round_max = fmaxf(round_max, sv[c]);
    }
    round_max = fmaxf(round_max, __shfl_xor_sync(0xffffffffu, round_max, 1));
    const float m_new = fmaxf(m, round_max);
    // No visible key yet for this row: nothing to add or rescale.
    const float alpha = m_new == -INFINITY ? 1.f : exp2f(m - m_new);
    float p_sum = 0.f;
#pragma unroll
    for (int c = 0; c < 16; ++c) {
      const T p = from_float<T>(m_new == -INFINITY ? 0.f : exp2f(sv[c] - m_new));
      ps[my_row * PLD + my_half * 16 + c] = p;
      p_sum += to_float(p);
    }
    p_sum += __shfl_xor_sync(0xffffffffu, p_sum, 1);
    l = l * alpha + p_sum;
    m = m_new;
    // Rescale O by the rows' alphas: the lanes sweep O in order (conflict-free), each taking
    // its element's row alpha from lane 2 * row.
    if (!__all_sync(0xffffffffu, alpha == 1.f)) {
      for (int idx = lane; idx < ROWS * D; idx += 32) {
        const int r = idx / D;
        os[idx] *= __shfl_sync(0xffffffffu, alpha, 2 * r);
      }
    }
    __syncwarp();
    // O += P V.
#pragma unroll
    for (int dc = 0; dc < D / 16; ++dc) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;
      wmma::load_matrix_sync(o, os + dc * 16, D, wmma::mem_row_major);
#pragma unroll
      for (int f = 0; f < KT / 16; ++f) {
        const int j0 = kt + 16 * f;
        if (j0 < key_hi) {
          const long long slot0 = (long long)table[j0 / block_size] * block_size + j0 % block_size;
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
          wmma::load_matrix_sync(a, ps + 16 * f, PLD);
          wmma::load_matrix_sync(b, v_head + slot0 * D + dc * 16, D);
          wmma::mma_sync(o, a, b, o);
        }
      }
      wmma::store_matrix_sync(os + dc * 16, o, D, wmma::mem_row_major);
    }
    __syncwarp();
  }

  const float inv = row_valid ? 1.f / l : 0.f;
  // ROWS * D is a multiple of 32: every lane runs every iteration (the shuffle needs them all).
  for (int idx = lane; idx < ROWS * D; idx += 32) {
    const int r = idx / D;
    const int e = idx - r * D;
    const float row_inv = __shfl_sync(0xffffffffu, inv, 2 * r);
    if (r < rows)
      out[(qrow0 + r / QPB) * row_stride + (long long)(head0 + r % QPB) * D + e] =
          from_float<T>(os[idx] * row_inv);
  }
}

#define PREFILL_TC_KERNEL(NAME, T, D, QPB)                                                      \
  extern "C" __global__ void __launch_bounds__(32) paged_prefill_tc_##NAME##_d##D##_q##QPB(      \
      T* out, const T* q, const T* k_cache, const T* v_cache, const uint32_t* block_tables,     \
      const uint32_t* tiles, int num_heads, int num_kv_heads, int block_size, int max_blocks,   \
      long long num_slots, float scale, int sliding_window) {                                   \
    paged_prefill_tc_impl<T, D, QPB>(out, q, k_cache, v_cache, block_tables, tiles, num_heads, \
                                     num_kv_heads, block_size, max_blocks, num_slots, scale,   \
                                     sliding_window);                                           \
  }
#define PREFILL_TC_KERNELS_D(NAME, T, D)                                          \
  PREFILL_TC_KERNEL(NAME, T, D, 1) PREFILL_TC_KERNEL(NAME, T, D, 2)               \
  PREFILL_TC_KERNEL(NAME, T, D, 4) PREFILL_TC_KERNEL(NAME, T, D, 8)
// head_dims: the golden fixtures' 16, and the common 64 / 80 / 96 / 128 / 256.
#define PREFILL_TC_KERNELS(NAME, T)                                                           \
  PREFILL_TC_KERNELS_D(NAME, T, 16) PREFILL_TC_KERNELS_D(NAME, T, 64)                         \
  PREFILL_TC_KERNELS_D(NAME, T, 80) PREFILL_TC_KERNELS_D(NAME, T, 96)                         \
  PREFILL_TC_KERNELS_D(NAME, T, 128) PREFILL_TC_KERNELS_D(NAME, T, 256)
