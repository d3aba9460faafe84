// Greedy sampling on the device: the index of each row's largest logit, as the host's
// `sampling::argmax` picks it (NaN skipped, the lowest index wins a tie, -inf counts).
//
// argmax_rows_f32: logits [rows, vocab] f32 -> out [rows] u32; 0xFFFFFFFF for a row without a
//   non-NaN value. One block per row; each thread scans its share in increasing index order
//   (16-byte loads when the row allows), then the block reduces (value, index) pairs.
#include "common.cuh"

#define ARGMAX_NONE 0xFFFFFFFFu

// Whether (v, i) beats the best so far (bv, bi): a real value, larger, or equal at a lower index.
__device__ __forceinline__ bool argmax_better(float v, unsigned i, float bv, unsigned bi) {
  return !isnan(v) && (bi == ARGMAX_NONE || v > bv || (v == bv && i < bi));
}

__device__ __forceinline__ void argmax_take(float v, unsigned i, float& bv, unsigned& bi) {
  if (argmax_better(v, i, bv, bi)) {
    bv = v;
    bi = i;
  }
}

extern "C" __global__ void argmax_rows_f32(unsigned* __restrict__ out, const float* __restrict__ logits,
                                           int vocab) {
  __shared__ float shared_v[32];
  __shared__ unsigned shared_i[32];
  const float* row = logits + (long long)blockIdx.x * vocab;
  float bv = 0.f;
  unsigned bi = ARGMAX_NONE;
  if (vocab % 4 == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0) {
    const float4* row4 = reinterpret_cast<const float4*>(row);
    for (int v = threadIdx.x; v < vocab / 4; v += blockDim.x) {
      const float4 x = row4[v];
      const unsigned i = 4u * v;
      argmax_take(x.x, i, bv, bi);
      argmax_take(x.y, i + 1, bv, bi);
      argmax_take(x.z, i + 2, bv, bi);
      argmax_take(x.w, i + 3, bv, bi);
    }
  } else {
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) argmax_take(row[i], i, bv, bi);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const unsigned oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (oi != ARGMAX_NONE) argmax_take(ov, oi, bv, bi);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    shared_v[warp] = bv;
    shared_i[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    bv = lane < warps ? shared_v[lane] : 0.f;
    bi = lane < warps ? shared_i[lane] : ARGMAX_NONE;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const unsigned oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (oi != ARGMAX_NONE) argmax_take(ov, oi, bv, bi);
    }
    if (lane == 0) out[blockIdx.x] = bi;
  }
}
