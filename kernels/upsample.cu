// Resampling of NCHW planes with PyTorch's F.interpolate semantics. CPU twin:
// src/backend/cpu/upsample.rs.
// Nearest ×k: out[p, y, x] = in[p, y/k, x/k]; backward gathers the k×k block per input pixel.
// Bilinear (`ac` = align_corners, 0 or 1):
//   ac = 0: src = max((dst + 0.5)·(in/out) − 0.5, 0);
//   ac = 1: src = dst·(in − 1)/(out − 1) (0 when out = 1), as nn.UpsamplingBilinear2d;
// then i0 = ⌊src⌋, i1 = min(i0 + 1, in − 1), λ1 = src − i0. Backward is a gather per input
// pixel: it visits the output rows/columns whose source can touch it (a conservative range),
// recomputes the forward weights exactly, and sums — one thread per input element, no atomics,
// deterministic.

struct BilinearSrc { int i0, i1; float l1; };

__device__ __forceinline__ BilinearSrc bilinear_src(int dst, int in_len, int out_len, int ac) {
    float src;
    if (ac) {
        float scale = out_len > 1 ? (float)(in_len - 1) / (float)(out_len - 1) : 0.0f;
        src = scale * (float)dst;
    } else {
        float scale = (float)in_len / (float)out_len;
        src = scale * ((float)dst + 0.5f) - 0.5f;
        if (src < 0.0f) src = 0.0f;
    }
    BilinearSrc s;
    s.i0 = min((int)src, in_len - 1);
    s.i1 = s.i0 < in_len - 1 ? s.i0 + 1 : s.i0;
    s.l1 = src - (float)s.i0;
    return s;
}

// Weight of input index i in output index o along one axis.
__device__ __forceinline__ float bilinear_weight(int o, int i, int in_len, int out_len, int ac) {
    BilinearSrc s = bilinear_src(o, in_len, out_len, ac);
    float wgt = 0.0f;
    if (s.i0 == i) wgt += 1.0f - s.l1;
    if (s.i1 == i) wgt += s.l1;
    return wgt;
}

// Output indices whose source interval [i0, i0 + 1] can include input index i (padded by one).
__device__ __forceinline__ void bilinear_range(int i, int in_len, int out_len, int ac, int* lo,
                                               int* hi) {
    int a, b;
    if (ac) {
        if (in_len <= 1) {
            a = 0;
            b = out_len - 1;
        } else {
            float inv = (float)(out_len - 1) / (float)(in_len - 1);
            a = (int)floorf(((float)i - 1.0f) * inv) - 1;
            b = (int)ceilf(((float)i + 1.0f) * inv) + 1;
        }
    } else {
        float inv = (float)out_len / (float)in_len;
        a = (int)floorf(((float)i - 0.5f) * inv - 0.5f) - 1;
        b = (int)ceilf(((float)i + 1.5f) * inv - 0.5f) + 1;
    }
    *lo = max(a, 0);
    *hi = min(b, out_len - 1);
}

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)gridDim.x * blockDim.x)

template <typename T>
__device__ void upsample_nearest_forward_impl(T* out, const T* x, long long planes, int H, int W,
                                              int k) {
    const int Ho = H * k, Wo = W * k;
    const long long n = planes * Ho * Wo;
    GRID_STRIDE(i, n) {
        long long p = i / ((long long)Ho * Wo);
        int q = (int)(i % ((long long)Ho * Wo));
        int oy = q / Wo, ox = q % Wo;
        out[i] = x[(p * H + oy / k) * W + ox / k];
    }
}

template <typename T>
__device__ void upsample_nearest_backward_impl(T* dx, const T* dy, long long planes, int H, int W,
                                               int k) {
    const int Ho = H * k, Wo = W * k;
    const long long n = planes * H * W;
    GRID_STRIDE(i, n) {
        long long p = i / ((long long)H * W);
        int q = (int)(i % ((long long)H * W));
        int iy = q / W, ix = q % W;
        const T* g = dy + p * Ho * Wo;
        float s = 0.0f;
        for (int a = 0; a < k; ++a)
            for (int b = 0; b < k; ++b) s += ld(g, (long long)(iy * k + a) * Wo + ix * k + b);
        st(dx, i, s);
    }
}

template <typename T>
__device__ void upsample_bilinear_forward_impl(T* out, const T* x, long long planes, int H, int W,
                                               int Ho, int Wo, int ac) {
    const long long n = planes * Ho * Wo;
    GRID_STRIDE(i, n) {
        long long p = i / ((long long)Ho * Wo);
        int q = (int)(i % ((long long)Ho * Wo));
        BilinearSrc sy = bilinear_src(q / Wo, H, Ho, ac), sx = bilinear_src(q % Wo, W, Wo, ac);
        const T* xp = x + p * H * W;
        float ly = sy.l1, lx = sx.l1;
        float top = (1.0f - lx) * ld(xp, sy.i0 * W + sx.i0) + lx * ld(xp, sy.i0 * W + sx.i1);
        float bot = (1.0f - lx) * ld(xp, sy.i1 * W + sx.i0) + lx * ld(xp, sy.i1 * W + sx.i1);
        st(out, i, (1.0f - ly) * top + ly * bot);
    }
}

template <typename T>
__device__ void upsample_bilinear_backward_impl(T* dx, const T* dy, long long planes, int H, int W,
                                                int Ho, int Wo, int ac) {
    const long long n = planes * H * W;
    GRID_STRIDE(i, n) {
        long long p = i / ((long long)H * W);
        int q = (int)(i % ((long long)H * W));
        int iy = q / W, ix = q % W;
        int ylo, yhi, xlo, xhi;
        bilinear_range(iy, H, Ho, ac, &ylo, &yhi);
        bilinear_range(ix, W, Wo, ac, &xlo, &xhi);
        const T* g = dy + p * Ho * Wo;
        float s = 0.0f;
        for (int oy = ylo; oy <= yhi; ++oy) {
            float wy = bilinear_weight(oy, iy, H, Ho, ac);
            if (wy == 0.0f) continue;
            float row = 0.0f;
            for (int ox = xlo; ox <= xhi; ++ox) {
                float wx = bilinear_weight(ox, ix, W, Wo, ac);
                if (wx != 0.0f) row += wx * ld(g, (long long)oy * Wo + ox);
            }
            s += wy * row;
        }
        st(dx, i, s);
    }
}

#define INSTANTIATE(SUF, T)                                                                     \
    extern "C" __global__ void upsample_nearest_forward_##SUF(T* out, const T* x,               \
                                                             long long planes, int h, int w,    \
                                                             int k) {                           \
        upsample_nearest_forward_impl(out, x, planes, h, w, k);                                 \
    }                                                                                           \
    extern "C" __global__ void upsample_nearest_backward_##SUF(T* dx, const T* dy,              \
                                                              long long planes, int h, int w,   \
                                                              int k) {                          \
        upsample_nearest_backward_impl(dx, dy, planes, h, w, k);                                \
    }                                                                                           \
    extern "C" __global__ void upsample_bilinear_forward_##SUF(T* out, const T* x,              \
                                                              long long planes, int h, int w,   \
                                                              int ho, int wo, int ac) {         \
        upsample_bilinear_forward_impl(out, x, planes, h, w, ho, wo, ac);                       \
    }                                                                                           \
    extern "C" __global__ void upsample_bilinear_backward_##SUF(T* dx, const T* dy,             \
                                                               long long planes, int h, int w,  \
                                                               int ho, int wo, int ac) {        \
        upsample_bilinear_backward_impl(dx, dy, planes, h, w, ho, wo, ac);                      \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
