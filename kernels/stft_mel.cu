// Mel spectrogram images: framing + window + FFT + power + mel projection + log, fused; the
// per-image finish (top_db, time resampling, normalisation); and the backward pass of the
// log-mel transform with respect to the waveform. CPU twin: src/dsp (mel.rs, images.rs).
//
// Layouts: x [B, T]; log-mel [B, n_mels, F] (row = mel bin, as librosa); images [B, H, W].
// Twiddles come from the host: tw[n] = e^{-2πin/N} as (cos, -sin) pairs, computed in f64.
// The filterbank is dense [n_mels, n_freq] with, per filter, its non-zero bin range [lo, hi).
// log_kind: 0 none, 1 ln(max(M, floor)), 2 10·log10(max(M, floor)) − offset (floor = amin).
// Sums are in a fixed order (no atomics): results are deterministic.

#define MEL_TILE_THREADS 256

struct cf { float re, im; };

__device__ __forceinline__ cf cmul(cf a, cf b) {
    cf r; r.re = a.re * b.re - a.im * b.im; r.im = a.re * b.im + a.im * b.re; return r;
}
__device__ __forceinline__ cf cadd(cf a, cf b) { cf r; r.re = a.re + b.re; r.im = a.im + b.im; return r; }

// Sample p (counted from the first real sample) of the centred, padded signal.
// Reflect needs pad < T (checked on the host), so one reflection suffices.
__device__ __forceinline__ float padded_sample(const float* x, int T, int p, int reflect) {
    if (p >= 0 && p < T) return x[p];
    if (!reflect) return 0.0f;
    int q = p < 0 ? -p : 2 * (T - 1) - p;
    q = q < 0 ? 0 : (q > T - 1 ? T - 1 : q);
    return x[q];
}

__device__ __forceinline__ float compress(float m, int kind, float fl, float offset) {
    if (kind == 1) return logf(fmaxf(m, fl));
    if (kind == 2) return 10.0f * log10f(fmaxf(m, fl)) - offset;
    return m;
}
// d compress / d m (0 where the floor is active, as the CPU twin).
__device__ __forceinline__ float compress_grad(float m, int kind, float fl) {
    if (kind == 1) return m > fl ? 1.0f / m : 0.0f;
    if (kind == 2) return m > fl ? 4.342944819032518f / m : 0.0f;  // 10 / ln 10
    return 1.0f;
}

__device__ __forceinline__ cf csub(cf a, cf b) { cf r; r.re = a.re - b.re; r.im = a.im - b.im; return r; }
// a · (−i)
__device__ __forceinline__ cf mul_mi(cf a) { cf r; r.re = a.im; r.im = -a.re; return r; }

__device__ __forceinline__ void dft4(cf& v0, cf& v1, cf& v2, cf& v3) {
    const cf t0 = cadd(v0, v2), t1 = csub(v0, v2), t2 = cadd(v1, v3), t3 = mul_mi(csub(v1, v3));
    v0 = cadd(t0, t2);
    v2 = csub(t0, t2);
    v1 = cadd(t1, t3);
    v3 = csub(t1, t3);
}

// In-register forward DFT of v[R] (roots e^{−2πi/R}). Radices 2, 4 and 8 by hand (additions,
// multiplications by −i and by (±1 − i)/√2); 3, 5 and 7 as the direct sum with the block's
// twiddle table, e^{−2πi rq/R} = tw[(rq mod R) · N/R] (`stride` = N/R).
template <int R>
__device__ __forceinline__ void dft_small(cf* v, const cf* tw, int stride) {
    if (R == 2) {
        const cf a = v[0];
        v[0] = cadd(a, v[1]);
        v[1] = csub(a, v[1]);
    } else if (R == 4) {
        dft4(v[0], v[1], v[2], v[3]);
    } else if (R == 8) {
        dft4(v[0], v[2], v[4], v[6]);  // evens: E0..E3 in v0, v2, v4, v6
        dft4(v[1], v[3], v[5], v[7]);  // odds:  O0..O3 in v1, v3, v5, v7
        const float h = 0.70710678118654752f;
        cf o1, o3;
        o1.re = h * (v[3].re + v[3].im);  // O1 · (1 − i)/√2
        o1.im = h * (v[3].im - v[3].re);
        const cf o2 = mul_mi(v[5]);        // O2 · (−i)
        o3.re = h * (v[7].im - v[7].re);  // O3 · (−1 − i)/√2
        o3.im = -h * (v[7].re + v[7].im);
        const cf e0 = v[0], e1 = v[2], e2 = v[4], e3 = v[6], o0 = v[1];
        v[0] = cadd(e0, o0);
        v[4] = csub(e0, o0);
        v[1] = cadd(e1, o1);
        v[5] = csub(e1, o1);
        v[2] = cadd(e2, o2);
        v[6] = csub(e2, o2);
        v[3] = cadd(e3, o3);
        v[7] = csub(e3, o3);
    } else {
        cf y[R];
#pragma unroll
        for (int q = 0; q < R; ++q) {
            cf s = v[0];
#pragma unroll
            for (int r = 1; r < R; ++r) s = cadd(s, cmul(v[r], tw[((r * q) % R) * stride]));
            y[q] = s;
        }
#pragma unroll
        for (int q = 0; q < R; ++q) v[q] = y[q];
    }
}

// One Stockham (self-sorting) radix-R stage of `count` independent FFTs of length N stored
// back to back (src and dst each count·N values), spread over the whole block: count·N/R
// butterflies, so every thread has work even when one FFT has fewer butterflies than the block
// has threads. `Ns` is the product of the radices of the stages before. Butterfly j of an FFT
// reads j + r·N/R and writes (j / Ns)·Ns·R + j % Ns + q·Ns; stage twiddle
// e^{−2πi r (j % Ns) / (Ns R)}.
template <int R>
__device__ void stockham_stage(const cf* src, cf* dst, const cf* tw, int N, int Ns, int count) {
    const int stride = N / R;
    const int tstep = N / (Ns * R);
    for (int idx = threadIdx.x; idx < count * stride; idx += blockDim.x) {
        const int p = idx / stride, j = idx - p * stride;
        const cf* s = src + p * N;
        cf* d = dst + p * N;
        const int k = j % Ns;
        cf v[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const cf a = s[j + r * stride];
            v[r] = r == 0 ? a : cmul(a, tw[r * k * tstep]);
        }
        dft_small<R>(v, tw, stride);
        const int base = (j / Ns) * Ns * R + k;
#pragma unroll
        for (int q = 0; q < R; ++q) d[base + q * Ns] = v[q];
    }
}

// `count` complex FFTs of length N, back to back in `a`, with `b` (the same size) as scratch.
// Radices (2, 3, 4, 5, 7 or 8) are packed 4 bits each in `radix_code`, first stage lowest.
// Returns the buffer that holds the results (a or b). Every thread of the block must call it.
__device__ cf* fft_shared(cf* a, cf* b, const cf* tw, int N, unsigned long long radix_code,
                         int n_stages, int count) {
    int Ns = 1;
    for (int s = 0; s < n_stages; ++s) {
        const int R = (int)((radix_code >> (4 * s)) & 15ull);
        switch (R) {
            case 2: stockham_stage<2>(a, b, tw, N, Ns, count); break;
            case 3: stockham_stage<3>(a, b, tw, N, Ns, count); break;
            case 4: stockham_stage<4>(a, b, tw, N, Ns, count); break;
            case 5: stockham_stage<5>(a, b, tw, N, Ns, count); break;
            case 7: stockham_stage<7>(a, b, tw, N, Ns, count); break;
            default: stockham_stage<8>(a, b, tw, N, Ns, count); break;
        }
        __syncthreads();
        cf* t = a; a = b; b = t;
        Ns *= R;
    }
    return a;
}

// |X1[k]|² and |X2[k]|² of the two real frames packed as the real and imaginary parts of one
// complex FFT Z: X1[k] = (Z[k] + conj Z[N−k]) / 2, X2[k] = (Z[k] − conj Z[N−k]) / 2i.
__device__ __forceinline__ void split_power(const cf* z, int N, int k, float* p1, float* p2) {
    const cf zk = z[k], zc = z[(N - k) % N];
    const float r1 = 0.5f * (zk.re + zc.re), i1 = 0.5f * (zk.im - zc.im);
    const float r2 = 0.5f * (zk.im + zc.im), i2 = -0.5f * (zk.re - zc.re);
    *p1 = r1 * r1 + i1 * i1;
    *p2 = r2 * r2 + i2 * i2;
}

// Mel projection of `nfr` consecutive frames' power spectra (pw, nf bins each) and the
// compression, written to out[trace, m, f0 + fr].
__device__ void mel_log_write(float* out, const float* pw, int nf, const float* fb,
                              const int* fb_range, long long trace, int f0, int nfr, int frames,
                              int n_mels, int kind, float fl, float offset) {
    for (int i = threadIdx.x; i < nfr * n_mels; i += blockDim.x) {
        const int m = i / nfr, fr = i % nfr;
        const int lo = fb_range[2 * m], hi = fb_range[2 * m + 1];
        const float* w = fb + (long long)m * nf;
        const float* p = pw + fr * nf;
        float s = 0.0f;
        for (int k = lo; k < hi; ++k) s += w[k] * p[k];
        out[(trace * n_mels + m) * frames + f0 + fr] = compress(s, kind, fl, offset);
    }
}

// FFT path, mel variant 1: one block per (pair of frames, trace). The two real frames travel
// as the real and imaginary parts of one complex FFT of size N = n_fft (7-smooth, N ≤ 2048),
// separated afterwards (split_power). Dynamic shared memory: 3·N complex values (24·N bytes).
// Most threads idle in the FFT stages (N/R butterflies for 128 threads) and each warp writes
// one or two frames of a mel row: variant 2 (log_mel_tile_fft) replaces it.
extern "C" __global__ void log_mel_frames_fft(
    float* out, const float* x, const float* window, const float* twiddles, const float* fb,
    const int* fb_range, int t, int n_fft, int hop, int pad, int reflect, int frames,
    int n_mels, unsigned long long radix_code, int n_stages, int log_kind, float log_floor,
    float log_offset) {
    extern __shared__ float smem[];
    const int N = n_fft, nf = N / 2 + 1;
    cf* a = (cf*)smem;
    cf* b = a + N;
    cf* tw = b + N;
    const long long trace = blockIdx.y;
    const int f0 = 2 * blockIdx.x;
    if (f0 >= frames) return;
    const bool second = f0 + 1 < frames;
    const float* xt = x + trace * t;
    for (int n = threadIdx.x; n < N; n += blockDim.x) {
        tw[n].re = twiddles[2 * n];
        tw[n].im = twiddles[2 * n + 1];
        const int p = f0 * hop + n - pad;
        const float w = window[n];
        a[n].re = w * padded_sample(xt, t, p, reflect);
        a[n].im = second ? w * padded_sample(xt, t, p + hop, reflect) : 0.0f;
    }
    __syncthreads();
    cf* z = fft_shared(a, b, tw, N, radix_code, n_stages, 1);
    float* pw = (float*)(z == a ? b : a);  // 2·N floats ≥ 2·nf
    for (int k = threadIdx.x; k < nf; k += blockDim.x) split_power(z, N, k, pw + k, pw + nf + k);
    __syncthreads();
    mel_log_write(out, pw, nf, fb, fb_range, trace, f0, second ? 2 : 1, frames, n_mels,
                  log_kind, log_floor, log_offset);
}

// FFT path, mel variant 2: one block per (tile of 2·pairs consecutive frames, trace).
// - The tile's stretch of the padded signal, (frames − 1)·hop + N samples, is staged in shared
//   memory once with coalesced loads (the frames overlap: each sample is read from global
//   memory once instead of ⌈N / hop⌉ times).
// - The `pairs` FFTs (two real frames each, as in variant 1) run side by side: every Stockham
//   stage spreads pairs·N/R butterflies over the block, so at n_fft 448 (8·8·7) and 8 pairs
//   256 threads have 1.75–2 butterflies each instead of 0.4–0.5.
// - The mel rows are written tile-wide: consecutive threads take consecutive frames of one mel
//   row, so a warp stores contiguous runs of 2·pairs floats.
// Dynamic shared memory: the twiddles (N complex) and two buffers of pairs·N complex values,
// 8·N·(1 + 2·pairs) bytes; the host checks that the staged stretch fits in one buffer
// ((2·pairs − 1)·hop + N ≤ 2·pairs·N floats, i.e. hop ≤ N).
extern "C" __global__ void __launch_bounds__(MEL_TILE_THREADS) log_mel_tile_fft(
    float* out, const float* x, const float* window, const float* twiddles, const float* fb,
    const int* fb_range, int t, int n_fft, int hop, int pad, int reflect, int frames,
    int n_mels, unsigned long long radix_code, int n_stages, int pairs, int log_kind,
    float log_floor, float log_offset) {
    extern __shared__ float smem[];
    const int N = n_fft, nf = N / 2 + 1;
    cf* tw = (cf*)smem;
    cf* a = tw + N;
    cf* b = a + pairs * N;
    const long long trace = blockIdx.y;
    const int f0 = blockIdx.x * 2 * pairs;
    if (f0 >= frames) return;
    const int nfr = min(2 * pairs, frames - f0);
    const float* xt = x + trace * t;
    float* sig = (float*)b;
    const int span = (nfr - 1) * hop + N, p0 = f0 * hop - pad;
    for (int i = threadIdx.x; i < span; i += blockDim.x)
        sig[i] = padded_sample(xt, t, p0 + i, reflect);
    for (int n = threadIdx.x; n < N; n += blockDim.x) {
        tw[n].re = twiddles[2 * n];
        tw[n].im = twiddles[2 * n + 1];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < pairs * N; i += blockDim.x) {
        const int p = i / N, n = i - p * N;
        const int fa = 2 * p, fb2 = fa + 1;
        const float w = window[n];
        a[i].re = fa < nfr ? w * sig[fa * hop + n] : 0.0f;
        a[i].im = fb2 < nfr ? w * sig[fb2 * hop + n] : 0.0f;
    }
    __syncthreads();
    cf* z = fft_shared(a, b, tw, N, radix_code, n_stages, pairs);
    // The power spectra of frames 2p and 2p + 1 go to the other buffer's values 2p·N.. (floats).
    float* pw = (float*)(z == a ? b : a);
    for (int i = threadIdx.x; i < pairs * nf; i += blockDim.x) {
        const int p = i / nf, k = i - p * nf;
        float* q = pw + 2 * p * N;
        split_power(z + p * N, N, k, q + k, q + nf + k);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n_mels * nfr; i += blockDim.x) {
        const int m = i / nfr, fr = i - m * nfr;
        const int lo = fb_range[2 * m], hi = fb_range[2 * m + 1];
        const float* w = fb + (long long)m * nf;
        const float* p = pw + (fr >> 1) * 2 * N + (fr & 1) * nf;
        float s = 0.0f;
        for (int k = lo; k < hi; ++k) s += w[k] * p[k];
        out[(trace * n_mels + m) * frames + f0 + fr] = compress(s, log_kind, log_floor, log_offset);
    }
}

// General path (any n_fft up to 8000): one block per (frame, trace), a direct DFT per bin with
// the host's twiddle table. Dynamic shared memory: N + nf floats.
extern "C" __global__ void log_mel_frames_dft(
    float* out, const float* x, const float* window, const float* twiddles, const float* fb,
    const int* fb_range, int t, int n_fft, int hop, int pad, int reflect, int frames,
    int n_mels, int log_kind, float log_floor, float log_offset) {
    extern __shared__ float smem[];
    const int N = n_fft, nf = N / 2 + 1;
    float* a = smem;
    float* pw = a + N;
    const long long trace = blockIdx.y;
    const int f = blockIdx.x;
    const float* xt = x + trace * t;
    for (int n = threadIdx.x; n < N; n += blockDim.x)
        a[n] = window[n] * padded_sample(xt, t, f * hop + n - pad, reflect);
    __syncthreads();
    for (int k = threadIdx.x; k < nf; k += blockDim.x) {
        float re = 0.0f, im = 0.0f;
        int idx = 0;  // k·n mod N, kept incrementally
        for (int n = 0; n < N; ++n) {
            re += a[n] * twiddles[2 * idx];
            im += a[n] * twiddles[2 * idx + 1];
            idx += k;
            if (idx >= N) idx -= N;
        }
        pw[k] = re * re + im * im;
    }
    __syncthreads();
    mel_log_write(out, pw, nf, fb, fb_range, trace, f, 1, frames, n_mels, log_kind, log_floor,
                  log_offset);
}

// Backward, step 1: per (frame, trace) the gradient of the windowed frame,
// dframes[trace, f, n] = window[n] · Σ_k Re(2 dP_k X_k e^{+2πikn/N}), with
// dP_k = Σ_m fb[m, k] · dy[trace, m, f] · compress'(M_m). Direct DFTs (n_fft ≤ 4096).
// Dynamic shared memory: N + 3·nf + n_mels floats.
extern "C" __global__ void log_mel_frames_backward_dft(
    float* dframes, const float* x, const float* dy, const float* window, const float* twiddles,
    const float* fb, const int* fb_range, int t, int n_fft, int hop, int pad, int reflect,
    int frames, int n_mels, int log_kind, float log_floor) {
    extern __shared__ float smem[];
    const int N = n_fft, nf = N / 2 + 1;
    float* a = smem;
    float* xr = a + N;
    float* xi = xr + nf;
    float* dp = xi + nf;
    float* dm = dp + nf;
    const long long trace = blockIdx.y;
    const int f = blockIdx.x;
    const float* xt = x + trace * t;
    for (int n = threadIdx.x; n < N; n += blockDim.x)
        a[n] = window[n] * padded_sample(xt, t, f * hop + n - pad, reflect);
    __syncthreads();
    for (int k = threadIdx.x; k < nf; k += blockDim.x) {
        float re = 0.0f, im = 0.0f;
        int idx = 0;
        for (int n = 0; n < N; ++n) {
            re += a[n] * twiddles[2 * idx];
            im += a[n] * twiddles[2 * idx + 1];
            idx += k;
            if (idx >= N) idx -= N;
        }
        xr[k] = re;
        xi[k] = im;
    }
    __syncthreads();
    for (int m = threadIdx.x; m < n_mels; m += blockDim.x) {
        const int lo = fb_range[2 * m], hi = fb_range[2 * m + 1];
        const float* w = fb + (long long)m * nf;
        float s = 0.0f;
        for (int k = lo; k < hi; ++k) s += w[k] * (xr[k] * xr[k] + xi[k] * xi[k]);
        dm[m] = dy[(trace * n_mels + m) * frames + f] * compress_grad(s, log_kind, log_floor);
    }
    __syncthreads();
    for (int k = threadIdx.x; k < nf; k += blockDim.x) {
        float s = 0.0f;
        for (int m = 0; m < n_mels; ++m) s += fb[(long long)m * nf + k] * dm[m];
        dp[k] = 2.0f * s;
    }
    __syncthreads();
    for (int k = threadIdx.x; k < nf; k += blockDim.x) {
        xr[k] *= dp[k];
        xi[k] *= dp[k];
    }
    __syncthreads();
    // Re(D e^{+iθ}) = D.re cos θ − D.im sin θ, and tw = (cos θ, −sin θ).
    float* out = dframes + (trace * frames + f) * (long long)N;
    for (int n = threadIdx.x; n < N; n += blockDim.x) {
        float s = 0.0f;
        int idx = 0;  // k·n mod N
        for (int k = 0; k < nf; ++k) {
            s += xr[k] * twiddles[2 * idx] + xi[k] * twiddles[2 * idx + 1];
            idx += n;
            if (idx >= N) idx -= N;
        }
        out[n] = window[n] * s;
    }
}

// Σ over the frames that read padded position p (0 ≤ p − f·hop < N) of their gradient.
__device__ __forceinline__ float padded_grad(const float* d, int p, int N, int hop, int frames) {
    int fhi = p / hop;
    if (fhi > frames - 1) fhi = frames - 1;
    const int flo = p - N + 1 <= 0 ? 0 : (p - N + 1 + hop - 1) / hop;
    float s = 0.0f;
    for (int f = flo; f <= fhi; ++f) s += d[(long long)f * N + p - f * hop];
    return s;
}

// Backward, step 2: dx[trace, j] = the gradients of every padded position that read x[j]
// (itself and, with reflect padding, its mirror images). A gather: no atomics.
extern "C" __global__ void log_mel_overlap_add_backward(float* dx, const float* dframes,
                                                        long long total, int t, int n_fft,
                                                        int hop, int pad, int reflect,
                                                        int frames) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long trace = i / t;
        const int j = (int)(i % t);
        const float* d = dframes + trace * frames * (long long)n_fft;
        float s = padded_grad(d, j + pad, n_fft, hop, frames);
        if (reflect && pad > 0) {
            if (j >= 1 && j <= pad) s += padded_grad(d, pad - j, n_fft, hop, frames);
            if (j >= t - 1 - pad && j <= t - 2)
                s += padded_grad(d, pad + 2 * (t - 1) - j, n_fft, hop, frames);
        }
        dx[i] = s;
    }
}

// Per image (one block each, blockDim a multiple of 32): top_db clipping (has_top_db), time
// resampling F → W (column w reads frame position w·(F−1)/(W−1), linear), normalisation
// (0 none, 1 min-max to [0, 1], 2 z-score with eps 1e-6). out [B, H, W], logmel [B, H, F].
__device__ __forceinline__ float resampled(const float* lm, int i, int F, int W, float scale,
                                           float lo) {
    const int r = i / W, c = i % W;
    const float pos = (float)c * scale;
    int f0 = (int)floorf(pos);
    if (f0 > F - 1) f0 = F - 1;
    const int f1 = f0 + 1 < F ? f0 + 1 : F - 1;
    const float t = pos - (float)f0;
    const float a = fmaxf(lm[(long long)r * F + f0], lo);
    const float b = fmaxf(lm[(long long)r * F + f1], lo);
    return a + (b - a) * t;
}

extern "C" __global__ void mel_image_finish(float* out, const float* logmel, int h, int f, int w,
                                            int has_top_db, float top_db, int normalize) {
    __shared__ float scratch[32];
    const float* lm = logmel + (long long)blockIdx.x * h * f;
    float* o = out + (long long)blockIdx.x * h * w;
    const int hw = h * w;
    float lo = -SF_INF;
    if (has_top_db) {
        float mx = -SF_INF;
        for (int i = threadIdx.x; i < h * f; i += blockDim.x) mx = fmaxf(mx, lm[i]);
        lo = block_max(mx, scratch) - top_db;
    }
    const float scale = (w > 1 && f > 1) ? (float)(f - 1) / (float)(w - 1) : 0.0f;
    if (normalize == 1) {
        float mn = SF_INF, mx = -SF_INF;
        for (int i = threadIdx.x; i < hw; i += blockDim.x) {
            const float v = resampled(lm, i, f, w, scale, lo);
            mn = fminf(mn, v);
            mx = fmaxf(mx, v);
        }
        mx = block_max(mx, scratch);
        mn = -block_max(-mn, scratch);
        const float span = mx - mn;
        for (int i = threadIdx.x; i < hw; i += blockDim.x) {
            const float v = resampled(lm, i, f, w, scale, lo);
            o[i] = span > 0.0f ? (v - mn) / span : 0.0f;
        }
    } else if (normalize == 2) {
        float s = 0.0f;
        for (int i = threadIdx.x; i < hw; i += blockDim.x) s += resampled(lm, i, f, w, scale, lo);
        const float mean = block_sum(s, scratch) / (float)hw;
        float q = 0.0f;
        for (int i = threadIdx.x; i < hw; i += blockDim.x) {
            const float d = resampled(lm, i, f, w, scale, lo) - mean;
            q += d * d;
        }
        const float inv = 1.0f / (sqrtf(block_sum(q, scratch) / (float)hw) + 1e-6f);
        for (int i = threadIdx.x; i < hw; i += blockDim.x)
            o[i] = (resampled(lm, i, f, w, scale, lo) - mean) * inv;
    } else {
        for (int i = threadIdx.x; i < hw; i += blockDim.x) o[i] = resampled(lm, i, f, w, scale, lo);
    }
}

// out[n, i] = mean over c of input[n, c, i] (one-channel images for the one-channel encoder).
extern "C" __global__ void mean_over_channels(float* out, const float* input, long long total,
                                              int channels, long long hw) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long n = i / hw, r = i % hw;
        float s = 0.0f;
        for (int c = 0; c < channels; ++c) s += input[(n * channels + c) * hw + r];
        out[i] = s * (1.0f / (float)channels);
    }
}
