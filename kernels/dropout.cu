// Dropout with Philox (common.cuh): element i is kept when its uniform >= p and scaled by
// 1/(1-p). The same kernel serves forward (x -> y) and backward (dy -> dx), since the mask is
// recomputed from (seed, step, stream_id, i). CPU twin: src/backend/cpu/dropout.rs.

template <typename T>
__device__ void dropout_impl(T* out, const T* x, long long n, float p, unsigned long long seed,
                             unsigned int step, unsigned int stream_id) {
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        bool keep = philox_uniform(seed, step, stream_id, (unsigned long long)i) >= p;
        st(out, i, keep ? ld(x, i) * scale : 0.0f);
    }
}

extern "C" __global__ void dropout_f32(float* out, const float* x, long long n, float p,
                                       unsigned long long seed, unsigned int step,
                                       unsigned int stream_id) {
    dropout_impl(out, x, n, p, seed, step, stream_id);
}
extern "C" __global__ void dropout_bf16(bf16_t* out, const bf16_t* x, long long n, float p,
                                        unsigned long long seed, unsigned int step,
                                        unsigned int stream_id) {
    dropout_impl(out, x, n, p, seed, step, stream_id);
}
