// The paged-attention kernels (paged_attention.cuh) for __nv_bfloat16 K/V, Q and output.
#include "paged_attention.cuh"

PAGED_ATTENTION_KERNELS(bf16, __nv_bfloat16)
