// BatchNorm2d over NCHW, statistics per channel over (N, H, W). CPU twin:
// src/backend/cpu/batch_norm.rs.
// Train forward: one block per channel computes the mean and biased variance (two passes,
// fixed-order block sums), saves mean and rstd (fp32), updates the running statistics with the
// unbiased variance; then an elementwise kernel normalises. Eval forward: elementwise with the
// running statistics. Backward (train mode): one block per channel reduces Σdy and Σdy·x̂,
// adds them into db and dw, and writes dx. Statistics and running buffers are always fp32.

template <typename T>
__device__ void batch_norm_stats_impl(float* mean, float* rstd, float* run_mean, float* run_var,
                                      const T* x, int N, int C, long long HW, float eps,
                                      float momentum) {
    __shared__ float scratch[32];
    const int c = blockIdx.x;
    const long long M = (long long)N * HW;
    float s = 0.0f;
    for (long long e = threadIdx.x; e < M; e += blockDim.x) {
        long long n = e / HW, p = e % HW;
        s += ld(x, (n * C + c) * HW + p);
    }
    const float mu = block_sum(s, scratch) / (float)M;
    float v = 0.0f;
    for (long long e = threadIdx.x; e < M; e += blockDim.x) {
        long long n = e / HW, p = e % HW;
        float d = ld(x, (n * C + c) * HW + p) - mu;
        v += d * d;
    }
    const float var = block_sum(v, scratch) / (float)M;
    if (threadIdx.x == 0) {
        mean[c] = mu;
        rstd[c] = rsqrtf(var + eps);
        float unbiased = M > 1 ? var * ((float)M / (float)(M - 1)) : var;
        run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * mu;
        run_var[c] = (1.0f - momentum) * run_var[c] + momentum * unbiased;
    }
}

template <typename T>
__device__ void batch_norm_apply_impl(T* y, const T* x, const T* w, const T* b,
                                      const float* mean, const float* rstd, int C, long long HW,
                                      long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)((i / HW) % C);
        st(y, i, (ld(x, i) - mean[c]) * rstd[c] * ld(w, c) + ld(b, c));
    }
}

template <typename T>
__device__ void batch_norm_eval_impl(T* y, const T* x, const T* w, const T* b,
                                     const float* run_mean, const float* run_var, int C,
                                     long long HW, long long n, float eps) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)((i / HW) % C);
        float rs = 1.0f / sqrtf(run_var[c] + eps);
        st(y, i, (ld(x, i) - run_mean[c]) * rs * ld(w, c) + ld(b, c));
    }
}

template <typename T>
__device__ void batch_norm_backward_impl(T* dx, T* dw, T* db, const T* dy, const T* x,
                                         const T* w, const float* mean, const float* rstd, int N,
                                         int C, long long HW) {
    __shared__ float scratch[32];
    const int c = blockIdx.x;
    const long long M = (long long)N * HW;
    const float mu = mean[c], rs = rstd[c];
    float sdy = 0.0f, sdyx = 0.0f;
    for (long long e = threadIdx.x; e < M; e += blockDim.x) {
        long long n = e / HW, p = e % HW;
        long long i = (n * C + c) * HW + p;
        float g = ld(dy, i);
        sdy += g;
        sdyx += g * (ld(x, i) - mu) * rs;
    }
    sdy = block_sum(sdy, scratch);
    sdyx = block_sum(sdyx, scratch);
    if (threadIdx.x == 0) {
        st(db, c, ld(db, c) + sdy);
        st(dw, c, ld(dw, c) + sdyx);
    }
    const float mdy = sdy / (float)M, mdyx = sdyx / (float)M, k = ld(w, c) * rs;
    for (long long e = threadIdx.x; e < M; e += blockDim.x) {
        long long n = e / HW, p = e % HW;
        long long i = (n * C + c) * HW + p;
        float xh = (ld(x, i) - mu) * rs;
        st(dx, i, k * (ld(dy, i) - mdy - xh * mdyx));
    }
}

#define INSTANTIATE(SUF, T)                                                                     \
    extern "C" __global__ void batch_norm_stats_##SUF(float* mean, float* rstd,                \
                                                     float* run_mean, float* run_var,          \
                                                     const T* x, int n, int c, long long hw,    \
                                                     float eps, float momentum) {               \
        batch_norm_stats_impl(mean, rstd, run_mean, run_var, x, n, c, hw, eps, momentum);       \
    }                                                                                           \
    extern "C" __global__ void batch_norm_apply_##SUF(T* y, const T* x, const T* w, const T* b, \
                                                     const float* mean, const float* rstd,      \
                                                     int c, long long hw, long long n) {        \
        batch_norm_apply_impl(y, x, w, b, mean, rstd, c, hw, n);                                \
    }                                                                                           \
    extern "C" __global__ void batch_norm_eval_##SUF(T* y, const T* x, const T* w, const T* b,  \
                                                    const float* run_mean,                     \
                                                    const float* run_var, int c, long long hw,  \
                                                    long long n, float eps) {                   \
        batch_norm_eval_impl(y, x, w, b, run_mean, run_var, c, hw, n, eps);                     \
    }                                                                                           \
    extern "C" __global__ void batch_norm_backward_##SUF(T* dx, T* dw, T* db, const T* dy,      \
                                                        const T* x, const T* w,                \
                                                        const float* mean, const float* rstd,  \
                                                        int n, int c, long long hw) {           \
        batch_norm_backward_impl(dx, dw, db, dy, x, w, mean, rstd, n, c, hw);                   \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
