// Losses. Fused log-softmax + NLL against class targets (targets < 0 or >= classes are
// ignored), cross-entropy against soft targets, squared error. Forward kernels write per-row
// (or per-element) values in fp32; reduce.cu sums them deterministically.
// CPU twin: src/backend/cpu/loss.rs.

// log-sum-exp of one row, computed by the whole block.
template <typename T>
__device__ float row_logsumexp(const T* r, int cols, float* scratch) {
    float m = -SF_INF;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, ld(r, i));
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += expf(ld(r, i) - m);
    s = block_sum(s, scratch);
    return m + logf(s);
}

template <typename T>
__device__ void nll_forward_impl(float* losses, float* valid, const T* logits, const int* targets,
                                 int classes) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* r = logits + row * classes;
    int t = targets[row];
    bool ok = t >= 0 && t < classes;
    float lse = row_logsumexp(r, classes, scratch);
    if (threadIdx.x == 0) {
        losses[row] = ok ? lse - ld(r, t) : 0.0f;
        valid[row] = ok ? 1.0f : 0.0f;
    }
}

template <typename T>
__device__ void nll_backward_impl(T* dlogits, const T* logits, const int* targets, int classes,
                                  float scale) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* r = logits + row * classes;
    T* d = dlogits + row * classes;
    int t = targets[row];
    bool ok = t >= 0 && t < classes;
    float lse = row_logsumexp(r, classes, scratch);
    for (int i = threadIdx.x; i < classes; i += blockDim.x) {
        float g = ok ? (expf(ld(r, i) - lse) - (i == t ? 1.0f : 0.0f)) * scale : 0.0f;
        st(d, i, g);
    }
}

template <typename T>
__device__ void soft_ce_forward_impl(float* losses, const T* logits, const T* targets, int classes) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* r = logits + row * classes;
    const T* t = targets + row * classes;
    float lse = row_logsumexp(r, classes, scratch);
    float s = 0.0f;
    for (int i = threadIdx.x; i < classes; i += blockDim.x) s += ld(t, i) * (lse - ld(r, i));
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) losses[row] = s;
}

template <typename T>
__device__ void soft_ce_backward_impl(T* dlogits, const T* logits, const T* targets, int classes,
                                      float scale) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* r = logits + row * classes;
    const T* t = targets + row * classes;
    T* d = dlogits + row * classes;
    float lse = row_logsumexp(r, classes, scratch);
    float ts = 0.0f;
    for (int i = threadIdx.x; i < classes; i += blockDim.x) ts += ld(t, i);
    ts = block_sum(ts, scratch);
    for (int i = threadIdx.x; i < classes; i += blockDim.x)
        st(d, i, (expf(ld(r, i) - lse) * ts - ld(t, i)) * scale);
}

template <typename T>
__device__ void mse_forward_impl(float* sq, const T* x, const T* y, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float d = ld(x, i) - ld(y, i);
        sq[i] = d * d;
    }
}

template <typename T>
__device__ void mse_backward_impl(T* dx, const T* x, const T* y, long long n, float scale) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        st(dx, i, 2.0f * (ld(x, i) - ld(y, i)) * scale);
}

// Per-row MSE weighted by a row mask (MAE's loss on masked patches); one block per row.
template <typename T>
__device__ void masked_row_mse_forward_impl(float* row_loss, const T* x, const T* y,
                                            const float* mask, int cols) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    float s = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float d = ld(x, row * cols + i) - ld(y, row * cols + i);
        s += d * d;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) row_loss[row] = s / cols * mask[row];
}

template <typename T>
__device__ void masked_row_mse_backward_impl(T* dx, const T* x, const T* y, const float* mask,
                                             int cols, float scale) {
    const long long row = blockIdx.x;
    const float f = mask[row] * 2.0f / cols * scale;
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        st(dx, row * cols + i, (ld(x, row * cols + i) - ld(y, row * cols + i)) * f);
}

#define INSTANTIATE(SUF, T)                                                                      \
    extern "C" __global__ void nll_forward_##SUF(float* losses, float* valid, const T* logits,  \
                                                 const int* targets, int classes) {             \
        nll_forward_impl(losses, valid, logits, targets, classes);                               \
    }                                                                                            \
    extern "C" __global__ void nll_backward_##SUF(T* dlogits, const T* logits,                  \
                                                  const int* targets, int classes, float scale) { \
        nll_backward_impl(dlogits, logits, targets, classes, scale);                             \
    }                                                                                            \
    extern "C" __global__ void soft_ce_forward_##SUF(float* losses, const T* logits,            \
                                                     const T* targets, int classes) {           \
        soft_ce_forward_impl(losses, logits, targets, classes);                                  \
    }                                                                                            \
    extern "C" __global__ void soft_ce_backward_##SUF(T* dlogits, const T* logits,              \
                                                      const T* targets, int classes,            \
                                                      float scale) {                            \
        soft_ce_backward_impl(dlogits, logits, targets, classes, scale);                         \
    }                                                                                            \
    extern "C" __global__ void mse_forward_##SUF(float* sq, const T* x, const T* y, long long n) { \
        mse_forward_impl(sq, x, y, n);                                                           \
    }                                                                                            \
    extern "C" __global__ void mse_backward_##SUF(T* dx, const T* x, const T* y, long long n,   \
                                                  float scale) {                                 \
        mse_backward_impl(dx, x, y, n, scale);                                                   \
    }                                                                                            \
    extern "C" __global__ void masked_row_mse_forward_##SUF(float* row_loss, const T* x,        \
                                                            const T* y, const float* mask,      \
                                                            int cols) {                         \
        masked_row_mse_forward_impl(row_loss, x, y, mask, cols);                                 \
    }                                                                                            \
    extern "C" __global__ void masked_row_mse_backward_##SUF(T* dx, const T* x, const T* y,     \
                                                             const float* mask, int cols,       \
                                                             float scale) {                     \
        masked_row_mse_backward_impl(dx, x, y, mask, cols, scale);                               \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
