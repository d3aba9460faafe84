// The paged-attention kernels (paged_attention.cuh) for __half K/V, Q and output.
#include "paged_attention.cuh"

PAGED_ATTENTION_KERNELS(f16, __half)
