// LayerNorm over the last axis. Forward: one block per row; saves mean and rstd (fp32).
// Backward: dx per row (one block per row); dw and db as column sums over the rows in two
// deterministic passes (layer_norm_dwdb_partials here, colsum_final of reduce.cu; the plan is
// src/backend/cuda/reduce.rs's colsum_plan), or by one thread per column walking the rows
// (layer_norm_backward_dwdb: the first kernel, kept as variant 1 of `colsum`). CPU twin:
// src/backend/cpu/layer_norm.rs.

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

template <typename T>
__device__ void layer_norm_backward_dx_impl(T* dx, const T* dy, const T* x, const T* w,
                                            const float* mean, const float* rstd, int cols) {
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
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float xh = (ld(xr, i) - mu) * rs;
        st(dxr, i, rs * (ld(dyr, i) * ld(w, i) - mg - xh * mgx));
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
                                                           const float* rstd, int cols) {      \
        layer_norm_backward_dx_impl(dx, dy, x, w, mean, rstd, cols);                            \
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
