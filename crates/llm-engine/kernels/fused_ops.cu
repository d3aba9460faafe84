// Fused element-wise kernels of the models' forward on CUDA, each one launch where candle's op
// path launches several. All arithmetic in f32; every value the reference path rounds to the
// model dtype (the residual sum, SiLU(gate)) is rounded the same way here.
//
// add_rms_norm_<t>:   sum = x + delta (rounded to T); out = sum / sqrt(mean(sum^2) + eps) * w
// add_layer_norm_<t>: sum = x + delta; out = (sum - mean) / sqrt(var + eps) * w + b
//   one block per row; `dst` is [2, rows, hidden]: the sums, then the normed rows.
// silu_mul_<t>:       gate_up [rows, 2*I] -> out [rows, I] = silu(gate) * up
// rope_split_qkv_<t>: qkv [rows, (H + 2*KVH) * D] -> dst = [q: rows*H*D][k: rows*KVH*D][v: rows*KVH*D]
//   with q and k rotated ("rotate half", neox style) by the table row of each token's position;
//   cos_sin [max_pos, D] holds cos in its first D/2 columns and sin in the rest. `rotate` = 0
//   only splits (GPT-2/OPT).
// rope_qkv_to_cache_<t>: the same, but k and v go straight into their paged-cache slots and
//   dst holds only q; rope_qkv_to_cache_<t>_fp8 into an fp8 E4M3 cache.
#include "common.cuh"

// The sum of `x` over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float x, float* shared32) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  x = warp_sum(x);
  __syncthreads();  // shared32 may still be read by a previous call
  if (lane == 0) shared32[warp] = x;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float total = lane < warps ? shared32[lane] : 0.f;
  return warp_sum(total);
}

// Elements each thread keeps in registers between the passes of add_norm_impl: rows up to
// NORM_PER_THREAD * blockDim.x (8192 at 1024 threads) are read from memory once; longer rows
// re-read their sums from memory (L1/L2) in the later passes.
#define NORM_PER_THREAD 8

// Vectors of 16 bytes each thread keeps in registers in add_norm_vec.
#define NORM_VECS_PER_THREAD 4

__device__ __forceinline__ bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The vector path of add_norm_impl: 16-byte loads and stores, the row's sums held in registers
// (rows of up to NORM_VECS_PER_THREAD * blockDim.x vectors). Same arithmetic and rounding as the
// element-wise path.
template <typename T>
__device__ void add_norm_vec(T* __restrict__ dst, const T* __restrict__ x, const T* __restrict__ delta,
                             const T* __restrict__ weight, const T* __restrict__ bias, int rows, int hidden,
                             float eps, bool layer_norm) {
  constexpr int VE = 16 / sizeof(T);
  using Vec = VecN<T, VE>;
  __shared__ float shared32[32];
  const long long row = blockIdx.x;
  const int nvec = hidden / VE;
  const Vec* xr = reinterpret_cast<const Vec*>(x + row * hidden);
  const Vec* dr = reinterpret_cast<const Vec*>(delta + row * hidden);
  Vec* sum_r = reinterpret_cast<Vec*>(dst + row * hidden);
  Vec* out_r = reinterpret_cast<Vec*>(dst + ((long long)rows + row) * hidden);
  const Vec* w = reinterpret_cast<const Vec*>(weight);
  const Vec* b = reinterpret_cast<const Vec*>(bias);
  float vals[NORM_VECS_PER_THREAD][VE];
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < NORM_VECS_PER_THREAD; ++j) {
    const int v = threadIdx.x + j * blockDim.x;
    if (v < nvec) {
      const Vec a = xr[v], d = dr[v];
      Vec h;
#pragma unroll
      for (int e = 0; e < VE; ++e) {
        h.v[e] = from_float<T>(to_float(a.v[e]) + to_float(d.v[e]));
        vals[j][e] = to_float(h.v[e]);
        s += vals[j][e];
      }
      sum_r[v] = h;
    }
  }
  float mean = 0.f;
  if (layer_norm) mean = block_sum(s, shared32) / hidden;
  float sq = 0.f;
#pragma unroll
  for (int j = 0; j < NORM_VECS_PER_THREAD; ++j) {
    if (threadIdx.x + j * blockDim.x < nvec) {
#pragma unroll
      for (int e = 0; e < VE; ++e) {
        const float c = vals[j][e] - mean;
        sq += c * c;
      }
    }
  }
  const float inv = rsqrtf(block_sum(sq, shared32) / hidden + eps);
#pragma unroll
  for (int j = 0; j < NORM_VECS_PER_THREAD; ++j) {
    const int v = threadIdx.x + j * blockDim.x;
    if (v < nvec) {
      const Vec wv = w[v];
      Vec o;
      if (b != nullptr) {
        const Vec bv = b[v];
#pragma unroll
        for (int e = 0; e < VE; ++e)
          o.v[e] = from_float<T>((vals[j][e] - mean) * inv * to_float(wv.v[e]) + to_float(bv.v[e]));
      } else {
#pragma unroll
        for (int e = 0; e < VE; ++e) o.v[e] = from_float<T>((vals[j][e] - mean) * inv * to_float(wv.v[e]));
      }
      out_r[v] = o;
    }
  }
}

template <typename T>
__device__ void add_norm_impl(T* __restrict__ dst, const T* __restrict__ x, const T* __restrict__ delta,
                              const T* __restrict__ weight, const T* __restrict__ bias, int rows,
                              int hidden, float eps, bool layer_norm) {
  constexpr int VE = 16 / sizeof(T);
  if (hidden % VE == 0 && hidden / VE <= NORM_VECS_PER_THREAD * (int)blockDim.x && aligned16(dst) &&
      aligned16(x) && aligned16(delta) && aligned16(weight) && (bias == nullptr || aligned16(bias))) {
    add_norm_vec<T>(dst, x, delta, weight, bias, rows, hidden, eps, layer_norm);
    return;
  }
  __shared__ float shared32[32];
  const long long row = blockIdx.x;
  const T* xr = x + row * hidden;
  const T* dr = delta + row * hidden;
  T* sum_r = dst + row * hidden;
  T* out_r = dst + ((long long)rows + row) * hidden;
  const int step = blockDim.x;
  const bool in_registers = hidden <= NORM_PER_THREAD * step;
  float vals[NORM_PER_THREAD];
  float s = 0.f;
  if (in_registers) {
#pragma unroll
    for (int j = 0; j < NORM_PER_THREAD; ++j) {
      const int i = threadIdx.x + j * step;
      vals[j] = 0.f;
      if (i < hidden) {
        const T h = from_float<T>(to_float(xr[i]) + to_float(dr[i]));
        sum_r[i] = h;
        vals[j] = to_float(h);
        s += vals[j];
      }
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += step) {
      const T h = from_float<T>(to_float(xr[i]) + to_float(dr[i]));
      sum_r[i] = h;
      s += to_float(h);
    }
  }
  float mean = 0.f;
  float sq = 0.f;
  if (layer_norm) mean = block_sum(s, shared32) / hidden;
  if (in_registers) {
#pragma unroll
    for (int j = 0; j < NORM_PER_THREAD; ++j) {
      const int i = threadIdx.x + j * step;
      if (i < hidden) {
        const float c = vals[j] - mean;
        sq += c * c;
      }
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += step) {
      const float c = to_float(sum_r[i]) - mean;
      sq += c * c;
    }
  }
  const float inv = rsqrtf(block_sum(sq, shared32) / hidden + eps);
  if (in_registers) {
#pragma unroll
    for (int j = 0; j < NORM_PER_THREAD; ++j) {
      const int i = threadIdx.x + j * step;
      if (i < hidden) {
        float v = (vals[j] - mean) * inv * to_float(weight[i]);
        if (bias != nullptr) v += to_float(bias[i]);
        out_r[i] = from_float<T>(v);
      }
    }
  } else {
    for (int i = threadIdx.x; i < hidden; i += step) {
      float v = (to_float(sum_r[i]) - mean) * inv * to_float(weight[i]);
      if (bias != nullptr) v += to_float(bias[i]);
      out_r[i] = from_float<T>(v);
    }
  }
}

// Calls body(i) for i in [0, total) over the grid. Indices go 32-bit when `total` allows, so that
// the kernels' row/column splits are 32-bit divisions (a 64-bit one is a ~70-instruction
// software routine, which made these memory-bound kernels compute-bound on 8,192-token steps).
template <typename F>
__device__ __forceinline__ void grid_stride(long long total, F body) {
  if (total <= 0x7fffffffLL) {
    const unsigned n = (unsigned)total;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) body(i);
  } else {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x)
      body(i);
  }
}

template <typename T>
__device__ __forceinline__ T silu_mul_one(T g_raw, T u_raw) {
  const float g = to_float(g_raw);
  const float act = to_float(from_float<T>(g / (1.f + expf(-g))));
  return from_float<T>(act * to_float(u_raw));
}

template <typename T>
__device__ void silu_mul_impl(T* __restrict__ dst, const T* __restrict__ gate_up, long long rows, int inter) {
  constexpr int VE = 16 / sizeof(T);
  if (inter % VE == 0 && reinterpret_cast<uintptr_t>(gate_up) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
    // 16-byte vectors: gate, up and the output row are all VE-aligned.
    using Vec = VecN<T, VE>;
    const int vecs = inter / VE;
    grid_stride(rows * vecs, [&](auto idx) {
      const auto r = idx / vecs;
      const int c = (int)(idx - r * vecs) * VE;
      const T* row = gate_up + (long long)r * 2 * inter;
      const Vec g = *reinterpret_cast<const Vec*>(row + c);
      const Vec u = *reinterpret_cast<const Vec*>(row + inter + c);
      Vec o;
#pragma unroll
      for (int i = 0; i < VE; ++i) o.v[i] = silu_mul_one<T>(g.v[i], u.v[i]);
      *reinterpret_cast<Vec*>(dst + (long long)idx * VE) = o;
    });
  } else {
    grid_stride(rows * inter, [&](auto idx) {
      const auto r = idx / inter;
      const int c = (int)(idx - r * inter);
      const T* row = gate_up + (long long)r * 2 * inter;
      dst[idx] = silu_mul_one<T>(row[c], row[inter + c]);
    });
  }
}

// Where head `hh` of row `r` of the fused qkv goes, as an element offset: q heads into dst;
// with CACHE, k and v rows straight into their slots of the paged cache (k_cache/v_cache
// [kv_heads, num_slots, head_dim], row r to slot slots[r]: what reshape_and_cache does, without
// the extra launches and round trip); without it, after q in dst as
// [k: rows*KVH*D][v: rows*KVH*D]. `to_cache`: the offset is into k_cache (is_k) or v_cache.
template <bool CACHE>
__device__ __forceinline__ long long split_offset(long long r, int hh, long long rows, int heads, int kv_heads,
                                                  int head_dim, const uint32_t* __restrict__ slots,
                                                  long long num_slots, bool& to_cache, bool& is_k) {
  to_cache = false;
  is_k = false;
  if (hh < heads) return (r * heads + hh) * head_dim;
  is_k = hh < heads + kv_heads;
  const long long kvh = is_k ? hh - heads : hh - heads - kv_heads;
  if (CACHE) {
    to_cache = true;
    return (kvh * num_slots + (long long)slots[r]) * head_dim;
  }
  const long long q_block = rows * heads * head_dim;
  const long long k_block = rows * kv_heads * head_dim;
  return q_block + (is_k ? 0 : k_block) + (r * kv_heads + kvh) * head_dim;
}

// Stores the two N-element halves' vectors at out + i and out + half + i, converted to the
// destination's element type (the identity unless it is an fp8 cache).
template <typename T, typename C, int N>
__device__ __forceinline__ void store_pair(C* __restrict__ out, int i, int half, const VecN<T, N>& a,
                                           const VecN<T, N>& b) {
  if constexpr (std::is_same<C, T>::value) {
    *reinterpret_cast<VecN<T, N>*>(out + i) = a;
    *reinterpret_cast<VecN<T, N>*>(out + half + i) = b;
  } else {
    VecN<C, N> ca, cb;
#pragma unroll
    for (int j = 0; j < N; ++j) {
      ca.v[j] = to_cache<C>(a.v[j]);
      cb.v[j] = to_cache<C>(b.v[j]);
    }
    *reinterpret_cast<VecN<C, N>*>(out + i) = ca;
    *reinterpret_cast<VecN<C, N>*>(out + half + i) = cb;
  }
}

// qkv [rows, (H + 2*KVH) * D] split into q, k, v (see split_offset), q and k rotated: one thread
// per N consecutive pairs (i, i + D/2) of a head ("rotate half"), read and written as N-element
// vectors (N = 16 bytes' worth on the vector path, 1 element-wise). Needs half % N == 0 and
// N-element-aligned tensors. C: the cache's element type (T, or fp8: k and v rounded to T
// first, as the reference path rounds them, then to fp8).
template <typename T, typename C, bool CACHE, int N>
__device__ void rope_split_qkv_n(T* __restrict__ dst, const T* __restrict__ qkv, const T* __restrict__ cos_sin,
                                 const uint32_t* __restrict__ positions, long long table_rows, long long rows,
                                 int heads, int kv_heads, int head_dim, int rotate, C* __restrict__ k_cache,
                                 C* __restrict__ v_cache, const uint32_t* __restrict__ slots, long long num_slots) {
  using Vec = VecN<T, N>;
  const int half = head_dim / 2;
  const int chunks = half / N;  // vectors per half head
  const int width = (heads + 2 * kv_heads) * head_dim;
  const int units_per_row = (heads + 2 * kv_heads) * chunks;
  grid_stride(rows * units_per_row, [&](auto idx) {
    const long long r = idx / units_per_row;
    const int rem = (int)(idx - (decltype(idx))r * units_per_row);
    const int hh = rem / chunks;  // head in the fused row: q heads, k heads, v heads
    const int i = (rem - hh * chunks) * N;
    const T* src = qkv + r * width + hh * head_dim;
    bool cached, is_k;
    const long long off = split_offset<CACHE>(r, hh, rows, heads, kv_heads, head_dim, slots, num_slots, cached, is_k);
    Vec o1 = *reinterpret_cast<const Vec*>(src + i);
    Vec o2 = *reinterpret_cast<const Vec*>(src + half + i);
    // A position past the table (never scheduled: the engine caps lengths at the model's
    // max_position_embeddings, the table's length) reads nothing out of bounds.
    const long long pos = rotate ? (long long)positions[r] : 0;
    if (rotate && hh < heads + kv_heads && pos < table_rows) {
      const T* table = cos_sin + pos * head_dim;
      const Vec c = *reinterpret_cast<const Vec*>(table + i);
      const Vec s = *reinterpret_cast<const Vec*>(table + half + i);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const float cj = to_float(c.v[j]), sj = to_float(s.v[j]);
        const float x1 = to_float(o1.v[j]), x2 = to_float(o2.v[j]);
        o1.v[j] = from_float<T>(x1 * cj - x2 * sj);
        o2.v[j] = from_float<T>(x2 * cj + x1 * sj);
      }
    }
    if (cached) {
      store_pair<T, C, N>((is_k ? k_cache : v_cache) + off, i, half, o1, o2);
    } else {
      store_pair<T, T, N>(dst + off, i, half, o1, o2);
    }
  });
}

// The 16-byte vector path where the half head splits into vectors and the tensors are
// aligned, else element-wise.
template <typename T, typename C, bool CACHE>
__device__ void rope_split_qkv_impl(T* __restrict__ dst, const T* __restrict__ qkv, const T* __restrict__ cos_sin,
                                    const uint32_t* __restrict__ positions, long long table_rows, long long rows,
                                    int heads, int kv_heads, int head_dim, int rotate, C* __restrict__ k_cache,
                                    C* __restrict__ v_cache, const uint32_t* __restrict__ slots,
                                    long long num_slots) {
  constexpr int VE = 16 / sizeof(T);
  if ((head_dim / 2) % VE == 0 && aligned16(dst) && aligned16(qkv) && aligned16(cos_sin) &&
      (!CACHE || (aligned16(k_cache) && aligned16(v_cache)))) {
    rope_split_qkv_n<T, C, CACHE, VE>(dst, qkv, cos_sin, positions, table_rows, rows, heads, kv_heads, head_dim,
                                      rotate, k_cache, v_cache, slots, num_slots);
  } else {
    rope_split_qkv_n<T, C, CACHE, 1>(dst, qkv, cos_sin, positions, table_rows, rows, heads, kv_heads, head_dim,
                                     rotate, k_cache, v_cache, slots, num_slots);
  }
}

// rope_qkv_to_cache into an fp8 E4M3 cache: rope_qkv_to_cache_<t>_fp8.
#define ROPE_TO_FP8_CACHE(NAME, T)                                                                \
  extern "C" __global__ void rope_qkv_to_cache_##NAME##_fp8(                                      \
      T* dst, const T* qkv, const T* cos_sin, const uint32_t* positions, long long table_rows,    \
      long long rows, int heads, int kv_heads, int head_dim, int rotate, fp8_e4m3* k_cache,       \
      fp8_e4m3* v_cache, const uint32_t* slots, long long num_slots) {                            \
    rope_split_qkv_impl<T, fp8_e4m3, true>(dst, qkv, cos_sin, positions, table_rows, rows, heads, \
                                           kv_heads, head_dim, rotate, k_cache, v_cache, slots,   \
                                           num_slots);                                            \
  }

#define FUSED_OPS(NAME, T)                                                                          \
  extern "C" __global__ void add_rms_norm_##NAME(T* dst, const T* x, const T* delta, const T* weight, \
                                                 int rows, int hidden, float eps) {                 \
    add_norm_impl<T>(dst, x, delta, weight, nullptr, rows, hidden, eps, false);                     \
  }                                                                                                 \
  extern "C" __global__ void add_layer_norm_##NAME(T* dst, const T* x, const T* delta,             \
                                                   const T* weight, const T* bias, int rows,        \
                                                   int hidden, float eps) {                         \
    add_norm_impl<T>(dst, x, delta, weight, bias, rows, hidden, eps, true);                         \
  }                                                                                                 \
  extern "C" __global__ void silu_mul_##NAME(T* dst, const T* gate_up, long long rows, int inter) { \
    silu_mul_impl<T>(dst, gate_up, rows, inter);                                                    \
  }                                                                                                 \
  extern "C" __global__ void rope_split_qkv_##NAME(T* dst, const T* qkv, const T* cos_sin,         \
                                                   const uint32_t* positions, long long table_rows, \
                                                   long long rows, int heads, int kv_heads,         \
                                                   int head_dim, int rotate) {                      \
    rope_split_qkv_impl<T, T, false>(dst, qkv, cos_sin, positions, table_rows, rows, heads, kv_heads,  \
                                  head_dim, rotate, nullptr, nullptr, nullptr, 0);                  \
  }                                                                                                 \
  extern "C" __global__ void rope_qkv_to_cache_##NAME(                                              \
      T* dst, const T* qkv, const T* cos_sin, const uint32_t* positions, long long table_rows,      \
      long long rows, int heads, int kv_heads, int head_dim, int rotate, T* k_cache, T* v_cache,    \
      const uint32_t* slots, long long num_slots) {                                                 \
    rope_split_qkv_impl<T, T, true>(dst, qkv, cos_sin, positions, table_rows, rows, heads, kv_heads,   \
                                 head_dim, rotate, k_cache, v_cache, slots, num_slots);             \
  }

FUSED_OPS(f32, float)
FUSED_OPS(f16, __half)
FUSED_OPS(bf16, __nv_bfloat16)
ROPE_TO_FP8_CACHE(f32, float)
ROPE_TO_FP8_CACHE(f16, __half)
ROPE_TO_FP8_CACHE(bf16, __nv_bfloat16)
