// Memory-bandwidth kernels of matmul-flops, compiled at run time with NVRTC.
// All buffers are arrays of 16-byte vectors (uint4); n counts vectors. Grid-stride loops,
// so any grid size covers the buffer; the host picks the grid size that runs fastest.

typedef unsigned int u32;
typedef unsigned long long u64;

// The value of 32-bit word w of a filled buffer (a murmur3 finaliser of w ^ seed).
__device__ __forceinline__ u32 word_value(u64 w, u32 seed) {
    u32 h = (u32)w ^ ((u32)(w >> 32) * 0x9E3779B9u) ^ seed;
    h ^= h >> 16; h *= 0x85EBCA6Bu;
    h ^= h >> 13; h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

extern "C" __global__ void bw_fill(uint4* __restrict__ dst, u64 n, u32 seed) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        u64 w = i * 4;
        dst[i] = make_uint4(word_value(w, seed), word_value(w + 1, seed),
                            word_value(w + 2, seed), word_value(w + 3, seed));
    }
}

extern "C" __global__ void bw_copy(const uint4* __restrict__ src, uint4* __restrict__ dst, u64 n) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    // two independent 16-byte loads in flight per thread per iteration
    for (; i + stride < n; i += 2 * stride) {
        uint4 a = src[i];
        uint4 b = src[i + stride];
        dst[i] = a;
        dst[i + stride] = b;
    }
    if (i < n) dst[i] = src[i];
}

// Sums every 32-bit word (mod 2^32) into *out, which the host zeroes first.
extern "C" __global__ void bw_read(const uint4* __restrict__ src, u64 n, u32* __restrict__ out) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    u32 acc0 = 0, acc1 = 0;
    for (; i + stride < n; i += 2 * stride) {
        uint4 a = src[i];
        uint4 b = src[i + stride];
        acc0 += a.x + a.y + a.z + a.w;
        acc1 += b.x + b.y + b.z + b.w;
    }
    if (i < n) { uint4 a = src[i]; acc0 += a.x + a.y + a.z + a.w; }
    u32 acc = acc0 + acc1;
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, off);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, acc);
}

extern "C" __global__ void bw_write(uint4* __restrict__ dst, u64 n, u32 value) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    uint4 v = make_uint4(value, value ^ 0x1u, value ^ 0x2u, value ^ 0x3u);
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = v;
}

// Keeps the stream busy for `cycles` SM clock cycles, so the host can queue a whole batch of
// timed launches before the first one starts (no idle gaps inside the timed intervals).
extern "C" __global__ void spin(u64 cycles) {
    long long start = clock64();
    while ((u64)(clock64() - start) < cycles) { }
}
