// Whole-tensor sums, deterministic: pass 1 writes one partial per block (the grid size depends
// only on n), pass 2 sums the partials in one block. Same tree every run, no atomics.

#define RED_THREADS 256

template <typename T, bool SQUARE>
__device__ void partials_impl(float* partials, const T* x, long long n) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float v = ld(x, i);
        s += SQUARE ? v * v : v;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

extern "C" __global__ void sum_partials_f32(float* partials, const float* x, long long n) {
    partials_impl<float, false>(partials, x, n);
}
extern "C" __global__ void sum_partials_bf16(float* partials, const bf16_t* x, long long n) {
    partials_impl<bf16_t, false>(partials, x, n);
}
extern "C" __global__ void sumsq_partials_f32(float* partials, const float* x, long long n) {
    partials_impl<float, true>(partials, x, n);
}
extern "C" __global__ void sumsq_partials_bf16(float* partials, const bf16_t* x, long long n) {
    partials_impl<bf16_t, true>(partials, x, n);
}

// out[0] = scale * sum(partials[0..count]), one block.
extern "C" __global__ void sum_final(float* out, const float* partials, int count, float scale) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = s * scale;
}
