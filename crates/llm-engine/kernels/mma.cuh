// Warp-level tensor-core helpers of the attention kernels that keep their fragments in
// registers (paged_prefill_mma.cuh): mma.sync m16n8k16 with f32
// accumulation for f16 / bf16 inputs, packing two f32 into one register of the dtype, and the
// words of a 16-byte vector.
#pragma once
#include "common.cuh"

// One word (two elements) of a 16-byte vector; `i` is a constant after unrolling.
__device__ __forceinline__ uint32_t vec_word(const uint4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}

// The mma and the packing of two f32 into one register of the dtype.
template <typename T> struct MmaOps;

template <> struct MmaOps<__half> {
  // Packs (lo, hi) rounded to f16; lo_r / hi_r get the rounded values back (the softmax sum
  // adds what P·V multiplies).
  static __device__ __forceinline__ uint32_t pack(float lo, float hi, float& lo_r, float& hi_r) {
    const __half2 h = __floats2half2_rn(lo, hi);
    lo_r = __low2float(h);
    hi_r = __high2float(h);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                             uint32_t a3, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
};

template <> struct MmaOps<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi, float& lo_r, float& hi_r) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    lo_r = __low2float(h);
    hi_r = __high2float(h);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                             uint32_t a3, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
};
