// The paged-attention kernels (paged_attention.cuh, paged_decode_vec.cuh,
// paged_prefill_tc.cuh, paged_prefill_mma.cuh) for __half K/V, Q and output.
#include "paged_attention.cuh"
#include "paged_decode_vec.cuh"
#include "paged_prefill_tc.cuh"
#include "paged_prefill_mma.cuh"

PAGED_ATTENTION_KERNELS(f16, __half)
DECODE_VEC_KERNELS_HALF(f16, __half)
PREFILL_TC_KERNELS(f16, __half)
PREFILL_MMA_KERNELS(f16, __half)
