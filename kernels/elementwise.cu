// Elementwise kernels: add, bias add, GELU (erf form) forward/backward, scale, casts.
// Grid-stride loops; every type computes in fp32. CPU twin: src/backend/cpu/elementwise.rs.

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)gridDim.x * blockDim.x)

template <typename T>
__device__ void add_impl(T* out, const T* a, const T* b, long long n) {
    GRID_STRIDE(i, n) st(out, i, ld(a, i) + ld(b, i));
}
template <typename T>
__device__ void bias_add_impl(T* out, const T* x, const T* bias, long long n, long long cols) {
    GRID_STRIDE(i, n) st(out, i, ld(x, i) + ld(bias, i % cols));
}
template <typename T>
__device__ void gelu_forward_impl(T* out, const T* x, long long n) {
    GRID_STRIDE(i, n) {
        float v = ld(x, i);
        st(out, i, 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
    }
}
template <typename T>
__device__ void gelu_backward_impl(T* dx, const T* x, const T* dy, long long n) {
    GRID_STRIDE(i, n) {
        float v = ld(x, i);
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
        float pdf = expf(-0.5f * v * v) * 0.39894228040143268f;
        st(dx, i, ld(dy, i) * (cdf + v * pdf));
    }
}
template <typename T>
__device__ void scale_impl(T* x, float s, long long n) {
    GRID_STRIDE(i, n) st(x, i, ld(x, i) * s);
}

#define INSTANTIATE(SUF, T)                                                                     \
    extern "C" __global__ void add_##SUF(T* out, const T* a, const T* b, long long n) {        \
        add_impl(out, a, b, n);                                                                 \
    }                                                                                           \
    extern "C" __global__ void bias_add_##SUF(T* out, const T* x, const T* bias, long long n,  \
                                              long long cols) {                                 \
        bias_add_impl(out, x, bias, n, cols);                                                   \
    }                                                                                           \
    extern "C" __global__ void gelu_forward_##SUF(T* out, const T* x, long long n) {           \
        gelu_forward_impl(out, x, n);                                                           \
    }                                                                                           \
    extern "C" __global__ void gelu_backward_##SUF(T* dx, const T* x, const T* dy, long long n) { \
        gelu_backward_impl(dx, x, dy, n);                                                       \
    }                                                                                           \
    extern "C" __global__ void scale_##SUF(T* x, float s, long long n) { scale_impl(x, s, n); }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)

extern "C" __global__ void cast_f32_to_bf16(bf16_t* out, const float* x, long long n) {
    GRID_STRIDE(i, n) out[i] = f32_to_bf16(x[i]);
}
extern "C" __global__ void cast_bf16_to_f32(float* out, const bf16_t* x, long long n) {
    GRID_STRIDE(i, n) out[i] = bf16_to_f32(x[i]);
}
// acc += widen(x); x = 0 (bf16 gradient scratch handed to the fp32 gradients in one pass).
extern "C" __global__ void drain_add_bf16(float* acc, bf16_t* x, long long n) {
    GRID_STRIDE(i, n) {
        acc[i] += bf16_to_f32(x[i]);
        x[i] = f32_to_bf16(0.0f);
    }
}
