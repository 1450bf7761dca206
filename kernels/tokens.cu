// Token bookkeeping: patchify / unpatchify (images <-> patch rows) and row gathers with a
// fill vector (cls token, MAE visible subset and unshuffle) with deterministic backward.
// CPU twin: src/backend/cpu/tokens.rs.

// One thread per element of the patch tensor [B, gh*gw, C*P*P]; `to_patches` selects the
// direction (patchify reads the image, unpatchify writes it).
template <typename T>
__device__ void patch_map(T* patches, T* img, int B, int C, int H, int W, int P, bool to_patches) {
    const int gh = H / P, gw = W / P, pv = C * P * P;
    const long long n = (long long)B * gh * gw * pv;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        int k = (int)(e % pv);
        long long row = e / pv;
        int g = (int)(row % (gh * gw));
        int b = (int)(row / (gh * gw));
        int ci = k / (P * P), py = (k / P) % P, px = k % P;
        int gy = g / gw, gx = g % gw;
        long long pix = (((long long)b * C + ci) * H + gy * P + py) * W + gx * P + px;
        if (to_patches) st(patches, e, ld(img, pix));
        else st(img, pix, ld(patches, e));
    }
}

// One block per output row; idx < 0 takes `fill` (or zeros when fill is null).
template <typename T>
__device__ void gather_rows_impl(T* out, const T* src, const int* idx, const T* fill, int Ns,
                                 int Nd, int C) {
    const long long row = blockIdx.x;  // b * Nd + i
    const int b = (int)(row / Nd);
    const int j = idx[row];
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = j >= 0 ? ld(src, ((long long)b * Ns + j) * C + c) : (fill ? ld(fill, c) : 0.0f);
        st(out, row * C + c, v);
    }
}

// One block per source row (b, j): sums the output-gradient rows that gathered it, in order.
template <typename T>
__device__ void gather_rows_backward_impl(T* dsrc, const T* dout, const int* idx, int Ns, int Nd,
                                          int C) {
    const long long row = blockIdx.x;  // b * Ns + j
    const int b = (int)(row / Ns), j = (int)(row % Ns);
    const int* ib = idx + (long long)b * Nd;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s = 0.0f;
        for (int i = 0; i < Nd; ++i)
            if (ib[i] == j) s += ld(dout, ((long long)b * Nd + i) * C + c);
        st(dsrc, row * C + c, s);
    }
}

// dfill[c] += sum over all rows with idx < 0 of dout[row, c]. Variant 1 (colsum=1): one
// thread per column walks every row.
template <typename T>
__device__ void gather_fill_backward_impl(T* dfill, const T* dout, const int* idx, long long rows,
                                          int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (long long r = 0; r < rows; ++r)
        if (idx[r] < 0) s += ld(dout, r * C + c);
    st(dfill, c, ld(dfill, c) + s);
}

// The same sum as colsum variant 2's pass 1 (colsum_partials_block in common.cuh): partials
// per (64-column tile, row split) of the rows whose idx is negative; reduce.cu's colsum_final
// adds them into dfill.
template <typename T>
__device__ void gather_fill_partials_impl(float* partials, const T* dout, const int* idx,
                                          int rows, int cols, int rows_per_split) {
    colsum_partials_block<1>(partials, rows, cols, rows_per_split,
                             [&](long long i, int r, float* acc) {
                                 if (idx[r] < 0) acc[0] += ld(dout, i);
                             });
}

#define INSTANTIATE(SUF, T)                                                                       \
    extern "C" __global__ void patchify_##SUF(T* patches, const T* img, int b, int c, int h,     \
                                              int w, int p) {                                    \
        patch_map(patches, (T*)img, b, c, h, w, p, true);                                        \
    }                                                                                             \
    extern "C" __global__ void unpatchify_##SUF(T* img, const T* patches, int b, int c, int h,   \
                                                int w, int p) {                                  \
        patch_map((T*)patches, img, b, c, h, w, p, false);                                       \
    }                                                                                             \
    extern "C" __global__ void gather_rows_##SUF(T* out, const T* src, const int* idx,           \
                                                 const T* fill, int ns, int nd, int c) {         \
        gather_rows_impl(out, src, idx, fill, ns, nd, c);                                        \
    }                                                                                             \
    extern "C" __global__ void gather_rows_backward_##SUF(T* dsrc, const T* dout, const int* idx, \
                                                          int ns, int nd, int c) {               \
        gather_rows_backward_impl(dsrc, dout, idx, ns, nd, c);                                   \
    }                                                                                             \
    extern "C" __global__ void gather_fill_backward_##SUF(T* dfill, const T* dout, const int* idx, \
                                                          long long rows, int c) {               \
        gather_fill_backward_impl(dfill, dout, idx, rows, c);                                    \
    }                                                                                             \
    extern "C" __global__ void __launch_bounds__(COLSUM_THREADS) gather_fill_partials_##SUF(      \
        float* partials, const T* dout, const int* idx, int rows, int cols, int rows_per_split) { \
        gather_fill_partials_impl(partials, dout, idx, rows, cols, rows_per_split);               \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
