// LayerNorm over the last axis. Forward: one block per row; saves mean and rstd (fp32).
// Backward: dx per row (one block per row); dw and db as column sums over the rows in two
// deterministic passes (layer_norm_dwdb_partials here, colsum_final of reduce.cu; the plan is
// src/backend/cuda/reduce.rs's colsum_plan), or by one thread per column walking the rows
// (layer_norm_backward_dwdb: the first kernel, kept as variant 1 of `colsum`). The residual
// connections of the pre-norm blocks are fused in: add_layer_norm computes s = x + r and
// LayerNorm(s) in one pass (one warp per row), and the backward dx kernel adds the residual
// branch's gradient (dres) to what it writes. CPU twin: src/backend/cpu/layer_norm.rs (the
// unfused add and LayerNorm, so fused and unfused give the same bits there).

template <typename T>
__device__ void layer_norm_forward_impl(T* y, float* mean, float* rstd, const T* x, const T* w,
                                        const T* b, int cols, float eps) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    T* yr = y + row * cols;
    float s = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += ld(xr, i);
    float mu = block_sum(s, scratch) / cols;
    float v = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float d = ld(xr, i) - mu;
        v += d * d;
    }
    float var = block_sum(v, scratch) / cols;
    float rs = rsqrtf(var + eps);
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        st(yr, i, (ld(xr, i) - mu) * rs * ld(w, i) + ld(b, i));
    if (threadIdx.x == 0) { mean[row] = mu; rstd[row] = rs; }
}

// v rounded to T's precision (what a store and a reload of T would give).
__device__ __forceinline__ float as_stored(const float*, float v) { return v; }
__device__ __forceinline__ float as_stored(const bf16_t*, float v) {
    return bf16_to_f32(f32_to_bf16(v));
}

// V consecutive elements of p (16 bytes when V·sizeof(T) = 16: p must then be 16-byte aligned,
// which the host checks; the emulator checks it too), widened to f32, and the reverse.
template <int V>
__device__ __forceinline__ void ld_vec(const float* p, float* o) {
    if (V == 4) {
        SF_CHECK_ALIGN16(p);
        const float4 q = *(const float4*)p;
        o[0] = q.x; o[1] = q.y; o[2] = q.z; o[3] = q.w;
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) o[k] = p[k];
    }
}
template <int V>
__device__ __forceinline__ void ld_vec(const bf16_t* p, float* o) {
    if (V == 8) {
        SF_CHECK_ALIGN16(p);
        const uint4 q = *(const uint4*)p;
        const unsigned int u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            o[2 * k] = __uint_as_float(u[k] << 16);
            o[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u);
        }
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) o[k] = bf16_to_f32(p[k]);
    }
}
template <int V>
__device__ __forceinline__ void st_vec(float* p, const float* v) {
    if (V == 4) {
        SF_CHECK_ALIGN16(p);
        *(float4*)p = make_float4(v[0], v[1], v[2], v[3]);
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) p[k] = v[k];
    }
}
template <int V>
__device__ __forceinline__ void st_vec(bf16_t* p, const float* v) {
    if (V == 8) {
        SF_CHECK_ALIGN16(p);
        unsigned int u[4];
#pragma unroll
        for (int k = 0; k < 4; ++k)
            u[k] = (unsigned int)f32_to_bf16(v[2 * k]) |
                   ((unsigned int)f32_to_bf16(v[2 * k + 1]) << 16);
        *(uint4*)p = make_uint4(u[0], u[1], u[2], u[3]);
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k) p[k] = f32_to_bf16(v[k]);
    }
}

// s = x + r (stored in T) and y = LayerNorm(s) over rows of `cols`, one warp per row; with r
// and s null, y = LayerNorm(x) (the plain LayerNorm forward of rows up to 1024 wide)
// (LN_WARP_ROWS rows per block), the row in registers: lane l holds the V-element groups
// (j·32 + l)·V for j < LN_MAX_PER_LANE / V. V = 16 / sizeof(T) (16-byte loads and stores) when
// the host found cols a multiple of it and every pointer 16-byte aligned, else 1. The
// statistics are taken from the stored (rounded) s, as LayerNorm would read it back; the sums
// are each lane's in order, then the warp's butterfly (deterministic). cols ≤ 32 · LN_MAX_PER_LANE.
#define LN_WARP_ROWS 8
#define LN_MAX_PER_LANE 32
template <typename T, int V>
__device__ void add_layer_norm_warp(T* s, T* y, float* mean, float* rstd, const T* x,
                                    const T* r, const T* w, const T* b, long long rows,
                                    int cols, float eps) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * LN_WARP_ROWS + (threadIdx.x >> 5);
    if (row >= rows) return;  // the whole warp leaves together
    const long long off = row * cols;
    float v[LN_MAX_PER_LANE];
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < LN_MAX_PER_LANE / V; ++j) {
        const int i = (j * 32 + lane) * V;
        if (i < cols) {
            float a[V], c[V];
            ld_vec<V>(x + off + i, a);
            if (r) {
                ld_vec<V>(r + off + i, c);
#pragma unroll
                for (int k = 0; k < V; ++k) a[k] = as_stored(x, a[k] + c[k]);
                st_vec<V>(s + off + i, a);
            }
#pragma unroll
            for (int k = 0; k < V; ++k) {
                v[j * V + k] = a[k];
                sum += a[k];
            }
        }
    }
    const float mu = warp_sum(sum) / cols;
    float q = 0.0f;
#pragma unroll
    for (int j = 0; j < LN_MAX_PER_LANE / V; ++j) {
        if ((j * 32 + lane) * V < cols) {
#pragma unroll
            for (int k = 0; k < V; ++k) {
                const float d = v[j * V + k] - mu;
                q += d * d;
            }
        }
    }
    const float rs = rsqrtf(warp_sum(q) / cols + eps);
#pragma unroll
    for (int j = 0; j < LN_MAX_PER_LANE / V; ++j) {
        const int i = (j * 32 + lane) * V;
        if (i < cols) {
            float wv[V], bv[V], o[V];
            ld_vec<V>(w + i, wv);
            ld_vec<V>(b + i, bv);
#pragma unroll
            for (int k = 0; k < V; ++k) o[k] = (v[j * V + k] - mu) * rs * wv[k] + bv[k];
            st_vec<V>(y + off + i, o);
        }
    }
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// dx = LayerNorm's input gradient, plus dres where given (the residual branch's gradient:
// dx is rounded to T before the addition, as a separate add would see it).
template <typename T>
__device__ void layer_norm_backward_dx_impl(T* dx, const T* dy, const T* x, const T* w,
                                            const float* mean, const float* rstd,
                                            const T* dres, int cols) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    const T* dyr = dy + row * cols;
    T* dxr = dx + row * cols;
    const float mu = mean[row], rs = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float xh = (ld(xr, i) - mu) * rs;
        float g = ld(dyr, i) * ld(w, i);
        sg += g;
        sgx += g * xh;
    }
    float mg = block_sum(sg, scratch) / cols;
    float mgx = block_sum(sgx, scratch) / cols;
    const T* dr = dres ? dres + row * cols : nullptr;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float xh = (ld(xr, i) - mu) * rs;
        float g = rs * (ld(dyr, i) * ld(w, i) - mg - xh * mgx);
        if (dr) g = as_stored(dxr, g) + ld(dr, i);
        st(dxr, i, g);
    }
}

template <typename T>
__device__ void layer_norm_backward_dwdb_impl(T* dw, T* db, const T* dy, const T* x,
                                              const float* mean, const float* rstd, int rows,
                                              int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float sw = 0.0f, sb = 0.0f;
    for (int r = 0; r < rows; ++r) {
        long long idx = (long long)r * cols + c;
        float g = ld(dy, idx);
        sw += g * (ld(x, idx) - mean[r]) * rstd[r];
        sb += g;
    }
    st(dw, c, ld(dw, c) + sw);
    st(db, c, ld(db, c) + sb);
}

// Pass 1 of dw, db: partials[0][split][c] = sum of dy·x̂ and partials[1][split][c] = sum of dy
// over the split's rows.
template <typename T>
__device__ void layer_norm_dwdb_partials_impl(float* partials, const T* dy, const T* x,
                                              const float* mean, const float* rstd, int rows,
                                              int cols, int rows_per_split) {
    colsum_partials_block<2>(partials, rows, cols, rows_per_split,
                             [&](long long i, int r, float* acc) {
                                 const float g = ld(dy, i);
                                 acc[0] += g * (ld(x, i) - mean[r]) * rstd[r];
                                 acc[1] += g;
                             });
}

#define INSTANTIATE(SUF, T)                                                                     \
    extern "C" __global__ void layer_norm_forward_##SUF(T* y, float* mean, float* rstd,        \
                                                       const T* x, const T* w, const T* b,      \
                                                       int cols, float eps) {                   \
        layer_norm_forward_impl(y, mean, rstd, x, w, b, cols, eps);                             \
    }                                                                                           \
    extern "C" __global__ void layer_norm_backward_dx_##SUF(T* dx, const T* dy, const T* x,    \
                                                           const T* w, const float* mean,      \
                                                           const float* rstd, const T* dres,   \
                                                           int cols) {                         \
        layer_norm_backward_dx_impl(dx, dy, x, w, mean, rstd, dres, cols);                      \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(32 * LN_WARP_ROWS) add_layer_norm_##SUF(      \
        T* s, T* y, float* mean, float* rstd, const T* x, const T* r, const T* w, const T* b,  \
        long long rows, int cols, float eps, int vec) {                                         \
        if (vec)                                                                                \
            add_layer_norm_warp<T, 16 / sizeof(T)>(s, y, mean, rstd, x, r, w, b, rows, cols,   \
                                                   eps);                                        \
        else                                                                                    \
            add_layer_norm_warp<T, 1>(s, y, mean, rstd, x, r, w, b, rows, cols, eps);           \
    }                                                                                           \
    extern "C" __global__ void layer_norm_backward_dwdb_##SUF(T* dw, T* db, const T* dy,       \
                                                             const T* x, const float* mean,    \
                                                             const float* rstd, int rows,      \
                                                             int cols) {                       \
        layer_norm_backward_dwdb_impl(dw, db, dy, x, mean, rstd, rows, cols);                  \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(COLSUM_THREADS) layer_norm_dwdb_partials_##SUF( \
        float* partials, const T* dy, const T* x, const float* mean, const float* rstd, int rows, \
        int cols, int rows_per_split) {                                                         \
        layer_norm_dwdb_partials_impl(partials, dy, x, mean, rstd, rows, cols, rows_per_split); \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
