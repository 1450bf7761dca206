// Tensor-core attention (attention variant 2), FlashAttention-2 style; the backward pass is at
// the end of the file. Forward: one block per
// (64-query tile, batch·head), 128 threads = 4 warps, each warp owning 16 query rows.
// Q, K, V are bf16 on the strided layouts of variant 1 (element (b, n, h, d) of Q at
// (b·Nq + n)·qs + qo + h·D + d; see src/backend/cpu/attention.rs, the CPU twin); O is
// [B, Nq, H·D] bf16 and lse [B, H, Nq] f32 holds each query's natural-log log-sum-exp of its
// scaled scores, the same meaning as kernels/attention.cu's, so variant 1's backward kernels
// can consume this forward's outputs.
//
// Per block: the Q tile [64][D] and double-buffered K and V tiles [64][D] (64 keys) travel
// global -> shared with 16-byte cp.async (zero-filled past seq_q / seq_k); tile kt + 1 is in
// flight while tile kt is used. Shared tiles are XOR-swizzled at 16-byte granularity so that
// the 8 rows one ldmatrix phase reads (8 consecutive rows, one 16-byte chunk) fall in 8
// different bank groups (checked by the emulator's conflict counter); see atc_sw.
// Per warp and key tile: Q fragments stay in registers (loaded once with ldmatrix.x4);
// S = Q·Kᵀ (16×64) with mma.sync.m16n8k16 (K rows read with ldmatrix.x4 as the "col" B
// operand); keys past seq_k are masked to -inf; online softmax in fp32 registers in the
// base-2 domain (scale·log2 e folded into the scores), row maxima by quad shuffles (the 4
// lanes of a row), row sums kept per lane and reduced once at the end; P is rounded to bf16 in
// registers and reused as the A fragment of P·V (the m16n8 C layout of two adjacent n8 tiles
// is the m16k16 A layout), V read with ldmatrix.x4.trans.
// Requirements (the Rust wrapper, src/backend/cuda/attention_tc.rs, checks them and otherwise
// uses variant 1): bf16 tensors; D in {16, 32, 64, 80, 128}, or 20 (SeisLM-base), computed
// padded to 32 with zero-filled columns; strides, offsets and buffer offsets multiples of 8
// elements (16-byte cp.async; 4 elements and 8-byte cp.async at D = 20); seq_q, seq_k >= 1.
// __launch_bounds__(128, 1): with the thread count alone ptxas capped some of these kernels at
// 128 registers and spilled; one block per SM as the minimum lets them take up to 255
// (tests/tc_sass.rs asserts no spills).
// Dynamic shared memory 5·64·D·2 bytes, D padded (10 KiB at D = 16 ... 80 KiB at D = 128;
// above 48 KiB the launch opts in).
#include "tc.cuh"

#define ATC_BQ 64
#define ATC_BK 64
#define ATC_THREADS 128

// Element offset of (row, col) in a swizzled [rows][D] bf16 tile; the 16-byte chunk c = col / 8
// of a row is stored at position c ^ f(row), a permutation of the row's D / 8 chunks:
//   D / 8 a multiple of 8 (64, 128): low 3 bits ^= row & 7;
//   D / 8 == 4 (32, 64-byte rows): ^= (row >> 1) & 3;
//   D / 8 == 2 or 10 (16, 80: 32- or 160-byte rows, rows r and r + 4 share banks): ^= (row >> 2) & 1.
template <int D>
__device__ __forceinline__ int atc_sw(int row, int col) {
    constexpr int NC = D / 8;
    const int c = col >> 3;
    const int f = NC % 8 == 0 ? (row & 7) : NC == 4 ? ((row >> 1) & 3) : ((row >> 2) & 1);
    return row * D + ((c ^ f) << 3) + (col & 7);
}

// Copies rows r0 .. r0 + 63 of one head (row i at base + i·stride, DH elements) into a swizzled
// [64][D] tile; rows at or past n, and columns DH .. D - 1 (head dim 20 padded to 32), are
// zero-filled (cp.async with src-size 0, reading nothing). 16-byte copies where DH is a multiple
// of 8, else 8-byte ones.
template <int D, int DH>
__device__ __forceinline__ void atc_load_tile(bf16_t* tile, const bf16_t* base, int stride, int r0,
                                              int n, int tid) {
    constexpr int W = DH % 8 == 0 ? 8 : 4;  // elements per copy
    constexpr int NC = D / W;
#pragma unroll
    for (int i = 0; i < ATC_BK * NC / ATC_THREADS; ++i) {  // D / 8 is even: a whole number
        const int e = tid + i * ATC_THREADS;
        const int r = e / NC, c = e % NC;
        const bool full = r0 + r < n && c * W < DH;
        const bf16_t* p = full ? base + (long long)(r0 + r) * stride + c * W : base;
        if (W == 8) cp_async_16(tile + atc_sw<D>(r, c * W), p, full);
        else cp_async_8(tile + atc_sw<D>(r, c * W), p, full);
    }
}

// Two f32 as bf16 in one register, the first in the low half (mma operand order).
__device__ __forceinline__ unsigned atc_pack(float lo, float hi) {
    return (unsigned)f32_to_bf16(lo) | ((unsigned)f32_to_bf16(hi) << 16);
}

// D: the head dim as computed (a multiple of 16); DH: as stored (D, or 20 with D = 32).
template <int D, int DH>
__device__ void attention_tc_forward_impl(bf16_t* __restrict__ O, float* __restrict__ L,
                                          const bf16_t* __restrict__ Q,
                                          const bf16_t* __restrict__ K,
                                          const bf16_t* __restrict__ V, int H, int Nq, int Nk,
                                          int qs, int qo, int ks, int ko, int vs, int vo,
                                          float scale) {
    TC_DYNAMIC_SMEM(atc_smem);
    bf16_t* Qs = (bf16_t*)atc_smem;      // [64][D]
    bf16_t* Ks = Qs + ATC_BQ * D;        // 2 × [64][D]
    bf16_t* Vs = Ks + 2 * ATC_BK * D;    // 2 × [64][D]
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int q0 = blockIdx.x * ATC_BQ;
    // ldmatrix.x4: lane gives row (lane & 7) of matrix (lane >> 3); mma: g = row, t4 = column pair.
    const int lm = lane >> 3, lr = lane & 7, g = lane >> 2, t4 = lane & 3;
    const bf16_t* qb = Q + (long long)b * Nq * qs + qo + h * DH;
    const bf16_t* kb = K + (long long)b * Nk * ks + ko + h * DH;
    const bf16_t* vb = V + (long long)b * Nk * vs + vo + h * DH;
    const float sl2 = scale * 1.4426950408889634f;  // scores to the base-2 domain

    atc_load_tile<D, DH>(Qs, qb, qs, q0, Nq, tid);
    atc_load_tile<D, DH>(Ks, kb, ks, 0, Nk, tid);
    atc_load_tile<D, DH>(Vs, vb, vs, 0, Nk, tid);
    cp_async_commit();

    unsigned qf[D / 16][4];
    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) o[j][v] = 0.0f;
    // Rows g and g + 8 of the warp's 16: running maximum (base 2) and this lane's part of the sum.
    float m[2] = {-SF_INF, -SF_INF}, l[2] = {0.0f, 0.0f};

    const int ntiles = (Nk + ATC_BK - 1) / ATC_BK;
    for (int kt = 0; kt < ntiles; ++kt) {
        cp_async_wait<0>();  // this thread's copies of tile kt (and at kt = 0, of Q) have landed
        __syncthreads();     // everyone's have; everyone is done with tile kt - 1's buffer
        if (kt + 1 < ntiles) {
            const int nb = (kt + 1) & 1;
            atc_load_tile<D, DH>(Ks + nb * ATC_BK * D, kb, ks, (kt + 1) * ATC_BK, Nk, tid);
            atc_load_tile<D, DH>(Vs + nb * ATC_BK * D, vb, vs, (kt + 1) * ATC_BK, Nk, tid);
        }
        cp_async_commit();
        if (kt == 0) {
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk)
                ldmatrix_x4(qf[kk], Qs + atc_sw<D>(warp * 16 + (lm & 1) * 8 + lr, kk * 16 + (lm >> 1) * 8));
        }
        const bf16_t* kt_s = Ks + (kt & 1) * ATC_BK * D;
        const bf16_t* vt_s = Vs + (kt & 1) * ATC_BK * D;

        // S = Q·Kᵀ: 8 n8 tiles of keys; s[ni][v] at row g + 8 (v >> 1), key ni·8 + 2 t4 + (v & 1).
        float s[8][4];
#pragma unroll
        for (int ni = 0; ni < 8; ++ni)
#pragma unroll
            for (int v = 0; v < 4; ++v) s[ni][v] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
            for (int nj = 0; nj < 4; ++nj) {
                // matrix lm: keys nj·16 + 8 (lm >> 1), dims kk·16 + 8 (lm & 1)
                unsigned t[4];
                ldmatrix_x4(t, kt_s + atc_sw<D>(nj * 16 + (lm >> 1) * 8 + lr, kk * 16 + (lm & 1) * 8));
                const unsigned b0[2] = {t[0], t[1]}, b1[2] = {t[2], t[3]};
                mma_bf16_16816(s[2 * nj], qf[kk], b0, s[2 * nj]);
                mma_bf16_16816(s[2 * nj + 1], qf[kk], b1, s[2 * nj + 1]);
            }

        // Online softmax (base 2): mask, new row maxima, rescale, P = 2^(s - m).
        const int kbase = kt * ATC_BK;
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int ni = 0; ni < 8; ++ni)
#pragma unroll
            for (int v = 0; v < 4; ++v) {
                const int key = kbase + ni * 8 + 2 * t4 + (v & 1);
                const float x = key < Nk ? s[ni][v] * sl2 : -SF_INF;
                s[ni][v] = x;
                mx[v >> 1] = fmaxf(mx[v >> 1], x);
            }
        float corr[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            corr[r] = exp2f(m[r] - mx[r]);  // 0 at the first tile (m = -inf, mx finite)
            m[r] = mx[r];
        }
#pragma unroll
        for (int ni = 0; ni < 8; ++ni)
#pragma unroll
            for (int v = 0; v < 4; ++v) {
                const float p = exp2f(s[ni][v] - m[v >> 1]);  // masked keys: 2^-inf = 0
                s[ni][v] = p;
                rs[v >> 1] += p;
            }
#pragma unroll
        for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + rs[r];
#pragma unroll
        for (int j = 0; j < D / 8; ++j)
#pragma unroll
            for (int v = 0; v < 4; ++v) o[j][v] *= corr[v >> 1];

        // O += P·V: P's C fragments of n8 tiles 2j, 2j + 1 are the A fragment of keys 16j..16j+15.
#pragma unroll
        for (int j = 0; j < ATC_BK / 16; ++j) {
            const unsigned a[4] = {atc_pack(s[2 * j][0], s[2 * j][1]), atc_pack(s[2 * j][2], s[2 * j][3]),
                                   atc_pack(s[2 * j + 1][0], s[2 * j + 1][1]),
                                   atc_pack(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
            for (int nj = 0; nj < D / 16; ++nj) {
                // matrix lm: keys j·16 + 8 (lm & 1), dims nj·16 + 8 (lm >> 1), transposed
                unsigned t[4];
                ldmatrix_x4_trans(t, vt_s + atc_sw<D>(j * 16 + (lm & 1) * 8 + lr, nj * 16 + (lm >> 1) * 8));
                const unsigned b0[2] = {t[0], t[1]}, b1[2] = {t[2], t[3]};
                mma_bf16_16816(o[2 * nj], a, b0, o[2 * nj]);
                mma_bf16_16816(o[2 * nj + 1], a, b1, o[2 * nj + 1]);
            }
        }
    }
    cp_async_wait<0>();  // (the last group is empty)

    // Epilogue: the quad's partial sums, O / l as bf16 pairs, lse = (m + log2 l)·ln 2.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int qi = q0 + warp * 16 + g + 8 * r;
        if (qi >= Nq) continue;
        const float inv = 1.0f / l[r];
        bf16_t* orow = O + ((long long)b * Nq + qi) * ((long long)H * DH) + (long long)h * DH;
#pragma unroll
        for (int j = 0; j < D / 8; ++j)
            if (j * 8 + 2 * t4 < DH)  // (DH even: both of the pair or neither)
                *(unsigned*)(orow + j * 8 + 2 * t4) = atc_pack(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
        if (t4 == 0) L[((long long)b * H + h) * Nq + qi] = (m[r] + log2f(l[r])) * 0.69314718055994531f;
    }
}

// NAME: the kernel (its head dim in the name); DH: the head dim; D: DH rounded up to a multiple
// of 16.
#define ATC_FORWARD(NAME, DH, D)                                                                   \
    extern "C" __global__ void __launch_bounds__(ATC_THREADS, 1) NAME(                             \
        bf16_t* o, float* lse, const bf16_t* q, const bf16_t* k, const bf16_t* v, int heads,       \
        int seq_q, int seq_k, int qs, int qo, int ks, int ko, int vs, int vo, float scale) {       \
        attention_tc_forward_impl<D, DH>(o, lse, q, k, v, heads, seq_q, seq_k, qs, qo, ks, ko, vs, \
                                         vo, scale);                                               \
    }

ATC_FORWARD(attention_tc_forward_d16, 16, 16)
ATC_FORWARD(attention_tc_forward_d20, 20, 32)
ATC_FORWARD(attention_tc_forward_d32, 32, 32)
ATC_FORWARD(attention_tc_forward_d64, 64, 64)
ATC_FORWARD(attention_tc_forward_d80, 80, 80)
ATC_FORWARD(attention_tc_forward_d128, 128, 128)

// ---- Backward (FlashAttention-2 style, no atomics) ----
// P = 2^(s·scale·log2 e − lse·log2 e) is recomputed from lse; with delta_i = dO_i · O_i,
// dS = P ∘ (dP − delta), dP = dO·Vᵀ, dV = Pᵀ·dO, dK = scale·dSᵀ·Q, dQ = scale·dS·K.
//   attention_tc_backward_delta: delta, one warp per (b, query, head);
//   attention_tc_backward_dkdv_*: one block per (64-key tile, batch·head), each warp 16 keys,
//     query tiles (Q, dO through double-buffered cp.async, lse and delta beside them) streamed,
//     32 queries at a time: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (K and V rows as A fragments, ldmatrix
//     from the resident tiles), Pᵀ and dSᵀ rounded to bf16 in registers as A fragments of
//     dV += Pᵀ·dO and dK += dSᵀ·Q (dO and Q through ldmatrix.trans);
//   attention_tc_backward_dq_*: one block per (64-query tile, batch·head), each warp 16
//     queries, Q and dO fragments in registers, key tiles (K, V double-buffered) streamed, 32
//     keys at a time: S = Q·Kᵀ, dP = dO·Vᵀ, dS, dQ += dS·K (K through ldmatrix.trans).
// dQ is its own pass (recomputing S and dP) so that every output element has one writer.
// Gradients are written on the operands' layouts (dqs/dqo, dks/dko, dvs/dvo: the stride and
// offset of the gradient buffer; one fused buffer may hold all three), rows and dims past the
// edges not at all.

// delta[(b·H + h)·Nq + i] = Σ_d dO·O over the row (b, i, h) of the [B, Nq, H·D] tensors.
extern "C" __global__ void __launch_bounds__(ATC_THREADS, 1) attention_tc_backward_delta(
    float* delta, const bf16_t* o, const bf16_t* dout, int batch, int heads, int seq_q,
    int head_dim) {
    const long long rows = (long long)batch * seq_q * heads;
    const long long row = (long long)blockIdx.x * (ATC_THREADS / 32) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;  // whole warps
    float acc = 0.0f;
    for (int d = lane; d < head_dim; d += 32)
        acc += bf16_to_f32(o[row * head_dim + d]) * bf16_to_f32(dout[row * head_dim + d]);
    acc = warp_sum(acc);
    if (lane == 0) {
        const long long bi = row / heads;  // b·Nq + i
        const int h = (int)(row % heads), i = (int)(bi % seq_q);
        const long long b = bi / seq_q;
        delta[(b * heads + h) * seq_q + i] = acc;
    }
}

// lse (base 2) and delta of queries r0 .. r0 + 63 into shared memory; past n, lse = +inf
// (P = 0) and delta = 0.
__device__ __forceinline__ void atc_load_rowstats(float* ls, float* ds, const float* L,
                                                  const float* Dl, int r0, int n, int tid) {
    if (tid < ATC_BQ) {
        const int i = r0 + tid;
        ls[tid] = i < n ? L[i] * 1.4426950408889634f : SF_INF;
        ds[tid] = i < n ? Dl[i] : 0.0f;
    }
}

// Stores a warp's 16 rows of an m16n8 accumulator set acc[D / 8][4], times `mul`, as bf16 rows
// (row r at base + r·stride) of which rows >= n and dims >= DH are left out.
template <int D, int DH>
__device__ __forceinline__ void atc_store_rows(bf16_t* base, long long stride, int row0, int n,
                                               float acc[D / 8][4], float mul, int g, int t4) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = row0 + g + 8 * r;
        if (row >= n) continue;
        bf16_t* p = base + (long long)row * stride;
#pragma unroll
        for (int j = 0; j < D / 8; ++j)
            if (j * 8 + 2 * t4 < DH)
                *(unsigned*)(p + j * 8 + 2 * t4) = atc_pack(acc[j][2 * r] * mul, acc[j][2 * r + 1] * mul);
    }
}

template <int D, int DH>
__device__ void attention_tc_backward_dkdv_impl(
    bf16_t* __restrict__ dK, bf16_t* __restrict__ dV, const bf16_t* __restrict__ Q,
    const bf16_t* __restrict__ K, const bf16_t* __restrict__ V, const bf16_t* __restrict__ dO,
    const float* __restrict__ L, const float* __restrict__ Dl, int H, int Nq, int Nk, int qs,
    int qo, int ks, int ko, int vs, int vo, int dks, int dko, int dvs, int dvo, float scale) {
    TC_DYNAMIC_SMEM(atc_smem);
    bf16_t* Ks = (bf16_t*)atc_smem;           // [64][D]
    bf16_t* Vs = Ks + ATC_BK * D;             // [64][D]
    bf16_t* Qs = Vs + ATC_BK * D;             // 2 × [64][D]
    bf16_t* dOs = Qs + 2 * ATC_BQ * D;        // 2 × [64][D]
    float* Ls = (float*)(dOs + 2 * ATC_BQ * D);  // 2 × [64]
    float* Ds = Ls + 2 * ATC_BQ;              // 2 × [64]
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int lm = lane >> 3, lr = lane & 7, g = lane >> 2, t4 = lane & 3;
    const int k0 = blockIdx.x * ATC_BK;
    const int os = H * DH;  // dO's row stride
    const bf16_t* qb = Q + (long long)b * Nq * qs + qo + h * DH;
    const bf16_t* kb = K + (long long)b * Nk * ks + ko + h * DH;
    const bf16_t* vb = V + (long long)b * Nk * vs + vo + h * DH;
    const bf16_t* ob = dO + (long long)b * Nq * os + h * DH;
    const float* lb = L + (long long)bh * Nq;
    const float* db = Dl + (long long)bh * Nq;
    const float sl2 = scale * 1.4426950408889634f;
    constexpr int QC = D >= 128 ? 16 : 32;  // queries per register chunk (no spills at D = 128)

    atc_load_tile<D, DH>(Ks, kb, ks, k0, Nk, tid);
    atc_load_tile<D, DH>(Vs, vb, vs, k0, Nk, tid);
    atc_load_tile<D, DH>(Qs, qb, qs, 0, Nq, tid);
    atc_load_tile<D, DH>(dOs, ob, os, 0, Nq, tid);
    cp_async_commit();
    atc_load_rowstats(Ls, Ds, lb, db, 0, Nq, tid);

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) dk[j][v] = dv[j][v] = 0.0f;

    const int ntiles = (Nq + ATC_BQ - 1) / ATC_BQ;
    for (int qt = 0; qt < ntiles; ++qt) {
        cp_async_wait<0>();  // this thread's copies of query tile qt (and K, V) have landed
        __syncthreads();     // everyone's have (and lse/delta are stored); tile qt - 1 is done
        if (qt + 1 < ntiles) {
            const int nb = (qt + 1) & 1, r0 = (qt + 1) * ATC_BQ;
            atc_load_tile<D, DH>(Qs + nb * ATC_BQ * D, qb, qs, r0, Nq, tid);
            atc_load_tile<D, DH>(dOs + nb * ATC_BQ * D, ob, os, r0, Nq, tid);
            atc_load_rowstats(Ls + nb * ATC_BQ, Ds + nb * ATC_BQ, lb, db, r0, Nq, tid);
        }
        cp_async_commit();
        const bf16_t* qt_s = Qs + (qt & 1) * ATC_BQ * D;
        const bf16_t* ot_s = dOs + (qt & 1) * ATC_BQ * D;
        const float* lt = Ls + (qt & 1) * ATC_BQ;
        const float* dt = Ds + (qt & 1) * ATC_BQ;
#pragma unroll 1
        for (int hq = 0; hq < ATC_BQ / QC; ++hq) {  // (not unrolled: registers)  // QC queries at a time (registers)
            // Sᵀ (16 keys × QC queries) and dPᵀ; [ni][v] at key g + 8 (v >> 1), query
            // hq·QC + ni·8 + 2 t4 + (v & 1)
            float s[QC / 8][4], dp[QC / 8][4];
#pragma unroll
            for (int ni = 0; ni < QC / 8; ++ni)
#pragma unroll
                for (int v = 0; v < 4; ++v) s[ni][v] = dp[ni][v] = 0.0f;
#pragma unroll(D >= 128 ? 1 : D / 16)  // (not unrolled at D = 128: registers)
            for (int kk = 0; kk < D / 16; ++kk) {
                unsigned ka[4], va[4];
                ldmatrix_x4(ka, Ks + atc_sw<D>(warp * 16 + (lm & 1) * 8 + lr, kk * 16 + (lm >> 1) * 8));
                ldmatrix_x4(va, Vs + atc_sw<D>(warp * 16 + (lm & 1) * 8 + lr, kk * 16 + (lm >> 1) * 8));
#pragma unroll
                for (int nj = 0; nj < QC / 16; ++nj) {
                    // matrix lm: queries hq·QC + nj·16 + 8 (lm >> 1), dims kk·16 + 8 (lm & 1)
                    const int off = atc_sw<D>(hq * QC + nj * 16 + (lm >> 1) * 8 + lr, kk * 16 + (lm & 1) * 8);
                    unsigned t[4];
                    ldmatrix_x4(t, qt_s + off);
                    const unsigned q0f[2] = {t[0], t[1]}, q1f[2] = {t[2], t[3]};
                    mma_bf16_16816(s[2 * nj], ka, q0f, s[2 * nj]);
                    mma_bf16_16816(s[2 * nj + 1], ka, q1f, s[2 * nj + 1]);
                    ldmatrix_x4(t, ot_s + off);
                    const unsigned o0f[2] = {t[0], t[1]}, o1f[2] = {t[2], t[3]};
                    mma_bf16_16816(dp[2 * nj], va, o0f, dp[2 * nj]);
                    mma_bf16_16816(dp[2 * nj + 1], va, o1f, dp[2 * nj + 1]);
                }
            }
#pragma unroll
            for (int ni = 0; ni < QC / 8; ++ni)
#pragma unroll
                for (int v = 0; v < 4; ++v) {
                    const int c = hq * QC + ni * 8 + 2 * t4 + (v & 1);
                    const float p = exp2f(s[ni][v] * sl2 - lt[c]);  // queries past Nq: 0
                    s[ni][v] = p;
                    dp[ni][v] = p * (dp[ni][v] - dt[c]);
                }
            // dV += Pᵀ·dO, dK += dSᵀ·Q over the QC queries (16-deep k steps).
#pragma unroll
            for (int j = 0; j < QC / 16; ++j) {
                const unsigned pa[4] = {atc_pack(s[2 * j][0], s[2 * j][1]), atc_pack(s[2 * j][2], s[2 * j][3]),
                                        atc_pack(s[2 * j + 1][0], s[2 * j + 1][1]),
                                        atc_pack(s[2 * j + 1][2], s[2 * j + 1][3])};
                const unsigned da[4] = {atc_pack(dp[2 * j][0], dp[2 * j][1]), atc_pack(dp[2 * j][2], dp[2 * j][3]),
                                        atc_pack(dp[2 * j + 1][0], dp[2 * j + 1][1]),
                                        atc_pack(dp[2 * j + 1][2], dp[2 * j + 1][3])};
#pragma unroll
                for (int nj = 0; nj < D / 16; ++nj) {
                    // matrix lm: queries hq·QC + j·16 + 8 (lm & 1), dims nj·16 + 8 (lm >> 1), transposed
                    const int off = atc_sw<D>(hq * QC + j * 16 + (lm & 1) * 8 + lr, nj * 16 + (lm >> 1) * 8);
                    unsigned t[4];
                    ldmatrix_x4_trans(t, ot_s + off);
                    const unsigned b0[2] = {t[0], t[1]}, b1[2] = {t[2], t[3]};
                    mma_bf16_16816(dv[2 * nj], pa, b0, dv[2 * nj]);
                    mma_bf16_16816(dv[2 * nj + 1], pa, b1, dv[2 * nj + 1]);
                    ldmatrix_x4_trans(t, qt_s + off);
                    const unsigned c0[2] = {t[0], t[1]}, c1[2] = {t[2], t[3]};
                    mma_bf16_16816(dk[2 * nj], da, c0, dk[2 * nj]);
                    mma_bf16_16816(dk[2 * nj + 1], da, c1, dk[2 * nj + 1]);
                }
            }
        }
    }
    cp_async_wait<0>();  // (the last group is empty)
    const int row0 = k0 + warp * 16;
    atc_store_rows<D, DH>(dK + (long long)b * Nk * dks + dko + h * DH, dks, row0, Nk, dk, scale, g, t4);
    atc_store_rows<D, DH>(dV + (long long)b * Nk * dvs + dvo + h * DH, dvs, row0, Nk, dv, 1.0f, g, t4);
}

template <int D, int DH>
__device__ void attention_tc_backward_dq_impl(
    bf16_t* __restrict__ dQ, const bf16_t* __restrict__ Q, const bf16_t* __restrict__ K,
    const bf16_t* __restrict__ V, const bf16_t* __restrict__ dO, const float* __restrict__ L,
    const float* __restrict__ Dl, int H, int Nq, int Nk, int qs, int qo, int ks, int ko, int vs,
    int vo, int dqs, int dqo, float scale) {
    TC_DYNAMIC_SMEM(atc_smem);
    bf16_t* Qs = (bf16_t*)atc_smem;      // [64][D]
    bf16_t* dOs = Qs + ATC_BQ * D;       // [64][D]
    bf16_t* Ks = dOs + ATC_BQ * D;       // 2 × [64][D]
    bf16_t* Vs = Ks + 2 * ATC_BK * D;    // 2 × [64][D]
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int lm = lane >> 3, lr = lane & 7, g = lane >> 2, t4 = lane & 3;
    const int q0 = blockIdx.x * ATC_BQ;
    const int os = H * DH;
    const bf16_t* qb = Q + (long long)b * Nq * qs + qo + h * DH;
    const bf16_t* kb = K + (long long)b * Nk * ks + ko + h * DH;
    const bf16_t* vb = V + (long long)b * Nk * vs + vo + h * DH;
    const bf16_t* ob = dO + (long long)b * Nq * os + h * DH;
    const float sl2 = scale * 1.4426950408889634f;

    atc_load_tile<D, DH>(Qs, qb, qs, q0, Nq, tid);
    atc_load_tile<D, DH>(dOs, ob, os, q0, Nq, tid);
    atc_load_tile<D, DH>(Ks, kb, ks, 0, Nk, tid);
    atc_load_tile<D, DH>(Vs, vb, vs, 0, Nk, tid);
    cp_async_commit();

    // Rows g and g + 8 of the warp's 16: lse (base 2) and delta (rows past Nq are not stored).
    float lse2[2], dl[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int qi = q0 + warp * 16 + g + 8 * r;
        lse2[r] = qi < Nq ? L[(long long)bh * Nq + qi] * 1.4426950408889634f : 0.0f;
        dl[r] = qi < Nq ? Dl[(long long)bh * Nq + qi] : 0.0f;
    }
    // Q and dO fragments stay in registers, except at D = 128 (reloaded with ldmatrix, no spills).
    constexpr bool FREG = D < 128;
    constexpr int KC = D >= 128 ? 16 : 32;  // keys per register chunk
    unsigned qf[FREG ? D / 16 : 1][4], of[FREG ? D / 16 : 1][4];
    float dq[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) dq[j][v] = 0.0f;

    const int ntiles = (Nk + ATC_BK - 1) / ATC_BK;
    for (int kt = 0; kt < ntiles; ++kt) {
        cp_async_wait<0>();
        __syncthreads();
        if (kt + 1 < ntiles) {
            const int nb = (kt + 1) & 1;
            atc_load_tile<D, DH>(Ks + nb * ATC_BK * D, kb, ks, (kt + 1) * ATC_BK, Nk, tid);
            atc_load_tile<D, DH>(Vs + nb * ATC_BK * D, vb, vs, (kt + 1) * ATC_BK, Nk, tid);
        }
        cp_async_commit();
        if (FREG && kt == 0) {
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                const int off = atc_sw<D>(warp * 16 + (lm & 1) * 8 + lr, kk * 16 + (lm >> 1) * 8);
                ldmatrix_x4(qf[FREG ? kk : 0], Qs + off);
                ldmatrix_x4(of[FREG ? kk : 0], dOs + off);
            }
        }
        const bf16_t* kt_s = Ks + (kt & 1) * ATC_BK * D;
        const bf16_t* vt_s = Vs + (kt & 1) * ATC_BK * D;
#pragma unroll 1
        for (int hk = 0; hk < ATC_BK / KC; ++hk) {  // (not unrolled: registers)  // KC keys at a time
            float s[KC / 8][4], dp[KC / 8][4];
#pragma unroll
            for (int ni = 0; ni < KC / 8; ++ni)
#pragma unroll
                for (int v = 0; v < 4; ++v) s[ni][v] = dp[ni][v] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                unsigned qa[4], oa[4];
                if (!FREG) {
                    const int off = atc_sw<D>(warp * 16 + (lm & 1) * 8 + lr, kk * 16 + (lm >> 1) * 8);
                    ldmatrix_x4(qa, Qs + off);
                    ldmatrix_x4(oa, dOs + off);
                }
                const unsigned* qk = FREG ? qf[FREG ? kk : 0] : qa;
                const unsigned* ok = FREG ? of[FREG ? kk : 0] : oa;
#pragma unroll
                for (int nj = 0; nj < KC / 16; ++nj) {
                    // matrix lm: keys hk·KC + nj·16 + 8 (lm >> 1), dims kk·16 + 8 (lm & 1)
                    const int off = atc_sw<D>(hk * KC + nj * 16 + (lm >> 1) * 8 + lr, kk * 16 + (lm & 1) * 8);
                    unsigned t[4];
                    ldmatrix_x4(t, kt_s + off);
                    const unsigned k0f[2] = {t[0], t[1]}, k1f[2] = {t[2], t[3]};
                    mma_bf16_16816(s[2 * nj], qk, k0f, s[2 * nj]);
                    mma_bf16_16816(s[2 * nj + 1], qk, k1f, s[2 * nj + 1]);
                    ldmatrix_x4(t, vt_s + off);
                    const unsigned v0f[2] = {t[0], t[1]}, v1f[2] = {t[2], t[3]};
                    mma_bf16_16816(dp[2 * nj], ok, v0f, dp[2 * nj]);
                    mma_bf16_16816(dp[2 * nj + 1], ok, v1f, dp[2 * nj + 1]);
                }
            }
#pragma unroll
            for (int ni = 0; ni < KC / 8; ++ni)
#pragma unroll
                for (int v = 0; v < 4; ++v) {
                    const int key = kt * ATC_BK + hk * KC + ni * 8 + 2 * t4 + (v & 1);
                    const float p = key < Nk ? exp2f(s[ni][v] * sl2 - lse2[v >> 1]) : 0.0f;
                    s[ni][v] = p * (dp[ni][v] - dl[v >> 1]);  // dS
                }
#pragma unroll
            for (int j = 0; j < KC / 16; ++j) {
                const unsigned da[4] = {atc_pack(s[2 * j][0], s[2 * j][1]), atc_pack(s[2 * j][2], s[2 * j][3]),
                                        atc_pack(s[2 * j + 1][0], s[2 * j + 1][1]),
                                        atc_pack(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
                for (int nj = 0; nj < D / 16; ++nj) {
                    // matrix lm: keys hk·KC + j·16 + 8 (lm & 1), dims nj·16 + 8 (lm >> 1), transposed
                    unsigned t[4];
                    ldmatrix_x4_trans(t, kt_s + atc_sw<D>(hk * KC + j * 16 + (lm & 1) * 8 + lr, nj * 16 + (lm >> 1) * 8));
                    const unsigned b0[2] = {t[0], t[1]}, b1[2] = {t[2], t[3]};
                    mma_bf16_16816(dq[2 * nj], da, b0, dq[2 * nj]);
                    mma_bf16_16816(dq[2 * nj + 1], da, b1, dq[2 * nj + 1]);
                }
            }
        }
    }
    cp_async_wait<0>();
    atc_store_rows<D, DH>(dQ + (long long)b * Nq * dqs + dqo + h * DH, dqs, q0 + warp * 16, Nq, dq, scale, g, t4);
}

// NAME: the kernel; DH: the head dim; D: DH rounded up to a multiple of 16.
#define ATC_BACKWARD_DKDV(NAME, DH, D)                                                             \
    extern "C" __global__ void __launch_bounds__(ATC_THREADS, 1) NAME(                             \
        bf16_t* dk, bf16_t* dv, const bf16_t* q, const bf16_t* k, const bf16_t* v,                 \
        const bf16_t* dout, const float* lse, const float* delta, int heads, int seq_q, int seq_k, \
        int qs, int qo, int ks, int ko, int vs, int vo, int dks, int dko, int dvs, int dvo,        \
        float scale) {                                                                             \
        attention_tc_backward_dkdv_impl<D, DH>(dk, dv, q, k, v, dout, lse, delta, heads, seq_q,    \
                                               seq_k, qs, qo, ks, ko, vs, vo, dks, dko, dvs, dvo,  \
                                               scale);                                             \
    }
#define ATC_BACKWARD_DQ(NAME, DH, D)                                                               \
    extern "C" __global__ void __launch_bounds__(ATC_THREADS, 1) NAME(                             \
        bf16_t* dq, const bf16_t* q, const bf16_t* k, const bf16_t* v, const bf16_t* dout,         \
        const float* lse, const float* delta, int heads, int seq_q, int seq_k, int qs, int qo,     \
        int ks, int ko, int vs, int vo, int dqs, int dqo, float scale) {                           \
        attention_tc_backward_dq_impl<D, DH>(dq, q, k, v, dout, lse, delta, heads, seq_q, seq_k,   \
                                             qs, qo, ks, ko, vs, vo, dqs, dqo, scale);             \
    }

ATC_BACKWARD_DKDV(attention_tc_backward_dkdv_d16, 16, 16)
ATC_BACKWARD_DKDV(attention_tc_backward_dkdv_d20, 20, 32)
ATC_BACKWARD_DKDV(attention_tc_backward_dkdv_d32, 32, 32)
ATC_BACKWARD_DKDV(attention_tc_backward_dkdv_d64, 64, 64)
ATC_BACKWARD_DKDV(attention_tc_backward_dkdv_d80, 80, 80)
ATC_BACKWARD_DKDV(attention_tc_backward_dkdv_d128, 128, 128)
ATC_BACKWARD_DQ(attention_tc_backward_dq_d16, 16, 16)
ATC_BACKWARD_DQ(attention_tc_backward_dq_d20, 20, 32)
ATC_BACKWARD_DQ(attention_tc_backward_dq_d32, 32, 32)
ATC_BACKWARD_DQ(attention_tc_backward_dq_d64, 64, 64)
ATC_BACKWARD_DQ(attention_tc_backward_dq_d80, 80, 80)
ATC_BACKWARD_DQ(attention_tc_backward_dq_d128, 128, 128)
