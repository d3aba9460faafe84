// The paged-attention kernels (paged_attention.cuh, paged_decode_vec.cuh,
// paged_prefill_tc.cuh, paged_prefill_mma.cuh) for __nv_bfloat16 K/V, Q and output.
#include "paged_attention.cuh"
#include "paged_decode_vec.cuh"
#include "paged_prefill_tc.cuh"
#include "paged_prefill_mma.cuh"

PAGED_ATTENTION_KERNELS(bf16, __nv_bfloat16)
DECODE_VEC_KERNELS_HALF(bf16, __nv_bfloat16)
PREFILL_TC_KERNELS(bf16, __nv_bfloat16)
PREFILL_MMA_KERNELS(bf16, __nv_bfloat16)
