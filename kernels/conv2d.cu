// 2-D convolution, NCHW, K×K kernel (K = 1 or 3), stride 1, padding K/2, groups 1.
// CPU twin: src/backend/cpu/conv2d.rs.
//
// Forward (and the input gradient): a direct shared-memory tiled kernel. One block of 256
// threads computes a 16×16 tile of output pixels for CONV_CO output channels of one image;
// each thread owns one pixel and CONV_CO accumulators. For every input channel the block
// stages the (16+K−1)² input patch (zero outside the image) and the CONV_CO×K×K weights in
// shared memory. The input gradient is the same correlation of dy with the weights transposed
// ([cout, cin] swapped) and flipped in space (FLIP), which for stride 1 and padding K/2 is exact.
//
// Weight and bias gradients: one block per weight slice (co, ci) (per co for the bias); each
// thread accumulates K×K partial sums over a strided share of (n, pixel), then a fixed-order
// block reduction (no atomics: deterministic), added into dw/db.

#define CONV_TILE 16
#define CONV_CO 8
#define CONV_THREADS 256

template <typename T, int K, bool FLIP>
__device__ void conv2d_direct(T* __restrict__ y, const T* __restrict__ x,
                              const T* __restrict__ w, const T* __restrict__ bias, int has_bias,
                              int N, int Cin, int Cout, int H, int W) {
    // Here Cin/Cout are this launch's input/output channels. Without FLIP, w is [Cout][Cin][K][K];
    // with FLIP, w is the forward weight [Cin][Cout][K][K] read transposed and flipped.
    const int P = K / 2;
    const int TS = CONV_TILE + K - 1;
    __shared__ float xs[CONV_TILE + 2][CONV_TILE + 2];
    __shared__ float ws[CONV_CO][9];
    const int tilesW = (W + CONV_TILE - 1) / CONV_TILE;
    const int ty0 = (blockIdx.x / tilesW) * CONV_TILE, tx0 = (blockIdx.x % tilesW) * CONV_TILE;
    const int co0 = blockIdx.y * CONV_CO;
    const long long n = blockIdx.z;
    const int tx = threadIdx.x % CONV_TILE, ty = threadIdx.x / CONV_TILE;
    const long long HW = (long long)H * W;
    float acc[CONV_CO];
#pragma unroll
    for (int o = 0; o < CONV_CO; ++o) acc[o] = 0.0f;

    for (int ci = 0; ci < Cin; ++ci) {
        const T* xp = x + (n * Cin + ci) * HW;
        for (int e = threadIdx.x; e < TS * TS; e += CONV_THREADS) {
            int r = e / TS, c = e % TS;
            int gy = ty0 + r - P, gx = tx0 + c - P;
            xs[r][c] = (gy >= 0 && gy < H && gx >= 0 && gx < W) ? ld(xp, (long long)gy * W + gx) : 0.0f;
        }
        if (threadIdx.x < CONV_CO * K * K) {
            int o = threadIdx.x / (K * K), t = threadIdx.x % (K * K);
            int co = co0 + o;
            float v = 0.0f;
            if (co < Cout) {
                if (FLIP) v = ld(w, ((long long)ci * Cout + co) * (K * K) + (K * K - 1 - t));
                else      v = ld(w, ((long long)co * Cin + ci) * (K * K) + t);
            }
            ws[o][t] = v;
        }
        __syncthreads();
#pragma unroll
        for (int ky = 0; ky < K; ++ky)
#pragma unroll
            for (int kx = 0; kx < K; ++kx) {
                float xv = xs[ty + ky][tx + kx];
#pragma unroll
                for (int o = 0; o < CONV_CO; ++o) acc[o] += xv * ws[o][ky * K + kx];
            }
        __syncthreads();
    }
    const int oy = ty0 + ty, ox = tx0 + tx;
    if (oy < H && ox < W) {
#pragma unroll
        for (int o = 0; o < CONV_CO; ++o) {
            int co = co0 + o;
            if (co < Cout) {
                float b = has_bias ? ld(bias, co) : 0.0f;
                st(y, (n * Cout + co) * HW + (long long)oy * W + ox, acc[o] + b);
            }
        }
    }
}

template <typename T, int K>
__device__ void conv2d_backward_weight_impl(T* __restrict__ dw, const T* __restrict__ dy,
                                            const T* __restrict__ x, int N, int Cin, int Cout,
                                            int H, int W) {
    __shared__ float scratch[32];
    const int P = K / 2;
    const int co = blockIdx.x / Cin, ci = blockIdx.x % Cin;
    const long long HW = (long long)H * W;
    float acc[K * K];
#pragma unroll
    for (int t = 0; t < K * K; ++t) acc[t] = 0.0f;
    for (long long e = threadIdx.x; e < (long long)N * HW; e += blockDim.x) {
        long long n = e / HW, p = e % HW;
        int oy = (int)(p / W), ox = (int)(p % W);
        float g = ld(dy, (n * Cout + co) * HW + p);
        const T* xp = x + (n * Cin + ci) * HW;
#pragma unroll
        for (int ky = 0; ky < K; ++ky)
#pragma unroll
            for (int kx = 0; kx < K; ++kx) {
                int iy = oy + ky - P, ix = ox + kx - P;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                    acc[ky * K + kx] += g * ld(xp, (long long)iy * W + ix);
            }
    }
#pragma unroll
    for (int t = 0; t < K * K; ++t) {
        float s = block_sum(acc[t], scratch);
        if (threadIdx.x == 0) {
            long long i = ((long long)co * Cin + ci) * (K * K) + t;
            st(dw, i, ld(dw, i) + s);
        }
    }
}

template <typename T>
__device__ void conv2d_backward_bias_impl(T* __restrict__ db, const T* __restrict__ dy, int N,
                                          int Cout, long long HW) {
    __shared__ float scratch[32];
    const int co = blockIdx.x;
    float s = 0.0f;
    for (long long e = threadIdx.x; e < (long long)N * HW; e += blockDim.x) {
        long long n = e / HW, p = e % HW;
        s += ld(dy, (n * Cout + co) * HW + p);
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) st(db, co, ld(db, co) + s);
}

#define INSTANTIATE_K(SUF, T, K)                                                                \
    extern "C" __global__ void conv2d_forward_k##K##_##SUF(T* y, const T* x, const T* w,        \
                                                          const T* bias, int has_bias, int n,   \
                                                          int cin, int cout, int height,        \
                                                          int width) {                          \
        conv2d_direct<T, K, false>(y, x, w, bias, has_bias, n, cin, cout, height, width);       \
    }                                                                                           \
    extern "C" __global__ void conv2d_backward_input_k##K##_##SUF(                              \
        T* dx, const T* dy, const T* w, int n, int cin, int cout, int height, int width) {      \
        /* dx has cin channels and is computed from dy's cout channels. */                      \
        conv2d_direct<T, K, true>(dx, dy, w, (const T*)0, 0, n, cout, cin, height, width);      \
    }                                                                                           \
    extern "C" __global__ void conv2d_backward_weight_k##K##_##SUF(                             \
        T* dw, const T* dy, const T* x, int n, int cin, int cout, int height, int width) {      \
        conv2d_backward_weight_impl<T, K>(dw, dy, x, n, cin, cout, height, width);              \
    }

#define INSTANTIATE(SUF, T)                                                                     \
    INSTANTIATE_K(SUF, T, 1)                                                                    \
    INSTANTIATE_K(SUF, T, 3)                                                                    \
    extern "C" __global__ void conv2d_backward_bias_##SUF(T* db, const T* dy, int n, int cout,  \
                                                          long long hw) {                       \
        conv2d_backward_bias_impl(db, dy, n, cout, hw);                                         \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
