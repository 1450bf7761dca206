// SSIM / MS-SSIM building blocks on fp32 planes [P, h, w] (images are cast to fp32 first; every
// step computes in fp32). CPU twin: src/backend/cpu/ssim.rs (the same steps in f64).
// Conventions of pytorch_msssim: an 11-tap Gaussian (σ 1.5, normalised) applied separably with
// 'valid' filtering, first along H then along W, an axis shorter than the window unfiltered;
// 2×2 average pooling with stride 2, padding (h%2, w%2), divisor 4.
// Every reduction is a fixed-order block sum and every transpose a gather: deterministic.

#define SSIM_TAPS 11

// The normalised window, computed by each thread (11 exps are cheaper than a memory fetch).
__device__ __forceinline__ void ssim_window(float* g) {
    float s = 0.0f;
    for (int j = 0; j < SSIM_TAPS; ++j) {
        float c = (float)(j - SSIM_TAPS / 2);
        g[j] = expf(-(c * c) / (2.0f * 1.5f * 1.5f));
        s += g[j];
    }
    for (int j = 0; j < SSIM_TAPS; ++j) g[j] /= s;
}

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)gridDim.x * blockDim.x)

// Along H: out[m][p][oy][c] for the five maps x, y, x², y², xy; oh = h − 10 (or h when h < 11).
extern "C" __global__ void ssim_filter_rows(float* out, const float* x, const float* y,
                                            long long planes, int h, int w) {
    float g[SSIM_TAPS];
    ssim_window(g);
    const int filt = h >= SSIM_TAPS, oh = filt ? h - SSIM_TAPS + 1 : h, taps = filt ? SSIM_TAPS : 1;
    const long long plane = (long long)oh * w, n = planes * plane;
    GRID_STRIDE(i, n) {
        long long p = i / plane;
        int q = (int)(i % plane), oy = q / w, c = q % w;
        float s[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (int j = 0; j < taps; ++j) {
            long long k = (p * h + oy + j) * w + c;
            float a = x[k], b = y[k], gj = filt ? g[j] : 1.0f;
            s[0] += gj * a; s[1] += gj * b; s[2] += gj * a * a; s[3] += gj * b * b; s[4] += gj * a * b;
        }
        for (int m = 0; m < 5; ++m) out[m * n + i] = s[m];
    }
}

// Along W on `maps` stacked maps [maps][planes][h][w] → [maps][planes][h][ow].
extern "C" __global__ void ssim_filter_cols(float* out, const float* input, int maps,
                                            long long planes, int h, int w) {
    float g[SSIM_TAPS];
    ssim_window(g);
    const int filt = w >= SSIM_TAPS, ow = filt ? w - SSIM_TAPS + 1 : w, taps = filt ? SSIM_TAPS : 1;
    const long long n = (long long)maps * planes * h * ow;
    GRID_STRIDE(i, n) {
        long long row = i / ow;
        int oc = (int)(i % ow);
        const float* r = input + row * w;
        float s = 0.0f;
        for (int j = 0; j < taps; ++j) s += (filt ? g[j] : 1.0f) * r[oc + j];
        out[i] = s;
    }
}

// The transpose of ssim_filter_cols: [maps][planes][h][ow] → [maps][planes][h][w] (a gather).
extern "C" __global__ void ssim_filter_cols_t(float* out, const float* input, int maps,
                                              long long planes, int h, int w) {
    float g[SSIM_TAPS];
    ssim_window(g);
    const int filt = w >= SSIM_TAPS, ow = filt ? w - SSIM_TAPS + 1 : w, taps = filt ? SSIM_TAPS : 1;
    const long long n = (long long)maps * planes * h * w;
    GRID_STRIDE(i, n) {
        long long row = i / w;
        int c = (int)(i % w);
        const float* r = input + row * ow;
        float s = 0.0f;
        for (int j = 0; j < taps; ++j) {
            int oc = c - j;
            if (oc >= 0 && oc < ow) s += (filt ? g[j] : 1.0f) * r[oc];
        }
        out[i] = s;
    }
}

// Per plane (one block each): mean cs and mean ssim over the filtered maps [5][planes][oh][ow].
extern "C" __global__ void ssim_plane_means(float* cs_mean, float* ssim_mean, const float* f,
                                            long long planes, int plane, float c1, float c2) {
    __shared__ float scratch[32];
    const long long p = blockIdx.x, n = planes * plane;
    float scs = 0.0f, sss = 0.0f;
    for (int q = threadIdx.x; q < plane; q += blockDim.x) {
        long long i = p * plane + q;
        float m1 = f[i], m2 = f[n + i];
        float s1 = f[2 * n + i] - m1 * m1, s2 = f[3 * n + i] - m2 * m2, s12 = f[4 * n + i] - m1 * m2;
        float cs = (2.0f * s12 + c2) / (s1 + s2 + c2);
        float l = (2.0f * m1 * m2 + c1) / (m1 * m1 + m2 * m2 + c1);
        scs += cs;
        sss += l * cs;
    }
    scs = block_sum(scs, scratch);
    sss = block_sum(sss, scratch);
    if (threadIdx.x == 0) {
        cs_mean[p] = scs / (float)plane;
        ssim_mean[p] = sss / (float)plane;
    }
}

// Per pixel of the filtered maps, the gradients of gs[p]·mean(ssim) + gc[p]·mean(cs) with
// respect to μx, E[x²] and E[xy]: out [3][planes][oh][ow].
extern "C" __global__ void ssim_grad_maps(float* out, const float* f, const float* gs,
                                          const float* gc, long long planes, int plane,
                                          float c1, float c2) {
    const long long n = planes * plane;
    GRID_STRIDE(i, n) {
        long long p = i / plane;
        float m1 = f[i], m2 = f[n + i];
        float s1 = f[2 * n + i] - m1 * m1, s2 = f[3 * n + i] - m2 * m2, s12 = f[4 * n + i] - m1 * m2;
        float a = 2.0f * s12 + c2, b = s1 + s2 + c2;
        float pp = 2.0f * m1 * m2 + c1, qq = m1 * m1 + m2 * m2 + c1;
        float cs = a / b, l = pp / qq;
        float ws = gs[p] / (float)plane, wc = gc[p] / (float)plane;
        float g_l = ws * cs, g_cs = wc + ws * l;
        float g12 = g_cs * 2.0f / b, g11 = -g_cs * cs / b;
        out[i] = g_l * 2.0f * (m2 - l * m1) / qq - g12 * m2 - 2.0f * g11 * m1;
        out[n + i] = g11;
        out[2 * n + i] = g12;
    }
}

// The transpose of the H filtering of the three gradient maps [3][planes][oh][w], combined into
// dx: dx = Gᵀg_μ + 2x·Gᵀg_xx + y·Gᵀg_xy (written, or added when `accumulate`).
extern "C" __global__ void ssim_filter_rows_t_combine(float* dx, const float* input,
                                                      const float* x, const float* y,
                                                      long long planes, int h, int w,
                                                      int accumulate) {
    float g[SSIM_TAPS];
    ssim_window(g);
    const int filt = h >= SSIM_TAPS, oh = filt ? h - SSIM_TAPS + 1 : h, taps = filt ? SSIM_TAPS : 1;
    const long long n_in = planes * oh * w, n = planes * h * w;
    GRID_STRIDE(i, n) {
        long long p = i / ((long long)h * w);
        int q = (int)(i % ((long long)h * w)), r = q / w, c = q % w;
        float s[3] = {0.0f, 0.0f, 0.0f};
        for (int j = 0; j < taps; ++j) {
            int orow = r - j;
            if (orow < 0 || orow >= oh) continue;
            long long k = (p * oh + orow) * w + c;
            float gj = filt ? g[j] : 1.0f;
            s[0] += gj * input[k]; s[1] += gj * input[n_in + k]; s[2] += gj * input[2 * n_in + k];
        }
        float v = s[0] + 2.0f * x[i] * s[1] + y[i] * s[2];
        dx[i] = accumulate ? dx[i] + v : v;
    }
}

// 2×2 average pooling, stride 2, padding (h%2, w%2), divisor 4: [planes, h, w] →
// [planes, oh, ow].
extern "C" __global__ void ssim_avg_pool(float* out, const float* x, long long planes, int h,
                                         int w) {
    const int ph = h % 2, pw = w % 2, oh = (h + 2 * ph - 2) / 2 + 1, ow = (w + 2 * pw - 2) / 2 + 1;
    const long long n = planes * oh * ow;
    GRID_STRIDE(i, n) {
        long long p = i / ((long long)oh * ow);
        int q = (int)(i % ((long long)oh * ow)), oy = q / ow, ox = q % ow;
        float s = 0.0f;
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
                int iy = 2 * oy + a - ph, ix = 2 * ox + b - pw;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) s += x[(p * h + iy) * w + ix];
            }
        out[i] = s * 0.25f;
    }
}

// dx[planes, h, w] += the transpose of ssim_avg_pool applied to d [planes, oh, ow] (each input
// pixel lies in exactly one window).
extern "C" __global__ void ssim_avg_pool_backward_add(float* dx, const float* d, long long planes,
                                                      int h, int w) {
    const int ph = h % 2, pw = w % 2, oh = (h + 2 * ph - 2) / 2 + 1, ow = (w + 2 * pw - 2) / 2 + 1;
    const long long n = planes * h * w;
    GRID_STRIDE(i, n) {
        long long p = i / ((long long)h * w);
        int q = (int)(i % ((long long)h * w)), iy = q / w, ix = q % w;
        int oy = (iy + ph) / 2, ox = (ix + pw) / 2;
        if (oy < oh && ox < ow) dx[i] += 0.25f * d[(p * oh + oy) * ow + ox];
    }
}
