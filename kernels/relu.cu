// ReLU forward y = max(x, 0) (NaN passes through) and backward dx = y > 0 ? dy : 0, from the
// forward output. Grid-stride loops, fp32 compute. CPU twin: src/backend/cpu/relu.rs.

template <typename T>
__device__ void relu_forward_impl(T* y, const T* x, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float v = ld(x, i);
        st(y, i, v < 0.0f ? 0.0f : v);
    }
}

template <typename T>
__device__ void relu_backward_impl(T* dx, const T* y, const T* dy, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        st(dx, i, ld(y, i) > 0.0f ? ld(dy, i) : 0.0f);
    }
}

#define INSTANTIATE(SUF, T)                                                                     \
    extern "C" __global__ void relu_forward_##SUF(T* y, const T* x, long long n) {              \
        relu_forward_impl(y, x, n);                                                             \
    }                                                                                           \
    extern "C" __global__ void relu_backward_##SUF(T* dx, const T* y, const T* dy, long long n) { \
        relu_backward_impl(dx, y, dy, n);                                                       \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
