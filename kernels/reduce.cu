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

// ---- Column sums over rows (bias gradients) ----
// out[c] (+)= sum over r of x[r, c] for a row-major [rows, cols] x, in two deterministic
// passes (colsum_partials_block in common.cuh, then colsum_final); the plan is
// `colsum_plan` in src/backend/cuda/reduce.rs. CPU twin: sum_rows in src/backend/cpu (row
// order; the two agree to rounding).

template <typename T>
__device__ void colsum_partials_impl(float* partials, const T* x, int rows, int cols,
                                     int rows_per_split) {
    colsum_partials_block<1>(partials, rows, cols, rows_per_split,
                             [&](long long i, int, float* acc) { acc[0] += ld(x, i); });
}

// out0[c] (+)= sum over s of partials[s, c]; with out1, out1[c] (+)= sum over s of
// partials[splits + s, c] (LayerNorm's dw and db in one launch). Block: COLSUM_FINAL_COLS
// columns × COLSUM_WARPS warps. Lane l of warp w adds splits w, w + 8, w + 16, ... of column
// c0 + l in order (each warp reads 128 coalesced bytes per split); then lane l of warp 0 adds
// the eight warp sums in warp order. The order depends on `splits` only: the same bits on every
// run and every card. (One thread per column walking all splits left a 240-column bias sum on
// 2 blocks, each thread reading 256 partials one after another.)
#define COLSUM_FINAL_COLS 32
template <typename T>
__device__ void colsum_final_impl(T* out0, T* out1, const float* partials, int splits, int cols,
                                  int accumulate) {
    __shared__ float part[COLSUM_WARPS][COLSUM_FINAL_COLS];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int c = blockIdx.x * COLSUM_FINAL_COLS + lane;
    for (int n = 0; n < (out1 != nullptr ? 2 : 1); ++n) {
        const float* p = partials + (long long)n * splits * cols;
        float s = 0.0f;
        if (c < cols)
            for (int i = warp; i < splits; i += COLSUM_WARPS) s += p[(long long)i * cols + c];
        __syncthreads();  // the previous set's sums are read
        part[warp][lane] = s;
        __syncthreads();
        if (warp == 0 && c < cols) {
            float t = 0.0f;
            for (int w = 0; w < COLSUM_WARPS; ++w) t += part[w][lane];
            T* out = n == 0 ? out0 : out1;
            if (accumulate) t += ld(out, c);
            st(out, c, t);
        }
    }
}

extern "C" __global__ void __launch_bounds__(COLSUM_THREADS) colsum_partials_f32(float* partials, const float* x, int rows, int cols, int rows_per_split) {
    colsum_partials_impl(partials, x, rows, cols, rows_per_split);
}
extern "C" __global__ void __launch_bounds__(COLSUM_THREADS) colsum_partials_bf16(float* partials, const bf16_t* x, int rows, int cols, int rows_per_split) {
    colsum_partials_impl(partials, x, rows, cols, rows_per_split);
}
extern "C" __global__ void __launch_bounds__(COLSUM_THREADS) colsum_final_f32(float* out0, float* out1, const float* partials,
                                            int splits, int cols, int accumulate) {
    colsum_final_impl(out0, out1, partials, splits, cols, accumulate);
}
extern "C" __global__ void __launch_bounds__(COLSUM_THREADS) colsum_final_bf16(bf16_t* out0, bf16_t* out1, const float* partials,
                                             int splits, int cols, int accumulate) {
    colsum_final_impl(out0, out1, partials, splits, cols, accumulate);
}
