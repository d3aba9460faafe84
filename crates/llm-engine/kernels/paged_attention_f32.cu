// The paged-attention kernels (paged_attention.cuh) for float K/V, Q and output.
#include "paged_attention.cuh"

PAGED_ATTENTION_KERNELS(f32, float)
