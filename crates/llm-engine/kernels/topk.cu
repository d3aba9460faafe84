// Top-k sampling's selection on the device: the k largest logits of each row scaled by the
// row's 1 / temperature, sorted as the host's sampler sorts them (value descending, lower id
// first on a tie, -0 below +0), so only k (id, value) pairs per row cross to the host, which
// then applies top-p / min-p and draws (sampling::sample_from_candidates).
//
// topk_rows_f32: logits [rows, vocab] f32, per row inv_t [rows] f32, k [rows] u32 (<= kmax)
//   and greedy [rows] u32 (0: random sampling's rules, finite logits only and -0 below +0 as
//   f32::total_cmp orders them; 1: sampling::argmax's rules, +-inf kept and -0 equal to +0, so
//   the lower id wins; NaN is always skipped) -> ids [rows, kmax] u32 (TOPK_NONE past the
//   row's candidates) and values [rows, kmax] f32.
// One block per row and kmax rounds: a round takes the best element ordered after the
// previous pick (one pass over the row, in L1/L2 after the first, and a block max of 64-bit
// keys). O(k * vocab) per row: meant for the small k of top-k sampling (the host caps it).
#include "common.cuh"

#define TOPK_NONE 0xFFFFFFFFu

// The order of (value, id) as one 64-bit key, larger = better: the value's bits mapped to an
// unsigned order (total_cmp's, NaN excluded) above the complemented id (lower id wins a tie).
// 0 is below every real candidate (the value key of -inf is 0x007FFFFF).
__device__ __forceinline__ unsigned long long topk_key(float v, unsigned id) {
  const unsigned u = __float_as_uint(v);
  const unsigned order = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return ((unsigned long long)order << 32) | (unsigned long long)(~id);
}

__device__ __forceinline__ float topk_value(unsigned long long key) {
  const unsigned order = (unsigned)(key >> 32);
  return __uint_as_float((order & 0x80000000u) ? (order & 0x7FFFFFFFu) : ~order);
}

// The block's largest key (blockDim.x a multiple of 32); every thread gets it.
__device__ __forceinline__ unsigned long long block_max_key(unsigned long long x, unsigned long long* shared32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long y = __shfl_xor_sync(0xffffffffu, x, o);
    x = y > x ? y : x;
  }
  __syncthreads();  // shared32 may still be read from the previous round
  if (lane == 0) shared32[warp] = x;
  __syncthreads();
  x = lane < (int)(blockDim.x >> 5) ? shared32[lane] : 0ull;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long y = __shfl_xor_sync(0xffffffffu, x, o);
    x = y > x ? y : x;
  }
  return x;
}

extern "C" __global__ void topk_rows_f32(unsigned* __restrict__ ids, float* __restrict__ values,
                                         const float* __restrict__ logits, int vocab,
                                         const float* __restrict__ inv_t, const unsigned* __restrict__ ks,
                                         const unsigned* __restrict__ greedy_rows, int kmax) {
  __shared__ unsigned long long shared32[32];
  const int row = blockIdx.x;
  const float* x = logits + (long long)row * vocab;
  const float scale = inv_t[row];
  const int k = min((int)ks[row], kmax);
  const bool greedy = greedy_rows[row] != 0;
  unsigned long long prev = ~0ull;  // every key is below it
  for (int r = 0; r < kmax; ++r) {
    unsigned long long best = 0;
    if (r < k && prev != 0) {  // block-uniform
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float raw = x[i];
        if (isnan(raw) || (!greedy && isinf(raw))) continue;
        // Greedy compares as IEEE does: -0 + 0 is +0, so a tie of zeros goes to the lower id.
        const float v = greedy ? raw * scale + 0.f : raw * scale;
        const unsigned long long key = topk_key(v, (unsigned)i);
        if (key < prev && key > best) best = key;
      }
    }
    best = block_max_key(best, shared32);
    if (threadIdx.x == 0) {
      ids[(long long)row * kmax + r] = best ? ~(unsigned)best : TOPK_NONE;
      values[(long long)row * kmax + r] = best ? topk_value(best) : 0.f;
    }
    prev = best;
  }
}
