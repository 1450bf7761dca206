// Tensor-core batched matrix product for f32 storage (matmul variant 3): C[b] = op(A[b])
// op(B[b]) (+ bias) (+ C[b]) with A, B and C f32 in memory and the products on TF32 tensor cores
// (mma.sync.m16n8k8, fp32 accumulation): each operand element is rounded to tf32 (10 mantissa
// bits, cvt.rna) as it leaves shared memory, as PyTorch's `allow_tf32` does. The same arguments
// and layouts as matmul.cu's kernels (row-major, `ta`/`tb` transposes, batch strides of A and B,
// C packed).
//
// Block tile 128×128×16, 256 threads = 8 warps as 2 (M) × 4 (N), each warp 64×32 of C: 4×4
// m16n8 accumulators, two k8 steps per tile. Tiles travel global -> shared with 16-byte cp.async
// (four f32) in a 3-stage pipeline. Shared tiles, XOR-swizzled at 16-byte granularity:
//   a [128][16] tile (k contiguous, 64-byte rows): chunk c of row r at c ^ ((r >> 1) & 3). Read
//     with ldmatrix.x4 (b16 pairs: lane l receives row l / 4, f32 column l % 4 of each 8×4 f32
//     matrix, which is the tf32 fragment layout), conflict-free as in matmul_tc.cu.
//   a [16][128] tile (m or n contiguous, 512-byte rows): chunk c of row k at c ^ ((k & 3) << 1).
//     ldmatrix.trans moves 16-bit elements and cannot transpose f32, so fragments come from
//     32-bit shared loads; the swizzle puts the four k rows a warp's load touches (k = t and
//     t + 4) in different bank groups: conflict-free (checked by the emulator).
// Requirements (the Rust wrapper checks them and otherwise uses variant 1): the contiguous
// dimension of each operand a multiple of 4, base addresses and batch strides 16-byte aligned.
// M, N and K need not be multiples of the tile (edge chunks are zero-filled by cp.async).
// 48 KiB of dynamic shared memory (3 × 2 × 8 KiB).
// CPU twin: src/backend/cpu/matmul.rs (in f32; the tolerance covers tf32's rounding).
#include "tc.cuh"

#define TF_BM 128
#define TF_BN 128
#define TF_BK 16
#define TF_STAGES 3
#define TF_THREADS 256
#define TF_TILE_ELEMS (TF_BM * TF_BK)  // f32 elements of one A (or B) tile

// Element offsets inside a swizzled tile; `col` a multiple of 4 for whole 16-byte chunks.
__device__ __forceinline__ int tf_sw16(int row, int col) {  // [rows][16]
    return row * 16 + ((((col >> 2) ^ (row >> 1)) & 3) << 2) + (col & 3);
}
__device__ __forceinline__ int tf_sw128(int k, int col) {  // [16][128]
    return k * 128 + (((col >> 2) ^ ((k & 3) << 1)) << 2) + (col & 3);
}

// Copies the k-tile starting at k0 of an operand into a swizzled shared tile. `KMAJOR` false:
// the operand is stored [rows][k] (row length K), tile [128][16]; true: stored [k][rows] (row
// length `rows`), tile [16][128]. `rows` is M (for A) or N (for B).
template <bool KMAJOR>
__device__ __forceinline__ void tf_load_tile(float* tile, const float* src, int r0, int k0,
                                             int rows, int K, int tid) {
#pragma unroll
    for (int i = 0; i < TF_TILE_ELEMS / 4 / TF_THREADS; ++i) {
        const int e = tid + i * TF_THREADS;
        int r, k, off;
        if (KMAJOR) {
            const int kr = e >> 5, c = (e & 31) << 2;
            k = k0 + kr;
            r = r0 + c;
            off = tf_sw128(kr, c);
        } else {
            const int rr = e >> 2, c = (e & 3) << 2;
            r = r0 + rr;
            k = k0 + c;
            off = tf_sw16(rr, c);
        }
        const bool full = r < rows && k < K;
        const float* p = full ? (KMAJOR ? src + (long long)k * rows + r : src + (long long)r * K + k) : src;
        cp_async_16(tile + off, p, full);
    }
}

__device__ __forceinline__ unsigned tf_round(unsigned bits) { return f32_to_tf32(__uint_as_float(bits)); }

template <bool TA, bool TB>
__device__ void matmul_tf32_impl(float* __restrict__ C, const float* __restrict__ A,
                                 const float* __restrict__ B, const float* __restrict__ bias,
                                 int M, int N, int K, long long strideA, long long strideB,
                                 int accumulate) {
    TC_DYNAMIC_SMEM(tf_smem);
    float* smem = (float*)tf_smem;
    const long long batch = blockIdx.z;
    A += batch * strideA;
    B += batch * strideB;
    C += batch * (long long)M * N;
    const int m0 = blockIdx.y * TF_BM, n0 = blockIdx.x * TF_BN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int lm = lane >> 3, lr = lane & 7;  // ldmatrix.x4: lane gives row lr of matrix lm
    const int g = lane >> 2, t4 = lane & 3;   // fragment coordinates

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;

    const int ktiles = (K + TF_BK - 1) / TF_BK;
    auto load = [&](int stage, int kt) {
        float* as = smem + stage * 2 * TF_TILE_ELEMS;
        float* bs = as + TF_TILE_ELEMS;
        if (TA) tf_load_tile<true>(as, A, m0, kt * TF_BK, M, K, tid);
        else tf_load_tile<false>(as, A, m0, kt * TF_BK, M, K, tid);
        if (TB) tf_load_tile<false>(bs, B, n0, kt * TF_BK, N, K, tid);
        else tf_load_tile<true>(bs, B, n0, kt * TF_BK, N, K, tid);
    };
#pragma unroll
    for (int s = 0; s < TF_STAGES - 1; ++s) {
        if (s < ktiles) load(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<TF_STAGES - 2>();  // this thread's copies of tile kt have landed
        __syncthreads();                 // everyone's have; stage (kt - 1) % 3 is free again
        if (kt + TF_STAGES - 1 < ktiles) load((kt + TF_STAGES - 1) % TF_STAGES, kt + TF_STAGES - 1);
        cp_async_commit();
        const float* as = smem + (kt % TF_STAGES) * 2 * TF_TILE_ELEMS;
        const float* bs = as + TF_TILE_ELEMS;
#pragma unroll
        for (int kk = 0; kk < TF_BK; kk += 8) {
            unsigned a[4][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                const int mb = wm + mi * 16;
                if (TA) {
                    // a[r]: row g + 8 (r & 1), column t + 4 (r >> 1) of the 16×8 A block
#pragma unroll
                    for (int r = 0; r < 4; ++r)
                        a[mi][r] = __float_as_uint(as[tf_sw128(kk + t4 + 4 * (r >> 1), mb + g + 8 * (r & 1))]);
                } else {
                    // matrix lm: rows m + 8 (lm & 1), columns k + 4 (lm >> 1)
                    ldmatrix_x4(a[mi], as + tf_sw16(mb + (lm & 1) * 8 + lr, kk + (lm >> 1) * 4));
                }
#pragma unroll
                for (int r = 0; r < 4; ++r) a[mi][r] = tf_round(a[mi][r]);
            }
#pragma unroll
            for (int nj = 0; nj < 2; ++nj) {
                const int nb = wn + nj * 16;
                if (TB) {
                    // matrix lm: n + 8 (lm >> 1), k + 4 (lm & 1): b0, b1 of n8 tile 2nj, then 2nj+1
                    unsigned t[4];
                    ldmatrix_x4(t, bs + tf_sw16(nb + (lm >> 1) * 8 + lr, kk + (lm & 1) * 4));
                    b[2 * nj][0] = t[0];
                    b[2 * nj][1] = t[1];
                    b[2 * nj + 1][0] = t[2];
                    b[2 * nj + 1][1] = t[3];
                } else {
                    // b[r]: row (k) t + 4 r, column (n) g of each n8 tile
#pragma unroll
                    for (int h = 0; h < 2; ++h)
#pragma unroll
                        for (int r = 0; r < 2; ++r)
                            b[2 * nj + h][r] = __float_as_uint(bs[tf_sw128(kk + t4 + 4 * r, nb + 8 * h + g)]);
                }
#pragma unroll
                for (int h = 0; h < 2; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r) b[2 * nj + h][r] = tf_round(b[2 * nj + h][r]);
            }
#pragma unroll
            for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_tf32_1688(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
        }
    }
    cp_async_wait<0>();

    // Epilogue: c[v] of accumulator (mi, ni) is row g + 8 (v >> 1), column 2t + (v & 1).
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
                if (bias) x += bias[col];
                const long long idx = (long long)row * N + col;
                if (accumulate) x += C[idx];
                C[idx] = x;
            }
}

#define MATMUL_TF32_KERNEL(NAME, TA, TB)                                                           \
    extern "C" __global__ void __launch_bounds__(TF_THREADS)                                       \
        NAME(float* c, const float* a, const float* b, const float* bias, int m, int n, int k,     \
             long long a_stride, long long b_stride, int accumulate) {                             \
        matmul_tf32_impl<TA, TB>(c, a, b, bias, m, n, k, a_stride, b_stride, accumulate);          \
    }

MATMUL_TF32_KERNEL(matmul_tf32_nn, false, false)
MATMUL_TF32_KERNEL(matmul_tf32_nt, false, true)
MATMUL_TF32_KERNEL(matmul_tf32_tn, true, false)
MATMUL_TF32_KERNEL(matmul_tf32_tt, true, true)
