// Batched matrix product C[b] = op(A[b]) op(B[b]) (+ bias) (+ C[b]), shared-memory tiled:
// a 128×128 block of C per 256 threads, each thread an 8×8 register tile, K in steps of 8.
// Thread (tx, ty) owns rows ty + 16i and columns tx + 16j, so shared-memory reads of B are
// conflict-free and reads of A are broadcasts. Storage f32 or bf16, accumulation in fp32.
// CPU twin: src/backend/cpu/matmul.rs.

#define MM_BM 128
#define MM_BN 128
#define MM_BK 8
#define MM_THREADS 256

template <typename T, bool TA, bool TB>
__device__ void matmul_tiled(T* __restrict__ C, const T* __restrict__ A, const T* __restrict__ B,
                             const T* __restrict__ bias, int M, int N, int K, long long strideA,
                             long long strideB, int accumulate) {
    __shared__ float As[MM_BK][MM_BM + 4];
    __shared__ float Bs[MM_BK][MM_BN + 4];
    const long long batch = blockIdx.z;
    A += batch * strideA;
    B += batch * strideB;
    C += batch * (long long)M * N;
    const int m0 = blockIdx.y * MM_BM, n0 = blockIdx.x * MM_BN;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += MM_BK) {
        // A tile (BM×BK): consecutive threads walk the contiguous axis of A in memory.
#pragma unroll
        for (int r = 0; r < (MM_BM * MM_BK) / MM_THREADS; ++r) {
            int e = tid + r * MM_THREADS, i, l;
            if (TA) { l = e / MM_BM; i = e % MM_BM; } else { i = e / MM_BK; l = e % MM_BK; }
            int gi = m0 + i, gl = k0 + l;
            float v = 0.0f;
            if (gi < M && gl < K) v = ld(A, TA ? (long long)gl * M + gi : (long long)gi * K + gl);
            As[l][i] = v;
        }
        // B tile (BK×BN)
#pragma unroll
        for (int r = 0; r < (MM_BN * MM_BK) / MM_THREADS; ++r) {
            int e = tid + r * MM_THREADS, j, l;
            if (TB) { j = e / MM_BK; l = e % MM_BK; } else { l = e / MM_BN; j = e % MM_BN; }
            int gj = n0 + j, gl = k0 + l;
            float v = 0.0f;
            if (gj < N && gl < K) v = ld(B, TB ? (long long)gj * K + gl : (long long)gl * N + gj);
            Bs[l][j] = v;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < MM_BK; ++kk) {
            float a[8], b[8];
#pragma unroll
            for (int i = 0; i < 8; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 8; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        int row = m0 + ty + 16 * i;
        if (row >= M) continue;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            int col = n0 + tx + 16 * j;
            if (col >= N) continue;
            float v = acc[i][j];
            if (bias) v += ld(bias, col);
            long long idx = (long long)row * N + col;
            if (accumulate) v += ld(C, idx);
            st(C, idx, v);
        }
    }
}

#define MATMUL_KERNEL(NAME, T, TA, TB)                                                            \
    extern "C" __global__ void __launch_bounds__(MM_THREADS)                                      \
        NAME(T* c, const T* a, const T* b, const T* bias, int m, int n, int k, long long a_stride, \
             long long b_stride, int accumulate) {                                                \
        matmul_tiled<T, TA, TB>(c, a, b, bias, m, n, k, a_stride, b_stride, accumulate);          \
    }

MATMUL_KERNEL(matmul_nn_f32, float, false, false)
MATMUL_KERNEL(matmul_nt_f32, float, false, true)
MATMUL_KERNEL(matmul_tn_f32, float, true, false)
MATMUL_KERNEL(matmul_tt_f32, float, true, true)
MATMUL_KERNEL(matmul_nn_bf16, bf16_t, false, false)
MATMUL_KERNEL(matmul_nt_bf16, bf16_t, false, true)
MATMUL_KERNEL(matmul_tn_bf16, bf16_t, true, false)
MATMUL_KERNEL(matmul_tt_bf16, bf16_t, true, true)

// out[c] (+)= sum over rows of x[r, c] (bias gradients). One thread per column walks the rows
// in order (coalesced across the warp, deterministic); fp32 accumulation.
template <typename T>
__device__ void sum_rows_impl(T* out, const T* x, int rows, int cols, int accumulate) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; ++r) s += ld(x, (long long)r * cols + c);
    if (accumulate) s += ld(out, c);
    st(out, c, s);
}
extern "C" __global__ void sum_rows_f32(float* out, const float* x, int rows, int cols,
                                        int accumulate) {
    sum_rows_impl(out, x, rows, cols, accumulate);
}
extern "C" __global__ void sum_rows_bf16(bf16_t* out, const bf16_t* x, int rows, int cols,
                                         int accumulate) {
    sum_rows_impl(out, x, rows, cols, accumulate);
}
