// The wav2vec2 pretraining objective (SeisLM): the Gumbel product quantizer (hard choice,
// straight-through soft probabilities, codevector gather and their backward), the codebook
// perplexity (diversity loss) and the contrastive loss over cosine similarities. fp32 only: the
// objective works on fp32 activations. Every reduction is a fixed tree or a fixed-order loop:
// no float atomics, so results are bit-reproducible run to run.
// CPU twin: src/backend/cpu/wav2vec2.rs.

#define W2V_THREADS 256  // blockDim.x of every kernel here except the elementwise gather

// Block argmax of v over one block (ties: the lowest index, as the CPU's first `>`).
// `sv`/`si` are blockDim.x scratch slots; every thread gets the winner's index.
__device__ __forceinline__ int block_argmax(float v, int i, float* sv, int* si) {
    __syncthreads();
    sv[threadIdx.x] = v;
    si[threadIdx.x] = i;
    __syncthreads();
    for (int s = blockDim.x >> 1; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            float a = sv[threadIdx.x], b = sv[threadIdx.x + s];
            int ia = si[threadIdx.x], ib = si[threadIdx.x + s];
            // b wins when strictly larger, or equal with a lower index (a < 0: no candidate)
            if (ib >= 0 && (ia < 0 || b > a || (b == a && ib < ia))) {
                sv[threadIdx.x] = b;
                si[threadIdx.x] = ib;
            }
        }
        __syncthreads();
    }
    int r = si[0];
    __syncthreads();
    return r;
}

// Gumbel forward. One block per (row, group) of logits [rows·G, V]: y = (z + g)/τ with
// g = −log(−log u), u = Philox(seed, step, stream 0x47554d42, flat element index) clamped to
// [1e-10, 1 − 1e-7]; hard = argmax y; soft = softmax(y) (written [rows·G, V]).
extern "C" __global__ void gumbel_forward_f32(int* hard, float* soft, const float* logits,
                                              int vars, float tau, unsigned long long seed,
                                              unsigned int step) {
    __shared__ float scratch[32];
    __shared__ float sv[W2V_THREADS];
    __shared__ int si[W2V_THREADS];
    const long long base = (long long)blockIdx.x * vars;
    float best = -SF_INF;
    int bi = -1;
    for (int i = threadIdx.x; i < vars; i += blockDim.x) {
        float u = philox_uniform(seed, step, 0x47554d42u, (unsigned long long)(base + i));
        u = fminf(fmaxf(u, 1e-10f), 1.0f - 1e-7f);
        float y = (logits[base + i] - logf(-logf(u))) / tau;
        soft[base + i] = y;
        if (bi < 0 || y > best) { best = y; bi = i; }
    }
    int h = block_argmax(best, bi, sv, si);
    float m = soft[base + h];  // written by some thread before the barriers in block_argmax
    float s = 0.0f;
    for (int i = threadIdx.x; i < vars; i += blockDim.x) s += expf(soft[base + i] - m);
    s = block_sum(s, scratch);
    for (int i = threadIdx.x; i < vars; i += blockDim.x)
        soft[base + i] = expf(soft[base + i] - m) / s;
    if (threadIdx.x == 0) hard[blockIdx.x] = h;
}

// q[(r·G + g)·d + k] = code[(g·V + hard[r·G + g])·d + k], one thread per element.
extern "C" __global__ void codevector_gather_f32(float* q, const float* code, const int* hard,
                                                 long long n, int groups, int vars, int d) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        long long rg = e / d;
        int k = (int)(e % d), g = (int)(rg % groups);
        q[e] = code[((long long)g * vars + hard[rg]) * d + k];
    }
}

// Straight-through gradient to the logits (written): one block per (row, group),
//   dp_u = code[g·V + u] · dq[r, g],  dlogits_u = soft_u (dp_u − Σ soft·dp) / τ.
// A warp per codevector u (lanes over d), dp in dynamic shared memory (V floats).
extern "C" __global__ void codevector_backward_logits_f32(float* dlogits, const float* soft,
                                                          const float* code, const float* dq,
                                                          int groups, int vars, int d,
                                                          float tau) {
    extern __shared__ float smem[];
    __shared__ float scratch[32];
    const long long rg = blockIdx.x;
    const int g = (int)(rg % groups);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const float* dqr = dq + rg * d;
    // uniform trip count over the block (the warp's u may be past the end): every warp
    // shuffles the same number of times, which the CPU emulation of tools/cuda_emu needs
    for (int u0 = 0; u0 < vars; u0 += nw) {
        const int u = u0 + warp;
        float s = 0.0f;
        if (u < vars) {
            const float* cr = code + ((long long)g * vars + u) * d;
            for (int k = lane; k < d; k += 32) s += cr[k] * dqr[k];
        }
        s = warp_sum(s);
        if (lane == 0 && u < vars) smem[u] = s;
    }
    __syncthreads();
    const float* sr = soft + rg * vars;
    float dot = 0.0f;
    for (int u = threadIdx.x; u < vars; u += blockDim.x) dot += sr[u] * smem[u];
    dot = block_sum(dot, scratch);
    for (int u = threadIdx.x; u < vars; u += blockDim.x)
        dlogits[rg * vars + u] = sr[u] * (smem[u] - dot) / tau;
}

// Codevector gradient (accumulated): dcode[g·V + v] += Σ_{r : hard[r·G + g] = v} dq[r, g], in
// row order. One block per codevector (g, v): the block scans the rows a chunk at a time,
// compacts the matching rows in order (a block prefix sum of the flags), and each thread adds
// its dims over them. Deterministic, no atomics.
extern "C" __global__ void codevector_backward_code_f32(float* dcode, const float* dq,
                                                        const int* hard, int rows, int groups,
                                                        int vars, int d) {
    __shared__ int flag[W2V_THREADS];
    __shared__ int list[W2V_THREADS];
    const int gv = blockIdx.x, g = gv / vars, v = gv % vars;
    const int nt = blockDim.x;
    for (int k0 = 0; k0 < d; k0 += nt) {
        const int k = k0 + threadIdx.x;
        float acc = 0.0f;
        for (int r0 = 0; r0 < rows; r0 += nt) {
            const int r = r0 + threadIdx.x;
            const int f = (r < rows && hard[(long long)r * groups + g] == v) ? 1 : 0;
            __syncthreads();
            flag[threadIdx.x] = f;
            __syncthreads();
            // inclusive Hillis–Steele scan of the flags
            for (int o = 1; o < nt; o <<= 1) {
                int add = (int)threadIdx.x >= o ? flag[threadIdx.x - o] : 0;
                __syncthreads();
                flag[threadIdx.x] += add;
                __syncthreads();
            }
            if (f) list[flag[threadIdx.x] - 1] = r;
            const int count = flag[nt - 1];
            __syncthreads();
            if (k < d)
                for (int i = 0; i < count; ++i)
                    acc += dq[((long long)list[i] * groups + g) * d + k];
        }
        if (k < d) dcode[(long long)gv * d + k] += acc;
    }
}

// Batch-weighted marginal of the probabilities: marg[c] = Σ_r w_r p[r, c] / wsum over
// p [rows, C] (C = G·V). Block of W2V_THREADS: 32 columns × 8 row lanes, each lane sums its
// rows in order, then the 8 lanes are added in order.
extern "C" __global__ void perplexity_marginal_f32(float* marg, const float* probs,
                                                   const float* weight, int rows, int cols,
                                                   float inv_wsum) {
    __shared__ float part[W2V_THREADS];
    const int col = blockIdx.x * 32 + (threadIdx.x & 31), lane = threadIdx.x >> 5;
    const int nl = blockDim.x >> 5;
    float s = 0.0f;
    if (col < cols)
        for (int r = lane; r < rows; r += nl) {
            float w = weight[r];
            if (w != 0.0f) s += w * probs[(long long)r * cols + col];
        }
    part[threadIdx.x] = s;
    __syncthreads();
    if (lane == 0 && col < cols) {
        float t = 0.0f;
        for (int l = 0; l < nl; ++l) t += part[l * 32 + (threadIdx.x & 31)];
        marg[col] = t * inv_wsum;
    }
}

// Per group g (one block each): ppl[g] = exp(−Σ_v p̄ log(p̄ + 1e-7)) and, scaled for the
// backward, dmarg[g·V + v] = dscale · (−ppl_g (log(p̄ + 1e-7) + p̄ / (p̄ + 1e-7))).
extern "C" __global__ void perplexity_finish_f32(float* ppl, float* dmarg, const float* marg,
                                                 int vars, float dscale) {
    __shared__ float scratch[32];
    const float* m = marg + (long long)blockIdx.x * vars;
    float h = 0.0f;
    for (int v = threadIdx.x; v < vars; v += blockDim.x) h += m[v] * logf(m[v] + 1e-7f);
    h = -block_sum(h, scratch);
    const float e = expf(h);
    for (int v = threadIdx.x; v < vars; v += blockDim.x) {
        float p = m[v];
        dmarg[(long long)blockIdx.x * vars + v] = dscale * (-e * (logf(p + 1e-7f) + p / (p + 1e-7f)));
    }
    if (threadIdx.x == 0) ppl[blockIdx.x] = e;
}

// dlogits (written) of the perplexity term: one block per (row, group) of p [rows·G, V]:
// gp_v = w_r · dmarg[g·V + v], dlogits = p (gp − Σ p·gp); zero for rows of weight 0.
extern "C" __global__ void perplexity_backward_f32(float* dlogits, const float* probs,
                                                   const float* weight, const float* dmarg,
                                                   int groups, int vars) {
    __shared__ float scratch[32];
    const long long rg = blockIdx.x;
    const int g = (int)(rg % groups);
    const float w = weight[rg / groups];
    const float* p = probs + rg * vars;
    const float* dm = dmarg + (long long)g * vars;
    float dot = 0.0f;
    for (int v = threadIdx.x; v < vars; v += blockDim.x) dot += p[v] * w * dm[v];
    dot = block_sum(dot, scratch);
    for (int v = threadIdx.x; v < vars; v += blockDim.x)
        dlogits[rg * vars + v] = w == 0.0f ? 0.0f : p[v] * (w * dm[v] - dot);
}

// Contrastive loss, forward and the context gradient. One block per masked frame m with
// candidates cand[m, 0..=K] (column 0 the positive p = cand[m, 0]): cos_k = c_p·q_j /
// max(‖c_p‖‖q_j‖, 1e-8), logits_k = cos_k/κ, −∞ for a negative identical to the positive;
// loss[m] = logsumexp − logits_0; g_k = dloss (softmax_k − [k = 0]) / κ;
// dc[p] = Σ_k g_k (q_j/den_k − cos_k c_p/max(‖c_p‖², 1e-16)) (written; rows never a positive
// are left as they are). Per candidate it stores coef_a = g/den and coef_b = g·cos for the
// target gradient. Dynamic shared memory: 2f + 3(K+1) floats.
extern "C" __global__ void contrastive_forward_f32(float* loss, float* dc, float* coef_a,
                                                   float* coef_b, const float* c, const float* q,
                                                   const int* cand, int ncand, int f,
                                                   float kappa, float dloss) {
    extern __shared__ float smem[];
    __shared__ float scratch[32];
    float* cs = smem;                 // [f] c_p
    float* qp = smem + f;             // [f] q_p
    float* lg = smem + 2 * f;         // [ncand] logits
    float* cosv = lg + ncand;         // [ncand] cos
    float* den = cosv + ncand;        // [ncand] max(‖c‖‖q_j‖, 1e-8)
    const long long m = blockIdx.x;
    const int* cm = cand + m * ncand;
    const long long p = cm[0];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float cn2 = 0.0f;
    for (int i = threadIdx.x; i < f; i += blockDim.x) {
        float a = c[p * f + i];
        cs[i] = a;
        qp[i] = q[p * f + i];
        cn2 += a * a;
    }
    cn2 = block_sum(cn2, scratch);  // its barriers also publish cs and qp
    const float cn = sqrtf(cn2);
    for (int k0 = 0; k0 < ncand; k0 += nw) {  // uniform trip count, as in codevector_backward
        const int k = k0 + warp;
        float dot = 0.0f, qq = 0.0f, diff = 0.0f;
        if (k < ncand) {
            const float* qj = q + (long long)cm[k] * f;
            for (int i = lane; i < f; i += 32) {
                float b = qj[i];
                dot += cs[i] * b;
                qq += b * b;
                diff += b != qp[i] ? 1.0f : 0.0f;
            }
        }
        dot = warp_sum(dot);
        qq = warp_sum(qq);
        diff = warp_sum(diff);
        if (lane == 0 && k < ncand) {
            float dn = fmaxf(cn * sqrtf(qq), 1e-8f);
            bool same = k > 0 && diff == 0.0f;
            cosv[k] = same ? 0.0f : dot / dn;
            lg[k] = same ? -SF_INF : (dot / dn) / kappa;
            den[k] = dn;
        }
    }
    __syncthreads();
    float mx = -SF_INF;
    for (int k = threadIdx.x; k < ncand; k += blockDim.x) mx = fmaxf(mx, lg[k]);
    mx = block_max(mx, scratch);
    float z = 0.0f;
    for (int k = threadIdx.x; k < ncand; k += blockDim.x) z += expf(lg[k] - mx);
    z = block_sum(z, scratch);
    if (threadIdx.x == 0) loss[m] = mx + logf(z) - lg[0];
    // per-candidate gradient coefficients (g_k into lg, in place, after everyone read lg)
    __syncthreads();
    for (int k = threadIdx.x; k < ncand; k += blockDim.x) {
        float gk = lg[k] == -SF_INF ? 0.0f
                                     : dloss * (expf(lg[k] - mx) / z - (k == 0 ? 1.0f : 0.0f)) / kappa;
        lg[k] = gk;
        coef_a[m * ncand + k] = gk / den[k];
        coef_b[m * ncand + k] = gk * cosv[k];
    }
    __syncthreads();
    float sb = 0.0f;  // Σ g_k cos_k, the same in every thread (fixed order)
    for (int k = 0; k < ncand; ++k) sb += lg[k] * cosv[k];
    const float inv_cn2 = 1.0f / fmaxf(cn * cn, 1e-16f);
    for (int i = threadIdx.x; i < f; i += blockDim.x) {
        float a = 0.0f;
        for (int k = 0; k < ncand; ++k)
            if (lg[k] != 0.0f) a += lg[k] / den[k] * q[(long long)cm[k] * f + i];
        dc[p * f + i] = a - sb * cs[i] * inv_cn2;
    }
}

// Target gradient (written): one block per row j of q. The candidate slots that name j are
// listed, in increasing slot order, by entries[offsets[j]..offsets[j+1]] (slot = m·(K+1) + k);
//   dq[j] = Σ coef_a · c_{p_m} − q_j / max(‖q_j‖², 1e-16) · Σ coef_b.
extern "C" __global__ void contrastive_backward_q_f32(float* dq, const float* c, const float* q,
                                                      const float* coef_a, const float* coef_b,
                                                      const int* cand, const int* offsets,
                                                      const int* entries, int ncand, int f) {
    __shared__ float scratch[32];
    const long long j = blockIdx.x;
    const int e0 = offsets[j], e1 = offsets[j + 1];
    if (e0 == e1) {
        for (int i = threadIdx.x; i < f; i += blockDim.x) dq[j * f + i] = 0.0f;
        return;
    }
    float qq = 0.0f;
    for (int i = threadIdx.x; i < f; i += blockDim.x) qq += q[j * f + i] * q[j * f + i];
    qq = block_sum(qq, scratch);
    float sb = 0.0f;
    for (int e = e0; e < e1; ++e) sb += coef_b[entries[e]];
    const float inv_qn2 = 1.0f / fmaxf(qq, 1e-16f);
    for (int i = threadIdx.x; i < f; i += blockDim.x) {
        float a = 0.0f;
        for (int e = e0; e < e1; ++e) {
            int s = entries[e];
            float ca = coef_a[s];
            if (ca != 0.0f) a += ca * c[(long long)cand[s - s % ncand] * f + i];
        }
        dq[j * f + i] = a - sb * q[j * f + i] * inv_qn2;
    }
}
