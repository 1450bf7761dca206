// Softmax over the last axis (one block per row) and its backward.
// CPU twin: src/backend/cpu/softmax.rs.

template <typename T>
__device__ void softmax_forward_impl(T* y, const T* x, int cols) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    T* yr = y + row * cols;
    float m = -SF_INF;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, ld(xr, i));
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += expf(ld(xr, i) - m);
    s = block_sum(s, scratch);
    float inv = 1.0f / s;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) st(yr, i, expf(ld(xr, i) - m) * inv);
}

template <typename T>
__device__ void softmax_backward_impl(T* dx, const T* y, const T* dy, int cols) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* yr = y + row * cols;
    const T* dyr = dy + row * cols;
    T* dxr = dx + row * cols;
    float d = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) d += ld(yr, i) * ld(dyr, i);
    d = block_sum(d, scratch);
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        st(dxr, i, ld(yr, i) * (ld(dyr, i) - d));
}

#define INSTANTIATE(SUF, T)                                                                   \
    extern "C" __global__ void softmax_forward_##SUF(T* y, const T* x, int cols) {           \
        softmax_forward_impl(y, x, cols);                                                     \
    }                                                                                         \
    extern "C" __global__ void softmax_backward_##SUF(T* dx, const T* y, const T* dy, int cols) { \
        softmax_backward_impl(dx, y, dy, cols);                                               \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
