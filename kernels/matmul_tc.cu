// Tensor-core batched matrix product (matmul variant 2): C[b] = op(A[b]) op(B[b]) (+ bias)
// (+ C[b]), A and B bf16, fp32 accumulation in mma.sync.m16n8k16, C f32 or bf16. The same
// arguments and layouts as matmul.cu's kernels (row-major, `ta`/`tb` transposes, batch strides
// of A and B, C packed), plus an epilogue `epi` with a second array `aux` shaped like C:
//   TC_EPI_NONE   C = x
//   TC_EPI_GELU   C = h = x rounded to C's type, aux = gelu(h): an MLP's fc1 keeping the
//                 pre-activation its backward pass needs (one pass instead of a GELU kernel
//                 reading h back)
//   TC_EPI_DGELU  C = (x rounded to C's type) · gelu'(aux), aux = h: fc2's input gradient
//                 times the GELU derivative (instead of writing dA and reading it back)
// where x = the product (+ bias). The rounding makes both match the unfused ops bit for bit
// in what they store between them. `accumulate` is for TC_EPI_NONE only.
//
// Block tile 128×128×32, 256 threads = 8 warps as 2 (M) × 4 (N), each warp 64×32 of C: 4×4
// m16n8 accumulators (64 f32 registers per thread). Tiles travel global -> shared with 16-byte
// cp.async (L2 only) in a 3-stage pipeline (two tiles in flight while one is multiplied), then
// shared -> registers with ldmatrix.x4 (.trans where the tile is stored k-major). Shared tiles
// are XOR-swizzled at 16-byte granularity so that the 8 rows each ldmatrix phase reads fall in 8
// different bank groups (checked by the emulator's conflict counter):
//   a [128][32] tile (k contiguous, 64-byte rows):   chunk c of row r at c ^ ((r >> 1) & 3);
//   a [32][128] tile (m or n contiguous, 256-byte rows): chunk c of row r at c ^ (r & 7).
// Requirements (the Rust wrapper checks them and otherwise uses variant 1): the contiguous
// dimension of each operand (K for A, or M when transposed; N for B, or K when transposed) a
// multiple of 8, base addresses and batch strides 16-byte aligned. M, N and K need not be
// multiples of the tile: chunks past an edge are zero-filled by cp.async (src-size 0) and the
// epilogue stores only inside C. 48 KiB of dynamic shared memory (3 × 16 KiB): no opt-in needed.
// CPU twin: src/backend/cpu/matmul.rs (plus GELU and its derivative from elementwise.rs for the
// epilogues).
#include "tc.cuh"

#define TC_BM 128
#define TC_BN 128
#define TC_BK 32
#define TC_STAGES 3
#define TC_THREADS 256
#define TC_TILE_ELEMS (TC_BM * TC_BK)                // bf16 elements of one A (or B) tile
#define TC_SMEM_BYTES (TC_STAGES * 2 * TC_TILE_ELEMS * 2)  // 49152

// Element offsets inside a swizzled tile; `col` a multiple of 8 for whole 16-byte chunks.
__device__ __forceinline__ int tc_sw32(int row, int col) {  // [rows][32]
    return row * 32 + ((((col >> 3) ^ (row >> 1)) & 3) << 3) + (col & 7);
}
__device__ __forceinline__ int tc_sw128(int row, int col) {  // [rows][128]
    return row * 128 + ((((col >> 3) ^ row) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7);
}

// Copies the k-tile starting at k0 of an operand into a swizzled shared tile. `KMAJOR` false:
// the operand is stored [rows][k] (row length ld = k extent), tile [128][32]; true: stored
// [k][rows] (row length ld = rows extent), tile [32][128]. `rows` is M (for A) or N (for B).
template <bool KMAJOR>
__device__ __forceinline__ void tc_load_tile(bf16_t* tile, const bf16_t* src, int r0, int k0,
                                             int rows, int K, int tid) {
#pragma unroll
    for (int i = 0; i < TC_TILE_ELEMS / 8 / TC_THREADS; ++i) {
        const int e = tid + i * TC_THREADS;
        int r, k, off;
        if (KMAJOR) {
            const int kr = e >> 4, c = (e & 15) << 3;
            k = k0 + kr;
            r = r0 + c;
            off = tc_sw128(kr, c);
        } else {
            const int rr = e >> 2, c = (e & 3) << 3;
            r = r0 + rr;
            k = k0 + c;
            off = tc_sw32(rr, c);
        }
        const bool full = r < rows && k < K;
        const bf16_t* p = full ? (KMAJOR ? src + (long long)k * rows + r : src + (long long)r * K + k) : src;
        cp_async_16(tile + off, p, full);
    }
}

#define TC_EPI_NONE 0
#define TC_EPI_GELU 1
#define TC_EPI_DGELU 2

// GELU (erf form) and its derivative, as kernels/elementwise.cu computes them.
__device__ __forceinline__ float tc_gelu(float v) {
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}
__device__ __forceinline__ float tc_gelu_grad(float v) {
    const float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
    const float pdf = expf(-0.5f * v * v) * 0.39894228040143268f;
    return cdf + v * pdf;
}
// v as stored in (and read back from) an array of T.
__device__ __forceinline__ float tc_round(const float*, float v) { return v; }
__device__ __forceinline__ float tc_round(const bf16_t*, float v) {
    return bf16_to_f32(f32_to_bf16(v));
}

template <typename TC, bool TA, bool TB>
__device__ void matmul_tc_impl(TC* __restrict__ C, const bf16_t* __restrict__ A,
                               const bf16_t* __restrict__ B, const TC* __restrict__ bias,
                               TC* __restrict__ aux, int M, int N, int K, long long strideA,
                               long long strideB, int accumulate, int epi) {
    TC_DYNAMIC_SMEM(tc_smem);
    bf16_t* smem = (bf16_t*)tc_smem;
    const long long batch = blockIdx.z;
    A += batch * strideA;
    B += batch * strideB;
    C += batch * (long long)M * N;
    if (aux) aux += batch * (long long)M * N;
    const int m0 = blockIdx.y * TC_BM, n0 = blockIdx.x * TC_BN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    // ldmatrix.x4: lane gives row (lane & 7) of matrix (lane >> 3).
    const int lm = lane >> 3, lr = lane & 7;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;

    const int ktiles = (K + TC_BK - 1) / TC_BK;
    auto load = [&](int stage, int kt) {
        bf16_t* as = smem + stage * 2 * TC_TILE_ELEMS;
        bf16_t* bs = as + TC_TILE_ELEMS;
        tc_load_tile<TA>(as, A, m0, kt * TC_BK, M, K, tid);
        tc_load_tile<!TB>(bs, B, n0, kt * TC_BK, N, K, tid);
    };
#pragma unroll
    for (int s = 0; s < TC_STAGES - 1; ++s) {
        if (s < ktiles) load(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<TC_STAGES - 2>();  // this thread's copies of tile kt have landed
        __syncthreads();                 // everyone's have; stage (kt - 1) % 3 is free again
        if (kt + TC_STAGES - 1 < ktiles) load((kt + TC_STAGES - 1) % TC_STAGES, kt + TC_STAGES - 1);
        cp_async_commit();
        const bf16_t* as = smem + (kt % TC_STAGES) * 2 * TC_TILE_ELEMS;
        const bf16_t* bs = as + TC_TILE_ELEMS;
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            unsigned a[4][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                const int mb = wm + mi * 16;
                // matrix lm: rows m + 8 (lm & 1), columns k + 8 (lm >> 1) of the 16×16 A block
                if (TA) ldmatrix_x4_trans(a[mi], as + tc_sw128(kk + (lm >> 1) * 8 + lr, mb + (lm & 1) * 8));
                else ldmatrix_x4(a[mi], as + tc_sw32(mb + (lm & 1) * 8 + lr, kk + (lm >> 1) * 8));
            }
#pragma unroll
            for (int nj = 0; nj < 2; ++nj) {
                const int nb = wn + nj * 16;
                // matrix lm: n + 8 (lm >> 1), k + 8 (lm & 1): b0, b1 of n8 tile 2nj, then of 2nj+1
                unsigned t[4];
                if (TB) ldmatrix_x4(t, bs + tc_sw32(nb + (lm >> 1) * 8 + lr, kk + (lm & 1) * 8));
                else ldmatrix_x4_trans(t, bs + tc_sw128(kk + (lm & 1) * 8 + lr, nb + (lm >> 1) * 8));
                b[2 * nj][0] = t[0];
                b[2 * nj][1] = t[1];
                b[2 * nj + 1][0] = t[2];
                b[2 * nj + 1][1] = t[3];
            }
#pragma unroll
            for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_bf16_16816(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
        }
    }
    cp_async_wait<0>();

    // Epilogue: c[v] of accumulator (mi, ni) is row g + 8 (v >> 1), column 2t + (v & 1). This
    // pass stores x (+ bias) (+ C); the GELU epilogues then finish in a second pass below, so
    // that erff/expf are not unrolled into each of the 64 stores (that made one kernel 10 times
    // larger and 10 times slower to compile).
    const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int v = 0; v < 4; ++v) {
                const int row = m0 + wm + mi * 16 + g + 8 * (v >> 1);
                const int col = n0 + wn + ni * 8 + 2 * t4 + (v & 1);
                if (row >= M || col >= N) continue;
                float x = acc[mi][ni][v];
                if (bias) x += ld(bias, col);
                const long long idx = (long long)row * N + col;
                if (accumulate) x += ld(C, idx);
                st(C, idx, x);
            }
    if (epi == TC_EPI_NONE) return;  // uniform over the block
    // Second pass over the block's tile, row by row (coalesced): h = x as stored in C (rounded
    // to C's type), then aux = gelu(h), or C = h · gelu'(aux). The barrier makes the block's
    // stores to C visible to all its threads.
    __syncthreads();
#pragma unroll 1
    for (int e = tid; e < TC_BM * TC_BN; e += TC_THREADS) {
        const int row = m0 + e / TC_BN, col = n0 + e % TC_BN;
        if (row >= M || col >= N) continue;
        const long long idx = (long long)row * N + col;
        const float h = ld(C, idx);
        if (epi == TC_EPI_GELU) st(aux, idx, tc_gelu(h));
        else st(C, idx, h * tc_gelu_grad(ld(aux, idx)));
    }
}

#define MATMUL_TC_KERNEL(NAME, TC, TA, TB)                                                         \
    extern "C" __global__ void __launch_bounds__(TC_THREADS)                                       \
        NAME(TC* c, const bf16_t* a, const bf16_t* b, const TC* bias, TC* aux, int m, int n,       \
             int k, long long a_stride, long long b_stride, int accumulate, int epi) {             \
        matmul_tc_impl<TC, TA, TB>(c, a, b, bias, aux, m, n, k, a_stride, b_stride, accumulate,   \
                                   epi);                                                           \
    }

// The suffix names C's (and the bias's) type; A and B are always bf16.
MATMUL_TC_KERNEL(matmul_tc_nn_f32, float, false, false)
MATMUL_TC_KERNEL(matmul_tc_nt_f32, float, false, true)
MATMUL_TC_KERNEL(matmul_tc_tn_f32, float, true, false)
MATMUL_TC_KERNEL(matmul_tc_tt_f32, float, true, true)
MATMUL_TC_KERNEL(matmul_tc_nn_bf16, bf16_t, false, false)
MATMUL_TC_KERNEL(matmul_tc_nt_bf16, bf16_t, false, true)
MATMUL_TC_KERNEL(matmul_tc_tn_bf16, bf16_t, true, false)
MATMUL_TC_KERNEL(matmul_tc_tt_bf16, bf16_t, true, true)
