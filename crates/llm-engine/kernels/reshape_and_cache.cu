// Writes the new K (or V) rows of a step into their cache slots: one launch per layer and
// tensor, one thread block per token (vLLM's reshape_and_cache, for the head-major layout).
//
// rows:  [num_tokens, num_kv_heads, head_dim] (the projections' layout, model dtype T)
// cache: [num_kv_heads, num_slots, head_dim] (T, or fp8 E4M3: *_<t>_fp8 round and saturate)
// slot_mapping: [num_tokens], the slot of each token.
#include "common.cuh"

template <typename T, typename C>
__device__ void reshape_and_cache_impl(C* __restrict__ cache, const T* __restrict__ rows,
                                       const uint32_t* __restrict__ slot_mapping, int num_kv_heads,
                                       int head_dim, long long num_slots) {
  const long long t = blockIdx.x;
  const long long slot = slot_mapping[t];
  const int row_len = num_kv_heads * head_dim;
  const T* src = rows + t * row_len;
  for (int idx = threadIdx.x; idx < row_len; idx += blockDim.x) {
    const int h = idx / head_dim;
    const int e = idx - h * head_dim;
    cache[((long long)h * num_slots + slot) * head_dim + e] = to_cache<C>(src[idx]);
  }
}

#define RESHAPE_AND_CACHE(NAME, T, C)                                                           \
  extern "C" __global__ void reshape_and_cache_##NAME(C* cache, const T* rows,                  \
                                                      const uint32_t* slot_mapping,             \
                                                      int num_kv_heads, int head_dim,           \
                                                      long long num_slots) {                    \
    reshape_and_cache_impl<T, C>(cache, rows, slot_mapping, num_kv_heads, head_dim, num_slots); \
  }

RESHAPE_AND_CACHE(f32, float, float)
RESHAPE_AND_CACHE(f16, __half, __half)
RESHAPE_AND_CACHE(bf16, __nv_bfloat16, __nv_bfloat16)
RESHAPE_AND_CACHE(f32_fp8, float, fp8_e4m3)
RESHAPE_AND_CACHE(f16_fp8, __half, fp8_e4m3)
RESHAPE_AND_CACHE(bf16_fp8, __nv_bfloat16, fp8_e4m3)
