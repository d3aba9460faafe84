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

// Element-wise conversions between a model dtype and fp8 E4M3 (candle 0.11's own CUDA casts to
// and from F8E4M3 are not loadable: their kernel names do not match what it looks up):
// fp8_from_<t>: out[i] = fp8(in[i]) rounded to nearest even, saturated to +-448 (NaN stays NaN);
// fp8_to_<t>:   out[i] = in[i] (every E4M3 value is exact in f32, f16 and bf16).
#define FP8_CASTS(NAME, T)                                                                     \
  extern "C" __global__ void fp8_from_##NAME(fp8_e4m3* out, const T* in, long long n) {       \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;                \
         i += (long long)gridDim.x * blockDim.x)                                               \
      out[i] = to_cache<fp8_e4m3>(in[i]);                                                      \
  }                                                                                            \
  extern "C" __global__ void fp8_to_##NAME(T* out, const fp8_e4m3* in, long long n) {         \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;                \
         i += (long long)gridDim.x * blockDim.x)                                               \
      out[i] = from_float<T>(to_float(in[i]));                                                 \
  }

FP8_CASTS(f32, float)
FP8_CASTS(f16, __half)
FP8_CASTS(bf16, __nv_bfloat16)
