// Fused multi-head attention, forward and backward, in the flash-attention manner: one block
// per (query tile, batch·head); keys and values stream through shared memory in tiles of 32
// with an online softmax, so the [Nq, Nk] score matrix never reaches global memory.
// Each warp owns ATT_QPW query rows; lane j scores key j of the tile, and for the weighted sum
// each lane owns the head dimensions lane, lane+32, ... (head_dim <= 128).
// Q, K, V are read on strided layouts (fused qkv or separate projections, see
// src/backend/cpu/attention.rs, the CPU twin). lse keeps each query's log-sum-exp for the
// backward pass, which recomputes probabilities instead of storing them:
//   dq kernel: one warp per query, loop over key tiles (also writes D_i = dO_i . O_i);
//   dk/dv kernel: one warp per key, loop over query tiles. No atomics, deterministic.

#define ATT_MAX_D 128
#define ATT_KT 32
#define ATT_WARPS 4
#define ATT_QPW 4
#define ATT_ROWS (ATT_WARPS * ATT_QPW)
#define ATT_NR (ATT_MAX_D / 32)

template <typename T>
__device__ void attention_forward_impl(T* O, float* L, const T* Q, const T* K, const T* V, int H,
                                       int Nq, int Nk, int D, int qs, int qo, int ks, int ko,
                                       int vs, int vo, float scale) {
    extern __shared__ float smem[];
    float* Ks = smem;                      // [KT][D+1]
    float* Vs = Ks + ATT_KT * (D + 1);     // [KT][D]
    float* Qs = Vs + ATT_KT * D;           // [ROWS][D], pre-scaled
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int q0 = blockIdx.x * ATT_ROWS;
    for (int e = threadIdx.x; e < ATT_ROWS * D; e += blockDim.x) {
        int r = e / D, d = e % D, qi = q0 + r;
        Qs[e] = qi < Nq ? ld(Q, ((long long)b * Nq + qi) * qs + qo + h * D + d) * scale : 0.0f;
    }
    float m[ATT_QPW], l[ATT_QPW], acc[ATT_QPW][ATT_NR];
#pragma unroll
    for (int a = 0; a < ATT_QPW; ++a) {
        m[a] = -SF_INF;
        l[a] = 0.0f;
#pragma unroll
        for (int r = 0; r < ATT_NR; ++r) acc[a][r] = 0.0f;
    }
    for (int k0 = 0; k0 < Nk; k0 += ATT_KT) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_KT * D; e += blockDim.x) {
            int j = e / D, d = e % D, kj = k0 + j;
            float kv = 0.0f, vv = 0.0f;
            if (kj < Nk) {
                kv = ld(K, ((long long)b * Nk + kj) * ks + ko + h * D + d);
                vv = ld(V, ((long long)b * Nk + kj) * vs + vo + h * D + d);
            }
            Ks[j * (D + 1) + d] = kv;
            Vs[j * D + d] = vv;
        }
        __syncthreads();
        const bool valid = k0 + lane < Nk;
        const int tile = min(ATT_KT, Nk - k0);
#pragma unroll
        for (int a = 0; a < ATT_QPW; ++a) {
            const float* q = Qs + (warp * ATT_QPW + a) * D;
            float s = -SF_INF;
            if (valid) {
                s = 0.0f;
                for (int d = 0; d < D; ++d) s = fmaf(q[d], Ks[lane * (D + 1) + d], s);
            }
            float mnew = fmaxf(m[a], warp_max(s));
            float p = valid ? expf(s - mnew) : 0.0f;
            float corr = expf(m[a] - mnew);
            l[a] = l[a] * corr + warp_sum(p);
#pragma unroll
            for (int r = 0; r < ATT_NR; ++r) acc[a][r] *= corr;
            for (int j = 0; j < tile; ++j) {
                float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
                for (int r = 0; r < ATT_NR; ++r) {
                    int d = lane + 32 * r;
                    if (d < D) acc[a][r] = fmaf(pj, Vs[j * D + d], acc[a][r]);
                }
            }
            m[a] = mnew;
        }
    }
#pragma unroll
    for (int a = 0; a < ATT_QPW; ++a) {
        int qi = q0 + warp * ATT_QPW + a;
        if (qi >= Nq) continue;
        float inv = 1.0f / l[a];
#pragma unroll
        for (int r = 0; r < ATT_NR; ++r) {
            int d = lane + 32 * r;
            if (d < D) st(O, ((long long)b * Nq + qi) * (H * D) + h * D + d, acc[a][r] * inv);
        }
        if (lane == 0) L[((long long)b * H + h) * Nq + qi] = m[a] + logf(l[a]);
    }
}

// dQ and D_i = dO_i . O_i (written to Dv for the dk/dv kernel).
template <typename T>
__device__ void attention_backward_dq_impl(T* dQ, float* Dv, const T* Q, const T* K, const T* V,
                                           const T* O, const T* dO, const float* L, int H, int Nq,
                                           int Nk, int D, int qs, int qo, int ks, int ko, int vs,
                                           int vo, int dqs, int dqo, float scale) {
    extern __shared__ float smem[];
    float* Ks = smem;                      // [KT][D+1]
    float* Vs = Ks + ATT_KT * (D + 1);     // [KT][D+1]
    float* Qs = Vs + ATT_KT * (D + 1);     // [ROWS][D] pre-scaled
    float* dOs = Qs + ATT_ROWS * D;        // [ROWS][D]
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int q0 = blockIdx.x * ATT_ROWS;
    for (int e = threadIdx.x; e < ATT_ROWS * D; e += blockDim.x) {
        int r = e / D, d = e % D, qi = q0 + r;
        bool ok = qi < Nq;
        Qs[e] = ok ? ld(Q, ((long long)b * Nq + qi) * qs + qo + h * D + d) * scale : 0.0f;
        dOs[e] = ok ? ld(dO, ((long long)b * Nq + qi) * (H * D) + h * D + d) : 0.0f;
    }
    __syncthreads();
    float Di[ATT_QPW], Li[ATT_QPW], acc[ATT_QPW][ATT_NR];
#pragma unroll
    for (int a = 0; a < ATT_QPW; ++a) {
        int qi = q0 + warp * ATT_QPW + a;
        float part = 0.0f;
        if (qi < Nq)
            for (int d = lane; d < D; d += 32)
                part += dOs[(warp * ATT_QPW + a) * D + d] * ld(O, ((long long)b * Nq + qi) * (H * D) + h * D + d);
        Di[a] = warp_sum(part);
        Li[a] = qi < Nq ? L[((long long)b * H + h) * Nq + qi] : 0.0f;
        if (qi < Nq && lane == 0) Dv[((long long)b * H + h) * Nq + qi] = Di[a];
#pragma unroll
        for (int r = 0; r < ATT_NR; ++r) acc[a][r] = 0.0f;
    }
    for (int k0 = 0; k0 < Nk; k0 += ATT_KT) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_KT * D; e += blockDim.x) {
            int j = e / D, d = e % D, kj = k0 + j;
            float kv = 0.0f, vv = 0.0f;
            if (kj < Nk) {
                kv = ld(K, ((long long)b * Nk + kj) * ks + ko + h * D + d);
                vv = ld(V, ((long long)b * Nk + kj) * vs + vo + h * D + d);
            }
            Ks[j * (D + 1) + d] = kv;
            Vs[j * (D + 1) + d] = vv;
        }
        __syncthreads();
        const bool valid = k0 + lane < Nk;
        const int tile = min(ATT_KT, Nk - k0);
#pragma unroll
        for (int a = 0; a < ATT_QPW; ++a) {
            const float* q = Qs + (warp * ATT_QPW + a) * D;
            const float* g = dOs + (warp * ATT_QPW + a) * D;
            float ds = 0.0f;
            if (valid) {
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < D; ++d) {
                    s = fmaf(q[d], Ks[lane * (D + 1) + d], s);
                    dp = fmaf(g[d], Vs[lane * (D + 1) + d], dp);
                }
                float p = expf(s - Li[a]);
                ds = p * (dp - Di[a]);
            }
            for (int j = 0; j < tile; ++j) {
                float dsj = __shfl_sync(0xffffffffu, ds, j);
#pragma unroll
                for (int r = 0; r < ATT_NR; ++r) {
                    int d = lane + 32 * r;
                    if (d < D) acc[a][r] = fmaf(dsj, Ks[j * (D + 1) + d], acc[a][r]);
                }
            }
        }
    }
#pragma unroll
    for (int a = 0; a < ATT_QPW; ++a) {
        int qi = q0 + warp * ATT_QPW + a;
        if (qi >= Nq) continue;
#pragma unroll
        for (int r = 0; r < ATT_NR; ++r) {
            int d = lane + 32 * r;
            if (d < D) st(dQ, ((long long)b * Nq + qi) * dqs + dqo + h * D + d, acc[a][r] * scale);
        }
    }
}

// dK and dV: one warp per key row, streaming query tiles (q pre-scaled, dO, L, D_i).
template <typename T>
__device__ void attention_backward_dkdv_impl(T* dK, T* dV, const T* Q, const T* K, const T* V,
                                             const T* dO, const float* L, const float* Dv, int H,
                                             int Nq, int Nk, int D, int qs, int qo, int ks, int ko,
                                             int vs, int vo, int dks, int dko, int dvs, int dvo,
                                             float scale) {
    extern __shared__ float smem[];
    float* Qs = smem;                       // [KT][D+1] (a tile of 32 queries)
    float* dOs = Qs + ATT_KT * (D + 1);     // [KT][D+1]
    float* Ls = dOs + ATT_KT * (D + 1);     // [KT]
    float* Ds = Ls + ATT_KT;                // [KT]
    float* Kr = Ds + ATT_KT;                // [ROWS][D]
    float* Vr = Kr + ATT_ROWS * D;          // [ROWS][D]
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int j0 = blockIdx.x * ATT_ROWS;
    for (int e = threadIdx.x; e < ATT_ROWS * D; e += blockDim.x) {
        int r = e / D, d = e % D, kj = j0 + r;
        bool ok = kj < Nk;
        Kr[e] = ok ? ld(K, ((long long)b * Nk + kj) * ks + ko + h * D + d) : 0.0f;
        Vr[e] = ok ? ld(V, ((long long)b * Nk + kj) * vs + vo + h * D + d) : 0.0f;
    }
    float dk[ATT_QPW][ATT_NR], dv[ATT_QPW][ATT_NR];
#pragma unroll
    for (int a = 0; a < ATT_QPW; ++a)
#pragma unroll
        for (int r = 0; r < ATT_NR; ++r) { dk[a][r] = 0.0f; dv[a][r] = 0.0f; }
    for (int i0 = 0; i0 < Nq; i0 += ATT_KT) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_KT * D; e += blockDim.x) {
            int i = e / D, d = e % D, qi = i0 + i;
            float qv = 0.0f, gv = 0.0f;
            if (qi < Nq) {
                qv = ld(Q, ((long long)b * Nq + qi) * qs + qo + h * D + d) * scale;
                gv = ld(dO, ((long long)b * Nq + qi) * (H * D) + h * D + d);
            }
            Qs[i * (D + 1) + d] = qv;
            dOs[i * (D + 1) + d] = gv;
        }
        for (int i = threadIdx.x; i < ATT_KT; i += blockDim.x) {
            int qi = i0 + i;
            Ls[i] = qi < Nq ? L[((long long)b * H + h) * Nq + qi] : 0.0f;
            Ds[i] = qi < Nq ? Dv[((long long)b * H + h) * Nq + qi] : 0.0f;
        }
        __syncthreads();
        const bool valid = i0 + lane < Nq;
        const int tile = min(ATT_KT, Nq - i0);
#pragma unroll
        for (int a = 0; a < ATT_QPW; ++a) {
            const float* kr = Kr + (warp * ATT_QPW + a) * D;
            const float* vr = Vr + (warp * ATT_QPW + a) * D;
            float p = 0.0f, ds = 0.0f;
            if (valid) {
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < D; ++d) {
                    s = fmaf(Qs[lane * (D + 1) + d], kr[d], s);
                    dp = fmaf(dOs[lane * (D + 1) + d], vr[d], dp);
                }
                p = expf(s - Ls[lane]);
                ds = p * (dp - Ds[lane]);
            }
            for (int i = 0; i < tile; ++i) {
                float pi = __shfl_sync(0xffffffffu, p, i);
                float dsi = __shfl_sync(0xffffffffu, ds, i);
#pragma unroll
                for (int r = 0; r < ATT_NR; ++r) {
                    int d = lane + 32 * r;
                    if (d < D) {
                        dv[a][r] = fmaf(pi, dOs[i * (D + 1) + d], dv[a][r]);
                        dk[a][r] = fmaf(dsi, Qs[i * (D + 1) + d], dk[a][r]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int a = 0; a < ATT_QPW; ++a) {
        int kj = j0 + warp * ATT_QPW + a;
        if (kj >= Nk) continue;
#pragma unroll
        for (int r = 0; r < ATT_NR; ++r) {
            int d = lane + 32 * r;
            if (d < D) {
                st(dK, ((long long)b * Nk + kj) * dks + dko + h * D + d, dk[a][r]);
                st(dV, ((long long)b * Nk + kj) * dvs + dvo + h * D + d, dv[a][r]);
            }
        }
    }
}

#define INSTANTIATE(SUF, T)                                                                          \
    extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32) attention_forward_##SUF(            \
        T* o, float* lse, const T* q, const T* k, const T* v, int heads, int seq_q, int seq_k,       \
        int head_dim, int qs, int qo, int ks, int ko, int vs, int vo, float scale) {                 \
        attention_forward_impl(o, lse, q, k, v, heads, seq_q, seq_k, head_dim, qs, qo, ks, ko, vs,   \
                               vo, scale);                                                           \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32) attention_backward_dq_##SUF(        \
        T* dq, float* delta, const T* q, const T* k, const T* v, const T* o, const T* dout,          \
        const float* lse, int heads, int seq_q, int seq_k, int head_dim, int qs, int qo, int ks,     \
        int ko, int vs, int vo, int dqs, int dqo, float scale) {                                     \
        attention_backward_dq_impl(dq, delta, q, k, v, o, dout, lse, heads, seq_q, seq_k, head_dim,  \
                                   qs, qo, ks, ko, vs, vo, dqs, dqo, scale);                         \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32) attention_backward_dkdv_##SUF(      \
        T* dk, T* dv, const T* q, const T* k, const T* v, const T* dout, const float* lse,           \
        const float* delta, int heads, int seq_q, int seq_k, int head_dim, int qs, int qo, int ks,   \
        int ko, int vs, int vo, int dks, int dko, int dvs, int dvo, float scale) {                   \
        attention_backward_dkdv_impl(dk, dv, q, k, v, dout, lse, delta, heads, seq_q, seq_k,         \
                                     head_dim, qs, qo, ks, ko, vs, vo, dks, dko, dvs, dvo, scale);   \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_t)
