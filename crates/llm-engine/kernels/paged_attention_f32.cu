// The paged-attention kernels (paged_attention.cuh, paged_decode_vec.cuh) for float K/V, Q and output.
#include "paged_attention.cuh"
#include "paged_decode_vec.cuh"

PAGED_ATTENTION_KERNELS(f32, float)
DECODE_VEC_KERNELS_F32(f32, float)
