// The binding layers of the fusion models (ImageBind-style): a bias-free projection followed by
// L2 normalisation, the similarity matrix scaled by exp(min(s, max_log_scale)), and the
// symmetric InfoNCE loss over it (row and column log-softmax), each with its backward pass.
// CPU twin: src/backend/cpu/fusion.rs. No atomics: every reduction is a fixed tree or a loop.
//
// Layouts: x [rows, d_in], w [d_out, d_in], e [rows, d_out]; image embeddings ei [n_img, dim],
// waveform embeddings ew [n_wave, dim], logits [n_img, n_wave] (f32); log_scale points at one
// f32 (the learnable log of the logit scale, read on the device: no host round trip).
//
// Warp-level loops are uniform over the block (every warp runs the same number of iterations
// and calls the shuffles together), as the CPU emulation (tools/cuda_emu) requires.

// One block per row (blockDim a multiple of 32); dynamic shared memory d_in + d_out floats.
// Warp w computes outputs j = w, w + warps, ... with its lanes striding over d_in (coalesced
// reads of w); then the row's norm by a block reduction.
template <typename T>
__device__ void project_l2norm_forward_impl(T* e, float* norm, const T* x, const T* w, int d_in,
                                            int d_out, float eps) {
    extern __shared__ float smem[];
    __shared__ float scratch[32];
    float* xs = smem;         // [d_in]
    float* zs = smem + d_in;  // [d_out]
    const long long row = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    for (int k = threadIdx.x; k < d_in; k += blockDim.x) xs[k] = ld(x, row * d_in + k);
    __syncthreads();
    for (int j0 = 0; j0 < d_out; j0 += nw) {
        const int j = j0 + warp;
        float s = 0.0f;
        if (j < d_out) {
            const long long wr = (long long)j * d_in;
            for (int k = lane; k < d_in; k += 32) s = fmaf(xs[k], ld(w, wr + k), s);
        }
        s = warp_sum(s);
        if (j < d_out && lane == 0) zs[j] = s;
    }
    __syncthreads();
    float ss = 0.0f;
    for (int j = threadIdx.x; j < d_out; j += blockDim.x) ss += zs[j] * zs[j];
    ss = block_sum(ss, scratch);
    const float n = sqrtf(ss);
    const float inv = 1.0f / fmaxf(n, eps);
    for (int j = threadIdx.x; j < d_out; j += blockDim.x) st(e, row * d_out + j, zs[j] * inv);
    if (threadIdx.x == 0) norm[row] = n;
}

// dz = (de − e·⟨e, de⟩) / ‖z‖ per row, or de / eps where the norm was clamped. One block per row.
template <typename T>
__device__ void l2norm_backward_impl(float* dz, const T* e, const T* de, const float* norm,
                                     int d_out, float eps) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const long long base = row * d_out;
    const float n = norm[row];
    float dot = 0.0f;
    for (int j = threadIdx.x; j < d_out; j += blockDim.x) dot += ld(e, base + j) * ld(de, base + j);
    dot = block_sum(dot, scratch);
    if (n > eps) {
        const float inv = 1.0f / n;
        for (int j = threadIdx.x; j < d_out; j += blockDim.x)
            dz[base + j] = (ld(de, base + j) - ld(e, base + j) * dot) * inv;
    } else {
        const float inv = 1.0f / eps;
        for (int j = threadIdx.x; j < d_out; j += blockDim.x) dz[base + j] = ld(de, base + j) * inv;
    }
}

// dx = dz w: one block per row, the row of dz in dynamic shared memory (d_out floats), thread k
// of the row sums over j (reads of w coalesced across the threads).
template <typename T>
__device__ void project_backward_dx_impl(T* dx, const float* dz, const T* w, int d_in, int d_out) {
    extern __shared__ float smem[];
    const long long row = blockIdx.x;
    for (int j = threadIdx.x; j < d_out; j += blockDim.x) smem[j] = dz[row * d_out + j];
    __syncthreads();
    for (int k = threadIdx.x; k < d_in; k += blockDim.x) {
        float s = 0.0f;
        for (int j = 0; j < d_out; ++j) s = fmaf(smem[j], ld(w, (long long)j * d_in + k), s);
        st(dx, row * d_in + k, s);
    }
}

// dw += dzᵀ x: grid-stride over the elements of dw, each a loop over the rows (deterministic).
template <typename T>
__device__ void project_backward_dw_impl(T* dw, const float* dz, const T* x, int rows, int d_in,
                                         int d_out) {
    const long long total = (long long)d_out * d_in;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int j = (int)(i / d_in), k = (int)(i % d_in);
        float s = 0.0f;
        for (int r = 0; r < rows; ++r)
            s = fmaf(dz[(long long)r * d_out + j], ld(x, (long long)r * d_in + k), s);
        st(dw, i, ld(dw, i) + s);
    }
}

// logits[i, j] = t ⟨ei_i, ew_j⟩: one warp per pair, lanes over the embedding.
template <typename T>
__device__ void similarity_forward_impl(float* logits, const T* ei, const T* ew,
                                        const float* log_scale, int n_img, int n_wave, int dim,
                                        float max_log_scale) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long p = (long long)blockIdx.x * (blockDim.x >> 5) + warp;
    const bool ok = p < (long long)n_img * n_wave;
    const long long i = ok ? p / n_wave : 0, j = ok ? p % n_wave : 0;
    float s = 0.0f;
    if (ok)
        for (int k = lane; k < dim; k += 32) s = fmaf(ld(ei, i * dim + k), ld(ew, j * dim + k), s);
    s = warp_sum(s);
    if (ok && lane == 0) logits[p] = expf(fminf(log_scale[0], max_log_scale)) * s;
}

// Square logits [n, n]: block b < n reduces row b, block n + b column b. lse = logsumexp of the
// line, losses = lse − the diagonal entry.
__device__ void infonce_lse_impl(float* lse, float* losses, const float* logits, int n) {
    __shared__ float scratch[32];
    const int b = blockIdx.x;
    const bool col = b >= n;
    const long long i = col ? b - n : b;
    const long long stride = col ? n : 1, start = col ? i : i * n;
    float m = -SF_INF;
    for (int t = threadIdx.x; t < n; t += blockDim.x) m = fmaxf(m, logits[start + t * stride]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int t = threadIdx.x; t < n; t += blockDim.x) s += expf(logits[start + t * stride] - m);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
        const float l = m + logf(s);
        lse[b] = l;
        losses[b] = l - logits[i * n + i];
    }
}

// dlogits[i, j] = scale (exp(L − lse_row i) + exp(L − lse_col j) − 2[i = j]), grid-stride.
__device__ void infonce_backward_impl(float* dlogits, const float* logits, const float* lse, int n,
                                      float scale) {
    const long long total = (long long)n * n;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < total;
         p += (long long)gridDim.x * blockDim.x) {
        const int i = (int)(p / n), j = (int)(p % n);
        const float l = logits[p];
        const float diag = i == j ? 2.0f : 0.0f;
        dlogits[p] = scale * (expf(l - lse[i]) + expf(l - lse[n + j]) - diag);
    }
}

// dei = t dL ew and dew = t dLᵀ ei: grid-stride over the elements of both (dei first).
template <typename T>
__device__ void similarity_backward_impl(T* dei, T* dew, const float* dlogits, const T* ei,
                                         const T* ew, const float* log_scale, int n_img,
                                         int n_wave, int dim, float max_log_scale) {
    const float t = expf(fminf(log_scale[0], max_log_scale));
    const long long ni = (long long)n_img * dim, total = ni + (long long)n_wave * dim;
    for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < total;
         p += (long long)gridDim.x * blockDim.x) {
        float s = 0.0f;
        if (p < ni) {
            const long long i = p / dim, k = p % dim;
            for (int j = 0; j < n_wave; ++j)
                s = fmaf(dlogits[i * n_wave + j], ld(ew, (long long)j * dim + k), s);
            st(dei, p, t * s);
        } else {
            const long long q = p - ni, j = q / dim, k = q % dim;
            for (int i = 0; i < n_img; ++i)
                s = fmaf(dlogits[(long long)i * n_wave + j], ld(ei, (long long)i * dim + k), s);
            st(dew, q, t * s);
        }
    }
}

// d s += Σ dL ⊙ L where s ≤ max_log_scale (the clamp passes nothing above). One block.
__device__ void logit_scale_backward_impl(float* dlog_scale, const float* dlogits,
                                          const float* logits, const float* log_scale, int count,
                                          float max_log_scale) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (int p = threadIdx.x; p < count; p += blockDim.x) s = fmaf(dlogits[p], logits[p], s);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0 && log_scale[0] <= max_log_scale) dlog_scale[0] += s;
}

extern "C" __global__ void infonce_lse(float* lse, float* losses, const float* logits, int n) {
    infonce_lse_impl(lse, losses, logits, n);
}
extern "C" __global__ void infonce_backward(float* dlogits, const float* logits, const float* lse,
                                            int n, float scale) {
    infonce_backward_impl(dlogits, logits, lse, n, scale);
}
extern "C" __global__ void logit_scale_backward(float* dlog_scale, const float* dlogits,
                                                const float* logits, const float* log_scale,
                                                int count, float max_log_scale) {
    logit_scale_backward_impl(dlog_scale, dlogits, logits, log_scale, count, max_log_scale);
}

#define INSTANTIATE(SUF, T)                                                                      \
    extern "C" __global__ void project_l2norm_forward_##SUF(T* e, float* norm, const T* x,      \
                                                            const T* w, int d_in, int d_out,    \
                                                            float eps) {                        \
        project_l2norm_forward_impl(e, norm, x, w, d_in, d_out, eps);                            \
    }                                                                                            \
    extern "C" __global__ void l2norm_backward_##SUF(float* dz, const T* e, const T* de,        \
                                                     const float* norm, int d_out, float eps) { \
        l2norm_backward_impl(dz, e, de, norm, d_out, eps);                                       \
    }                                                                                            \
    extern "C" __global__ void project_backward_dx_##SUF(T* dx, const float* dz, const T* w,    \
                                                         int d_in, int d_out) {                 \
        project_backward_dx_impl(dx, dz, w, d_in, d_out);                                        \
    }                                                                                            \
    extern "C" __global__ void project_backward_dw_##SUF(T* dw, const float* dz, const T* x,    \
                                                         int rows, int d_in, int d_out) {       \
        project_backward_dw_impl(dw, dz, x, rows, d_in, d_out);                                  \
    }                                                                                            \
    extern "C" __global__ void similarity_forward_##SUF(float* logits, const T* ei, const T* ew, \
                                                        const float* log_scale, int n_img,      \
                                                        int n_wave, int dim,                    \
                                                        float max_log_scale) {                  \
        similarity_forward_impl(logits, ei, ew, log_scale, n_img, n_wave, dim, max_log_scale);   \
    }                                                                                            \
    extern "C" __global__ void similarity_backward_##SUF(T* dei, T* dew, const float* dlogits,  \
                                                         const T* ei, const T* ew,              \
                                                         const float* log_scale, int n_img,     \
                                                         int n_wave, int dim,                   \
                                                         float max_log_scale) {                 \
        similarity_backward_impl(dei, dew, dlogits, ei, ew, log_scale, n_img, n_wave, dim,       \
                                 max_log_scale);                                                 \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
