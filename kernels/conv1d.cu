// 1-D convolution on NCW tensors (grouped, strided, zero-padded) and its companions for the
// wav2vec2 encoder: weight norm over all dims but one, the [B, M, N] -> [B, N, M] transpose, and a
// slice along one axis. Every reduction has a fixed order (trees per block, in-order sums of
// split partials): no atomics.
// CPU twin: src/backend/cpu/conv1d.rs.

#define CONV_TILE 128  // output positions per block in the forward pass (= blockDim.x)

// Forward. Block (tile of CONV_TILE outputs, co, b). Input channels of co's group are taken
// `cc` at a time: their input window [cc][win] and weights [cc][K] are staged in shared memory,
// then each thread accumulates its output position. Dynamic shared memory: cc*(win+K) floats.
template <typename T>
__device__ void conv1d_forward_impl(T* y, const T* x, const T* w, const T* bias, int Cin,
                                    int Cout, int Lin, int Lout, int K, int stride, int pad,
                                    int groups, int cc) {
    extern __shared__ float smem[];
    const int t0 = blockIdx.x * CONV_TILE;
    const int co = blockIdx.y, b = blockIdx.z;
    const int cig = Cin / groups, cog = Cout / groups, g = co / cog;
    const int win = (CONV_TILE - 1) * stride + K;
    float* xs = smem;            // [cc][win]
    float* ws = smem + cc * win; // [cc][K]
    const int t = t0 + threadIdx.x;
    const long long in0 = (long long)t0 * stride - pad;
    float acc = bias ? ld(bias, co) : 0.0f;
    for (int c0 = 0; c0 < cig; c0 += cc) {
        const int nc = min(cc, cig - c0);
        __syncthreads();
        const long long xrow = ((long long)b * Cin + g * cig + c0) * Lin;
        for (int e = threadIdx.x; e < nc * win; e += blockDim.x) {
            int c = e / win, p = e % win;
            long long pos = in0 + p;
            xs[e] = (pos >= 0 && pos < Lin) ? ld(x, xrow + (long long)c * Lin + pos) : 0.0f;
        }
        for (int e = threadIdx.x; e < nc * K; e += blockDim.x)
            ws[e] = ld(w, ((long long)co * cig + c0) * K + e);
        __syncthreads();
        if (t < Lout) {
            for (int c = 0; c < nc; ++c) {
                const float* xr = xs + c * win + threadIdx.x * stride;
                const float* wr = ws + c * K;
                for (int j = 0; j < K; ++j) acc += wr[j] * xr[j];
            }
        }
    }
    if (t < Lout) st(y, ((long long)b * Cout + co) * Lout + t, acc);
}

// Input gradient (written). Block (tile of blockDim.x input positions, ci, b); the weights
// w[co, ci, :] of ci's group are staged in shared memory `cc` output channels at a time
// (cc*K floats); each thread gathers the outputs that read its position.
template <typename T>
__device__ void conv1d_backward_input_impl(T* dx, const T* dy, const T* w, int Cin, int Cout,
                                           int Lin, int Lout, int K, int stride, int pad,
                                           int groups, int cc) {
    extern __shared__ float smem[];
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    const int ci = blockIdx.y, b = blockIdx.z;
    const int cig = Cin / groups, cog = Cout / groups, g = ci / cig, cl = ci % cig;
    float acc = 0.0f;
    for (int c0 = 0; c0 < cog; c0 += cc) {
        const int nc = min(cc, cog - c0);
        __syncthreads();
        for (int e = threadIdx.x; e < nc * K; e += blockDim.x) {
            int c = e / K, j = e % K;
            smem[e] = ld(w, ((long long)(g * cog + c0 + c) * cig + cl) * K + j);
        }
        __syncthreads();
        if (p < Lin) {
            for (int c = 0; c < nc; ++c) {
                const long long dyrow = ((long long)b * Cout + g * cog + c0 + c) * Lout;
                for (int j = 0; j < K; ++j) {
                    int num = p + pad - j;
                    if (num < 0 || num % stride != 0) continue;
                    int t = num / stride;
                    if (t < Lout) acc += smem[c * K + j] * ld(dy, dyrow + t);
                }
            }
        }
    }
    if (p < Lin) st(dx, ((long long)b * Cin + ci) * Lin + p, acc);
}

// Weight gradient, as a matrix product per group: dW[co, n] (n = cl·K + j, the weight row
// layout) = Σ_{b,t} dy[b, co, t] · x[b, g·cig + cl, t·stride − pad + j], reduced over
// R = B·Lout. Block (tile of WG_T columns n, tile of WG_T output channels of group g, split s):
// chunks of WG_T reduction steps of dy and of the gathered input (im2col on the fly) are
// staged in shared memory and each thread accumulates WG_T/8 outputs. Split s covers
// reduction steps [s·per, (s+1)·per) and writes fp32 partials part[s][co][n]; the reduce kernel
// adds the splits in order into dw. Fixed order everywhere: no atomics.
#define WG_T 32  // blockDim.x = 256 = WG_T · 8

template <typename T>
__device__ void conv1d_backward_weight_partial_impl(float* part, const T* dy, const T* x, int B,
                                                    int Cin, int Cout, int Lin, int Lout, int K,
                                                    int stride, int pad, int groups, int splits,
                                                    long long per) {
    __shared__ float dys[WG_T][WG_T + 1];  // [co][step]
    __shared__ float xs[WG_T][WG_T + 1];   // [n][step]
    const int cig = Cin / groups, cog = Cout / groups, N = cig * K;
    const int n0 = blockIdx.x * WG_T, co0 = blockIdx.y * WG_T;
    const int g = blockIdx.z / splits, sp = blockIdx.z % splits;
    const long long R = (long long)B * Lout;
    const long long r0 = (long long)sp * per, r1 = min(R, r0 + per);
    const int tx = threadIdx.x % WG_T, ty = threadIdx.x / WG_T;
    float acc[WG_T / 8];
    for (int i = 0; i < WG_T / 8; ++i) acc[i] = 0.0f;
    for (long long rc = r0; rc < r1; rc += WG_T) {
        __syncthreads();
        for (int e = threadIdx.x; e < WG_T * WG_T; e += blockDim.x) {
            const int row = e / WG_T, step = e % WG_T;
            const long long r = rc + step;
            const int b = (int)(r / Lout), t = (int)(r % Lout);
            const int col = co0 + row;  // dy tile: output channel
            float v = 0.0f;
            if (r < r1 && col < cog) v = ld(dy, ((long long)b * Cout + g * cog + col) * Lout + t);
            dys[row][step] = v;
            const int n = n0 + row;  // input tile: weight column
            float u = 0.0f;
            if (r < r1 && n < N) {
                const int cl = n / K, j = n % K;
                const long long pos = (long long)t * stride - pad + j;
                if (pos >= 0 && pos < Lin) u = ld(x, ((long long)b * Cin + g * cig + cl) * Lin + pos);
            }
            xs[row][step] = u;
        }
        __syncthreads();
        for (int step = 0; step < WG_T; ++step) {
            const float xv = xs[tx][step];
            for (int i = 0; i < WG_T / 8; ++i) acc[i] += dys[ty + 8 * i][step] * xv;
        }
    }
    const int n = n0 + tx;
    if (n < N)
        for (int i = 0; i < WG_T / 8; ++i) {
            const int col = co0 + ty + 8 * i;
            if (col < cog) part[((long long)sp * Cout + g * cog + col) * N + n] = acc[i];
        }
}

// dw[i] += Σ_s part[s][i] over the splits, in order (grid-stride over the n weights).
template <typename T>
__device__ void conv1d_backward_weight_reduce_impl(T* dw, const float* part, long long n,
                                                   int splits) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int k = 0; k < splits; ++k) s += part[(long long)k * n + i];
        st(dw, i, ld(dw, i) + s);
    }
}

// Bias gradient (accumulated): one block per output channel, fixed-tree sum over (b, t).
template <typename T>
__device__ void conv1d_backward_bias_impl(T* db, const T* dy, int B, int Cout, int Lout) {
    __shared__ float scratch[32];
    const int co = blockIdx.x;
    const long long n = (long long)B * Lout;
    float s = 0.0f;
    for (long long e = threadIdx.x; e < n; e += blockDim.x) {
        int b = (int)(e / Lout), t = (int)(e % Lout);
        s += ld(dy, ((long long)b * Cout + co) * Lout + t);
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) st(db, co, ld(db, co) + s);
}

// Weight norm, v viewed as [outer, kdim, inner]. norm[k] = ||v[:, k, :]||: one block per k.
template <typename T>
__device__ void weight_norm_norms_impl(float* norm, const T* v, int outer, int kdim, int inner) {
    __shared__ float scratch[32];
    const int k = blockIdx.x;
    const long long n = (long long)outer * inner;
    float s = 0.0f;
    for (long long e = threadIdx.x; e < n; e += blockDim.x) {
        long long o = e / inner, i = e % inner;
        float a = ld(v, (o * kdim + k) * inner + i);
        s += a * a;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) norm[k] = sqrtf(s);
}

// w = g[k] * v / norm[k], one thread per element (grid-stride).
template <typename T>
__device__ void weight_norm_forward_impl(T* w, const T* g, const T* v, const float* norm,
                                         long long n, int kdim, int inner) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        int k = (int)((e / inner) % kdim);
        st(w, e, ld(g, k) / norm[k] * ld(v, e));
    }
}

// s[k] = sum dw*v over the slice (kept for the dv pass); dg[k] += s[k] / norm[k]. One block per k.
template <typename T>
__device__ void weight_norm_backward_g_impl(T* dg, float* s_out, const T* dw, const T* v,
                                            const float* norm, int outer, int kdim, int inner) {
    __shared__ float scratch[32];
    const int k = blockIdx.x;
    const long long n = (long long)outer * inner;
    float s = 0.0f;
    for (long long e = threadIdx.x; e < n; e += blockDim.x) {
        long long o = e / inner, i = e % inner;
        long long idx = (o * kdim + k) * inner + i;
        s += ld(dw, idx) * ld(v, idx);
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
        s_out[k] = s;
        st(dg, k, ld(dg, k) + s / norm[k]);
    }
}

// dv += (g/norm) dw - (g s / norm^3) v, one thread per element (grid-stride).
template <typename T>
__device__ void weight_norm_backward_v_impl(T* dv, const T* dw, const T* g, const T* v,
                                            const float* norm, const float* s, long long n,
                                            int kdim, int inner) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        int k = (int)((e / inner) % kdim);
        float nk = norm[k], gk = ld(g, k);
        float a = gk / nk, c = gk * s[k] / (nk * nk * nk);
        st(dv, e, ld(dv, e) + a * ld(dw, e) - c * ld(v, e));
    }
}

// out[b, n, m] = x[b, m, n]. 32x32 tiles through shared memory (padded against bank
// conflicts); block (32, 8), grid (ceil(N/32), ceil(M/32), B).
template <typename T>
__device__ void transpose_last2_impl(T* out, const T* x, int M, int N) {
    __shared__ float tile[32][33];
    const long long base = (long long)blockIdx.z * M * N;
    const int n0 = blockIdx.x * 32, m0 = blockIdx.y * 32;
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
        int m = m0 + r, n = n0 + threadIdx.x;
        if (m < M && n < N) tile[r][threadIdx.x] = ld(x, base + (long long)m * N + n);
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
        int n = n0 + r, m = m0 + threadIdx.x;
        if (m < M && n < N) st(out, base + (long long)n * M + m, tile[threadIdx.x][r]);
    }
}

// x [outer, len_in, inner] -> out [outer, len, inner] from `start` (forward), or dx with dy in
// the slice and zeros elsewhere (backward, written); one thread per element of the larger side.
template <typename T>
__device__ void slice_axis_impl(T* out, const T* x, long long outer, int len_in, int inner,
                                int start, int len) {
    const long long n = outer * len * inner;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        long long i = e % inner, r = e / inner;
        long long t = r % len, o = r / len;
        st(out, e, ld(x, (o * len_in + start + t) * inner + i));
    }
}

template <typename T>
__device__ void slice_axis_backward_impl(T* dx, const T* dy, long long outer, int len_in,
                                         int inner, int start, int len) {
    const long long n = outer * len_in * inner;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        long long i = e % inner, r = e / inner;
        long long t = r % len_in, o = r / len_in;
        long long ts = t - start;
        st(dx, e, (ts >= 0 && ts < len) ? ld(dy, (o * len + ts) * inner + i) : 0.0f);
    }
}

#define INSTANTIATE(SUF, T)                                                                       \
    extern "C" __global__ void conv1d_forward_##SUF(T* y, const T* x, const T* w, const T* bias, \
                                                    int cin, int cout, int lin, int lout, int k, \
                                                    int stride, int pad, int groups, int cc) {   \
        conv1d_forward_impl(y, x, w, bias, cin, cout, lin, lout, k, stride, pad, groups, cc);    \
    }                                                                                             \
    extern "C" __global__ void conv1d_backward_input_##SUF(                                       \
        T* dx, const T* dy, const T* w, int cin, int cout, int lin, int lout, int k, int stride, \
        int pad, int groups, int cc) {                                                            \
        conv1d_backward_input_impl(dx, dy, w, cin, cout, lin, lout, k, stride, pad, groups, cc); \
    }                                                                                             \
    extern "C" __global__ void conv1d_backward_weight_partial_##SUF(                              \
        float* part, const T* dy, const T* x, int batch, int cin, int cout, int lin, int lout,    \
        int k, int stride, int pad, int groups, int splits, long long per) {                      \
        conv1d_backward_weight_partial_impl(part, dy, x, batch, cin, cout, lin, lout, k, stride,  \
                                            pad, groups, splits, per);                            \
    }                                                                                             \
    extern "C" __global__ void conv1d_backward_weight_reduce_##SUF(T* dw, const float* part,      \
                                                                   long long n, int splits) {     \
        conv1d_backward_weight_reduce_impl(dw, part, n, splits);                                  \
    }                                                                                             \
    extern "C" __global__ void conv1d_backward_bias_##SUF(T* db, const T* dy, int batch,          \
                                                          int cout, int lout) {                   \
        conv1d_backward_bias_impl(db, dy, batch, cout, lout);                                     \
    }                                                                                             \
    extern "C" __global__ void weight_norm_norms_##SUF(float* norm, const T* v, int outer,       \
                                                       int kdim, int inner) {                    \
        weight_norm_norms_impl(norm, v, outer, kdim, inner);                                      \
    }                                                                                             \
    extern "C" __global__ void weight_norm_forward_##SUF(T* w, const T* g, const T* v,           \
                                                         const float* norm, long long n,         \
                                                         int kdim, int inner) {                  \
        weight_norm_forward_impl(w, g, v, norm, n, kdim, inner);                                  \
    }                                                                                             \
    extern "C" __global__ void weight_norm_backward_g_##SUF(T* dg, float* s, const T* dw,        \
                                                            const T* v, const float* norm,       \
                                                            int outer, int kdim, int inner) {    \
        weight_norm_backward_g_impl(dg, s, dw, v, norm, outer, kdim, inner);                      \
    }                                                                                             \
    extern "C" __global__ void weight_norm_backward_v_##SUF(                                      \
        T* dv, const T* dw, const T* g, const T* v, const float* norm, const float* s,           \
        long long n, int kdim, int inner) {                                                       \
        weight_norm_backward_v_impl(dv, dw, g, v, norm, s, n, kdim, inner);                       \
    }                                                                                             \
    extern "C" __global__ void transpose_last2_##SUF(T* out, const T* x, int m, int n) {         \
        transpose_last2_impl(out, x, m, n);                                                       \
    }                                                                                             \
    extern "C" __global__ void slice_axis_##SUF(T* out, const T* x, long long outer, int len_in, \
                                                int inner, int start, int len) {                 \
        slice_axis_impl(out, x, outer, len_in, inner, start, len);                                \
    }                                                                                             \
    extern "C" __global__ void slice_axis_backward_##SUF(T* dx, const T* dy, long long outer,    \
                                                         int len_in, int inner, int start,       \
                                                         int len) {                              \
        slice_axis_backward_impl(dx, dy, outer, len_in, inner, start, len);                       \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
