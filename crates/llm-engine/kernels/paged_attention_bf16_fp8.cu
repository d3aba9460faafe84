// The paged-attention kernels over an fp8 E4M3 KV cache (paged_attention.cuh's decode and
// prefill fallbacks, paged_decode_vec.cuh, paged_prefill_mma.cuh) for __nv_bfloat16 Q and output,
// head_dims 64 and 128: kernels named *_bf16_fp8_*, one module of their own so that a process
// with an f16/bf16 cache never loads them.
#include "paged_attention.cuh"
#include "paged_decode_vec.cuh"
#include "paged_prefill_mma.cuh"
#include "paged_decode_tc.cuh"

PAGED_ATTENTION_KERNELS_FP8(bf16_fp8, __nv_bfloat16)
DECODE_VEC_KERNELS_FP8(bf16_fp8, __nv_bfloat16)
PREFILL_MMA_KERNELS_FP8(bf16_fp8, __nv_bfloat16)
DECODE_TC_KERNELS_FP8(bf16_fp8, __nv_bfloat16)
