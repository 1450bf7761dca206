// Stride-1 grouped 1-D convolution on bf16 tensor cores (conv1d variant 2): implicit GEMMs whose
// B operand is a Toeplitz view of a staged input window, fp32 accumulation in mma.sync.m16n8k16.
// Written for seislm-base's positional conv (240 channels, 16 groups of 15, 128 taps, pad 64)
// but general in channels, groups and taps. The Rust wrapper (src/backend/cuda/conv1d_tc.rs)
// takes bf16 calls with stride 1 and padding < k; the rest runs variant 1 (kernels/conv1d.cu).
//
// Forward, per group g and batch b: Y[co, t] = bias[co] + Σ_{c, j} W[co, c, j] · X[c, t + j − pad].
// GEMM M = the group's output channels (tiles of 16, rows past the group zero), N = time (256
// frames per block, 8 warps of 4 n8 tiles), reduction over (c, j) with the taps padded to kp, a
// multiple of 16 (zero weights). A k16 step never crosses a channel, so the B element
// B[kk][n] = xs[c][n + j0 + kk] of the staged window xs[c][i] = X[c, t0 − pad + i] (zero outside
// [0, lin)): a thread's pair (kk, kk + 1) at column n is two consecutive bf16 of the window, at
// an odd address for odd n + j0 + kk, so its register is built from two 16-bit shared loads (no
// ldmatrix for B). A fragments come from the staged weights ws[m][c·kp + j] with ldmatrix.x4
// (rows padded by 8 elements so the 8 rows of a phase fall in 8 bank groups). A warp's 4 n8
// tiles at one k16 step read the pairs at 8q + (its lane's offset) for q = 2s .. 2s + 4: five
// pairs kept in registers and slid by two per step, two new pairs (four 16-bit loads) per
// four mma.
// The input gradient is the same correlation with the weights flip-transposed
// (W'[ci, co, j] = W[co, ci, k − 1 − j], read that way when `flip` is 1) over dY, with
// pad' = k − 1 − pad and output length lin: the wrapper launches this kernel for it.
//
// Weight gradient: dW[co, c, j] = Σ_b Σ_t dY[b, co, t] · X[b, c, t + j − pad]: M = co (16 per
// tile), N = the (c, j) taps (n8 tiles of 8 taps of one channel, 4 per warp, 32 per block),
// reduction over time in chunks of 128 frames: A = dY staged [16][128] (ldmatrix.x4), B[r][n] =
// xs[c][r + j] with r the time step, again pairs of consecutive bf16. The reduction over
// (batch, time chunk) units is split over grid z; split s writes fp32 partials
// part[s][co][c·k + j] (every entry, zeros for an empty range) and colsum_final
// (kernels/reduce.cu) adds the splits in order into dW. No atomics: results repeat bit for bit.
// All global loads are plain (any alignment, any offsets); no cp.async.
// CPU twin: src/backend/cpu/conv1d.rs.
#include "tc.cuh"

#define CTC_THREADS 256
#define CTC_NJ 4                  // n8 tiles per warp
#define CTC_NT (8 * CTC_NJ * 8)   // output frames per forward block (256)
#define CTC_TT 128                // time steps per staged chunk of the weight gradient
#define CTC_TILES (8 * CTC_NJ)    // n8 tap tiles per weight-gradient block (32)

// The 32-bit B register of the pair p[0], p[1] (low half first); p may be odd.
__device__ __forceinline__ unsigned ctc_pair(const bf16_t* p) {
    return (unsigned)p[0] | ((unsigned)p[1] << 16);
}

// Grid (⌈lout / 256⌉, groups · ⌈cout/groups / 16⌉, batch), 256 threads. Dynamic shared memory
// 2 · (16 · (cc · kp + 8) + cc · (256 + kp + 16)) bytes: `cc` input channels staged per pass.
extern "C" __global__ void __launch_bounds__(CTC_THREADS)
    conv1d_tc_forward(bf16_t* y, const bf16_t* x, const bf16_t* w, const bf16_t* bias, int cin,
                      int cout, int lin, int lout, int k, int pad, int groups, int cc, int flip) {
    TC_DYNAMIC_SMEM(ctc_smem);
    const int ci_g = cin / groups, co_g = cout / groups;
    const int kp = (k + 15) & ~15;
    const int rs = cc * kp + 8;  // weight row stride (elements)
    const int win = CTC_NT + kp + 16;  // + 16: the pairs the last step's shift loads
    bf16_t* ws = (bf16_t*)ctc_smem;  // [16][rs]
    bf16_t* xs = ws + 16 * rs;       // [cc][win]
    const int mtiles = (co_g + 15) / 16;
    const int g = blockIdx.y / mtiles, m0 = (blockIdx.y % mtiles) * 16;
    const int b = blockIdx.z;
    const int t0 = blockIdx.x * CTC_NT;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int lm = lane >> 3, lr = lane & 7;  // ldmatrix: lane gives row lr of matrix lm
    const int gr = lane >> 2, t4 = lane & 3;  // fragment row / column group
    const int wn = warp * (CTC_NJ * 8);

    float acc[CTC_NJ][4];
#pragma unroll
    for (int j = 0; j < CTC_NJ; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) acc[j][v] = 0.0f;

    const long long xrow0 = ((long long)b * cin + (long long)g * ci_g) * lin;
    for (int c0 = 0; c0 < ci_g; c0 += cc) {
        const int nc = min(cc, ci_g - c0);
        __syncthreads();  // the previous pass's fragments are read
        const int wrow = cc * kp;
        for (int e = tid; e < 16 * wrow; e += CTC_THREADS) {
            const int m = e / wrow, r = e - m * wrow, c = r / kp, j = r - c * kp;
            const int co = m0 + m;
            bf16_t v = 0;
            if (co < co_g && c < nc && j < k) {
                const long long idx =
                    flip ? (((long long)g * ci_g + c0 + c) * co_g + co) * k + (k - 1 - j)
                         : (((long long)g * co_g + co) * ci_g + c0 + c) * k + j;
                v = w[idx];
            }
            ws[m * rs + r] = v;
        }
        for (int e = tid; e < cc * win; e += CTC_THREADS) {
            const int c = e / win, i = e - c * win;
            const int p = t0 - pad + i;
            bf16_t v = 0;
            if (c < nc && p >= 0 && p < lin) v = x[xrow0 + (long long)(c0 + c) * lin + p];
            xs[e] = v;
        }
        __syncthreads();
        for (int c = 0; c < nc; ++c) {
            const bf16_t* xr = xs + c * win + wn + gr + 2 * t4;
            const bf16_t* wr = ws + ((lm & 1) * 8 + lr) * rs + c * kp + (lm >> 1) * 8;
            // Tile j at step j0 takes the pairs P[j + j0/8] and P[j + j0/8 + 1], P[q] at
            // xr + 8q: p[i] holds P[j0/8 + i], and each step shifts by two and loads two.
            unsigned p[CTC_NJ + 1];
#pragma unroll
            for (int i = 0; i <= CTC_NJ; ++i) p[i] = ctc_pair(xr + 8 * i);
            for (int j0 = 0; j0 < kp; j0 += 16) {
                unsigned a[4];
                ldmatrix_x4(a, wr + j0);
#pragma unroll
                for (int j = 0; j < CTC_NJ; ++j) {
                    const unsigned bf[2] = {p[j], p[j + 1]};
                    mma_bf16_16816(acc[j], a, bf, acc[j]);
                }
#pragma unroll
                for (int i = 0; i + 2 <= CTC_NJ; ++i) p[i] = p[i + 2];
                p[CTC_NJ - 1] = ctc_pair(xr + 8 * (CTC_NJ - 1) + j0 + 16);
                p[CTC_NJ] = ctc_pair(xr + 8 * CTC_NJ + j0 + 16);
            }
        }
    }

    // c[v] of tile j: row gr + 8 (v >> 1), column 2 t4 + (v & 1).
#pragma unroll
    for (int j = 0; j < CTC_NJ; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) {
            const int m = m0 + gr + 8 * (v >> 1);
            const int t = t0 + wn + j * 8 + 2 * t4 + (v & 1);
            if (m >= co_g || t >= lout) continue;
            const int co = g * co_g + m;
            float r = acc[j][v];
            if (bias) r += ld(bias, co);
            st(y, ((long long)b * cout + co) * lout + t, r);
        }
}

// Grid (⌈(cin/groups) · kp/8 / 32⌉, groups · ⌈cout/groups / 16⌉, splits), 256 threads. Split s
// reduces units [s · per, min(units, (s + 1) · per)) of units = batch × ⌈lout / 128⌉ (unit u:
// waveform u / ⌈lout/128⌉, frames from 128 · (u mod ⌈lout/128⌉)). Dynamic shared memory
// 2 · (16 · 136 + nch · (128 + kp)) bytes, nch = min(cin/groups, 31 / (kp/8) + 2) channels.
extern "C" __global__ void __launch_bounds__(CTC_THREADS)
    conv1d_tc_backward_weight_partial(float* part, const bf16_t* dy, const bf16_t* x, int batch,
                                      int cin, int cout, int lin, int lout, int k, int pad,
                                      int groups, int splits, int per) {
    TC_DYNAMIC_SMEM(ctc_smem);
    const int ci_g = cin / groups, co_g = cout / groups;
    const int kp = (k + 15) & ~15;
    const int tpc = kp / 8;  // n8 tiles per channel
    const int ntiles = ci_g * tpc;
    const int ds = CTC_TT + 8;   // dY row stride (elements)
    const int xw = CTC_TT + kp;  // window per channel
    bf16_t* dys = (bf16_t*)ctc_smem;  // [16][ds]
    bf16_t* xs = dys + 16 * ds;       // [nch][xw]
    const int mtiles = (co_g + 15) / 16;
    const int g = blockIdx.y / mtiles, m0 = (blockIdx.y % mtiles) * 16;
    const int sp = blockIdx.z;
    const int jb0 = blockIdx.x * CTC_TILES;
    const int jb1 = min(ntiles, jb0 + CTC_TILES);
    const int c_lo = jb0 / tpc, nch = (jb1 - 1) / tpc - c_lo + 1;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int lm = lane >> 3, lr = lane & 7;
    const int gr = lane >> 2, t4 = lane & 3;

    // This warp's tiles: channel (relative to c_lo) and first tap; tile jb0 + 4 warp + jj.
    int tc[CTC_NJ], tn[CTC_NJ];
#pragma unroll
    for (int jj = 0; jj < CTC_NJ; ++jj) {
        const int j = jb0 + warp * CTC_NJ + jj;
        tc[jj] = j / tpc - c_lo;
        tn[jj] = (j % tpc) * 8;
    }
    float acc[CTC_NJ][4];
#pragma unroll
    for (int j = 0; j < CTC_NJ; ++j)
#pragma unroll
        for (int v = 0; v < 4; ++v) acc[j][v] = 0.0f;

    const int nt = (lout + CTC_TT - 1) / CTC_TT;
    const long long units = (long long)batch * nt;
    const long long u0 = (long long)sp * per;
    const long long u1 = min(units, u0 + per);
    for (long long u = u0; u < u1; ++u) {
        const int b = (int)(u / nt), t0 = (int)(u % nt) * CTC_TT;
        __syncthreads();  // the previous chunk's fragments are read
        for (int e = tid; e < 16 * CTC_TT; e += CTC_THREADS) {
            const int m = e / CTC_TT, r = e % CTC_TT;
            const int co = m0 + m, t = t0 + r;
            bf16_t v = 0;
            if (co < co_g && t < lout) v = dy[((long long)b * cout + g * co_g + co) * lout + t];
            dys[m * ds + r] = v;
        }
        const long long xrow0 = ((long long)b * cin + (long long)g * ci_g + c_lo) * lin;
        for (int e = tid; e < nch * xw; e += CTC_THREADS) {
            const int c = e / xw, i = e - c * xw;
            const int p = t0 - pad + i;
            bf16_t v = 0;
            if (p >= 0 && p < lin) v = x[xrow0 + (long long)c * lin + p];
            xs[e] = v;
        }
        __syncthreads();
        const bf16_t* ar = dys + ((lm & 1) * 8 + lr) * ds + (lm >> 1) * 8;
#pragma unroll 2
        for (int r0 = 0; r0 < CTC_TT; r0 += 16) {
            unsigned a[4];
            ldmatrix_x4(a, ar + r0);
#pragma unroll
            for (int jj = 0; jj < CTC_NJ; ++jj) {
                if (jb0 + warp * CTC_NJ + jj >= jb1) continue;  // warp-uniform
                const bf16_t* xr = xs + tc[jj] * xw + tn[jj] + gr + 2 * t4 + r0;
                const unsigned bf[2] = {ctc_pair(xr), ctc_pair(xr + 8)};
                mma_bf16_16816(acc[jj], a, bf, acc[jj]);
            }
        }
    }

    const long long n = (long long)ci_g * k;
#pragma unroll
    for (int jj = 0; jj < CTC_NJ; ++jj) {
        if (jb0 + warp * CTC_NJ + jj >= jb1) continue;
        const int c = c_lo + tc[jj];
#pragma unroll
        for (int v = 0; v < 4; ++v) {
            const int m = m0 + gr + 8 * (v >> 1);
            const int tap = tn[jj] + 2 * t4 + (v & 1);
            if (m >= co_g || tap >= k) continue;
            part[((long long)sp * cout + g * co_g + m) * n + (long long)c * k + tap] = acc[jj][v];
        }
    }
}
