// Layout kernels for NCHW tensors. CPU twin: src/backend/cpu/channels.rs.
// copy_strided: for each batch entry b, dst[b·dst_stride + dst_off + j] =
// src[b·src_stride + src_off + j], j < len (concatenation along C and its inverse, split).
// transpose_last2: out[b, c, r] = x[b, r, c] (NCHW ↔ NHWC as [n, C, hw] ↔ [n, hw, C]).
// Grid-stride over output elements; a pure copy, so bf16 stays bit-exact.

template <typename T>
__device__ void copy_strided_impl(T* dst, const T* src, long long batch, long long len,
                                  long long dst_stride, long long dst_off, long long src_stride,
                                  long long src_off) {
    const long long n = batch * len;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long b = i / len, j = i % len;
        dst[b * dst_stride + dst_off + j] = src[b * src_stride + src_off + j];
    }
}

template <typename T>
__device__ void transpose_last2_impl(T* out, const T* x, long long batch, long long rows,
                                     long long cols) {
    const long long plane = rows * cols, n = batch * plane;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long b = i / plane, q = i % plane;
        long long c = q / rows, r = q % rows;  // out is [batch, cols, rows]
        out[i] = x[b * plane + r * cols + c];
    }
}

#define INSTANTIATE(SUF, T)                                                                     \
    extern "C" __global__ void copy_strided_##SUF(T* dst, const T* src, long long batch,        \
                                                 long long len, long long dst_stride,          \
                                                 long long dst_off, long long src_stride,      \
                                                 long long src_off) {                          \
        copy_strided_impl(dst, src, batch, len, dst_stride, dst_off, src_stride, src_off);      \
    }                                                                                           \
    extern "C" __global__ void transpose_last2_##SUF(T* out, const T* x, long long batch,       \
                                                    long long rows, long long cols) {          \
        transpose_last2_impl(out, x, batch, rows, cols);                                        \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
