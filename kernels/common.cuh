// Shared helpers for every kernel file (prepended by build.rs). Header-free: NVRTC sees no
// toolkit headers, so bf16 is `unsigned short` with our own conversions.

typedef unsigned short bf16_t;

__device__ __forceinline__ float bf16_to_f32(bf16_t h) {
    return __uint_as_float(((unsigned int)h) << 16);
}

// Round to nearest even; NaN stays a quiet NaN with its sign.
__device__ __forceinline__ bf16_t f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)(((u >> 16) & 0x8000u) | 0x7fc0u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

// Typed loads and stores: every kernel computes in fp32 whatever the storage type.
__device__ __forceinline__ float ld(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16_t* p, long long i) { return bf16_to_f32(p[i]); }
__device__ __forceinline__ void st(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16_t* p, long long i, float v) { p[i] = f32_to_bf16(v); }

#define SF_INF __int_as_float(0x7f800000)

// Before a 16-byte vector access of global memory: nothing on the device (the host plans
// aligned pointers); the CPU emulation (tools/cuda_emu/emu.h) defines it to check alignment.
#ifndef SF_CHECK_ALIGN16
#define SF_CHECK_ALIGN16(p)
#endif

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// `scratch` must hold 32 floats. Deterministic: a fixed tree, no atomics.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : -SF_INF;
    return warp_max(v);
}

// Column sums over the rows of a row-major [rows, cols] matrix, pass 1 of 2 (deterministic, no
// atomics): block (column tile blockIdx.x of COLSUM_TILE columns, row split blockIdx.y) sums
// rows [blockIdx.y·rows_per_split, +rows_per_split). Each of its COLSUM_WARPS warps takes every
// COLSUM_WARPS-th row and, per row, columns lane and lane + 32 of the tile (one coalesced load
// of 32 consecutive elements each); `term(i, r, acc)` adds element i = r·cols + c's N
// contributions to acc[0..N). The warps' sums meet in shared memory in warp order and one
// partial per (n, split, column) goes to partials[(n·gridDim.y + split)·cols + c]. Pass 2
// (colsum_final in reduce.cu, the LayerNorm file's own) sums a column's partials in split
// order. The split count is a function of (rows, cols) only, so results repeat bit for bit.
#define COLSUM_TILE 64
#define COLSUM_WARPS 8
#define COLSUM_THREADS (COLSUM_WARPS * 32)
template <int N, typename F>
__device__ __forceinline__ void colsum_partials_block(float* partials, int rows, int cols,
                                                      int rows_per_split, F term) {
    __shared__ float colsum_part[N][COLSUM_WARPS][COLSUM_TILE];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int tile = blockIdx.x * COLSUM_TILE;
    const int r0 = blockIdx.y * rows_per_split;
    const int r1 = min(rows, r0 + rows_per_split);
    float acc[2][N];
    for (int h = 0; h < 2; ++h)
        for (int n = 0; n < N; ++n) acc[h][n] = 0.0f;
    for (int r = r0 + warp; r < r1; r += COLSUM_WARPS) {
        const long long base = (long long)r * cols;
        for (int h = 0; h < 2; ++h) {
            const int c = tile + lane + 32 * h;
            if (c < cols) term(base + c, r, acc[h]);
        }
    }
    for (int h = 0; h < 2; ++h)
        for (int n = 0; n < N; ++n) colsum_part[n][warp][lane + 32 * h] = acc[h][n];
    __syncthreads();
    const int c = tile + threadIdx.x;
    if (threadIdx.x < COLSUM_TILE && c < cols) {
        for (int n = 0; n < N; ++n) {
            float s = 0.0f;
            for (int w = 0; w < COLSUM_WARPS; ++w) s += colsum_part[n][w][threadIdx.x];
            partials[((long long)n * gridDim.y + blockIdx.y) * cols + c] = s;
        }
    }
}

// Philox4x32-10 (Salmon et al. 2011), the counter-based generator shared with the CPU twin
// (src/backend/cpu/philox.rs). Element i of a stream uses block i/4, lane i%4.
struct u32x4 { unsigned int x, y, z, w; };

__device__ __forceinline__ u32x4 philox4x32_10(u32x4 c, unsigned int k0, unsigned int k1) {
    for (int r = 0; r < 10; ++r) {
        if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        unsigned int hi0 = __umulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        unsigned int hi1 = __umulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        u32x4 n;
        n.x = hi1 ^ c.y ^ k0; n.y = lo1; n.z = hi0 ^ c.w ^ k1; n.w = lo0;
        c = n;
    }
    return c;
}

// Uniform in [0, 1) with 24 random bits, for element `i` of stream (seed, step, stream_id).
__device__ __forceinline__ float philox_uniform(unsigned long long seed, unsigned int step,
                                                unsigned int stream_id, unsigned long long i) {
    unsigned long long blk = i >> 2;
    u32x4 c; c.x = (unsigned int)blk; c.y = (unsigned int)(blk >> 32); c.z = step; c.w = stream_id;
    u32x4 r = philox4x32_10(c, (unsigned int)seed, (unsigned int)(seed >> 32));
    unsigned int lane = (unsigned int)(i & 3);
    unsigned int v = lane == 0 ? r.x : lane == 1 ? r.y : lane == 2 ? r.z : r.w;
    return (float)(v >> 8) * (1.0f / 16777216.0f);
}
