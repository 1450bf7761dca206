// The engine's matmul and attention kernels under the CPU emulation of emu.h, against plain
// double loops. run.sh first rewrites `extern __shared__ float smem[];` (dynamic shared memory)
// into emu_dyn_smem(), sized per launch as the CUDA wrappers size it.
#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/matmul.cu"
#undef INSTANTIATE
#include "gen/attention.cu"
#include "util.h"

static void matmul_case(int B, int M, int N, int K, bool ta, bool tb, bool bias, bool acc) {
    auto a = randv((size_t)B * M * K), b = randv((size_t)B * K * N), bv = randv(N), c0 = randv((size_t)B * M * N);
    std::vector<double> ref(c0.size());
    for (int z = 0; z < B; ++z)
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                double s = bias ? bv[j] : 0.0;
                for (int l = 0; l < K; ++l) {
                    double av = ta ? a[(size_t)z * M * K + (size_t)l * M + i] : a[(size_t)z * M * K + (size_t)i * K + l];
                    double bw = tb ? b[(size_t)z * K * N + (size_t)j * K + l] : b[(size_t)z * K * N + (size_t)l * N + j];
                    s += av * bw;
                }
                size_t o = (size_t)z * M * N + (size_t)i * N + j;
                ref[o] = s + (acc ? c0[o] : 0.0);
            }
    std::vector<float> c = c0;
    dim3 grid{(unsigned)((N + 127) / 128), (unsigned)((M + 127) / 128), (unsigned)B};
    auto run = [&] {
        const float* bp = bias ? bv.data() : nullptr;
        long long sa = (long long)M * K, sb = (long long)K * N;
        if (!ta && !tb) matmul_nn_f32(c.data(), a.data(), b.data(), bp, M, N, K, sa, sb, acc);
        if (!ta && tb) matmul_nt_f32(c.data(), a.data(), b.data(), bp, M, N, K, sa, sb, acc);
        if (ta && !tb) matmul_tn_f32(c.data(), a.data(), b.data(), bp, M, N, K, sa, sb, acc);
        if (ta && tb) matmul_tt_f32(c.data(), a.data(), b.data(), bp, M, N, K, sa, sb, acc);
    };
    launch(grid, {256}, run);
    char name[120];
    snprintf(name, 120, "matmul B%d %dx%dx%d ta%d tb%d bias%d acc%d", B, M, N, K, ta, tb, bias, acc);
    check(name, c, ref, 1e-6);
}

// Dense double reference of attention on the fused [B, N, 3C] layout.
static void attention_case(int B, int N, int H, int D) {
    int C = H * D;
    auto qkv = randv((size_t)B * N * 3 * C, -1.5f, 1.5f), dout = randv((size_t)B * N * C);
    double scale = 1.0 / std::sqrt((double)D);
    std::vector<double> o((size_t)B * N * C), dqkv(qkv.size()), lse((size_t)B * H * N);
    auto at = [&](int b, int n, int which, int h, int d) { return (size_t)(b * N + n) * 3 * C + which * C + h * D + d; };
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
            std::vector<double> P((size_t)N * N);
            for (int i = 0; i < N; ++i) {
                double m = -1e300;
                for (int j = 0; j < N; ++j) {
                    double s = 0;
                    for (int d = 0; d < D; ++d) s += qkv[at(b, i, 0, h, d)] * qkv[at(b, j, 1, h, d)];
                    P[(size_t)i * N + j] = s * scale;
                    m = std::max(m, s * scale);
                }
                double z = 0;
                for (int j = 0; j < N; ++j) z += std::exp(P[(size_t)i * N + j] - m);
                for (int j = 0; j < N; ++j) P[(size_t)i * N + j] = std::exp(P[(size_t)i * N + j] - m) / z;
                lse[(size_t)(b * H + h) * N + i] = m + std::log(z);
                for (int d = 0; d < D; ++d) {
                    double s = 0;
                    for (int j = 0; j < N; ++j) s += P[(size_t)i * N + j] * qkv[at(b, j, 2, h, d)];
                    o[(size_t)(b * N + i) * C + h * D + d] = s;
                }
            }
            for (int i = 0; i < N; ++i) {
                std::vector<double> dp(N);
                double di = 0;
                for (int j = 0; j < N; ++j) {
                    double s = 0;
                    for (int d = 0; d < D; ++d) s += dout[(size_t)(b * N + i) * C + h * D + d] * qkv[at(b, j, 2, h, d)];
                    dp[j] = s;
                    di += P[(size_t)i * N + j] * s;
                }
                for (int j = 0; j < N; ++j) {
                    double p = P[(size_t)i * N + j], ds = p * (dp[j] - di) * scale;
                    for (int d = 0; d < D; ++d) {
                        dqkv[at(b, i, 0, h, d)] += ds * qkv[at(b, j, 1, h, d)];
                        dqkv[at(b, j, 1, h, d)] += ds * qkv[at(b, i, 0, h, d)];
                        dqkv[at(b, j, 2, h, d)] += p * dout[(size_t)(b * N + i) * C + h * D + d];
                    }
                }
            }
        }
    const int ROWS = 16, KT = 32;
    std::vector<float> of(o.size()), lf(lse.size()), dv(lse.size()), g(qkv.size());
    dim3 grid{(unsigned)((N + ROWS - 1) / ROWS), (unsigned)(B * H), 1};
    const size_t fwd_smem = 4 * (KT * (D + 1) + KT * D + ROWS * D), dq_smem = 4 * (2 * KT * (D + 1) + 2 * ROWS * D),
                 dkdv_smem = 4 * (2 * KT * (D + 1) + 2 * KT + 2 * ROWS * D);  // as src/backend/cuda/attention.rs
    launch(grid, {128}, fwd_smem, [&] {
        attention_forward_f32(of.data(), lf.data(), qkv.data(), qkv.data(), qkv.data(), H, N, N, D, 3 * C, 0, 3 * C, C, 3 * C, 2 * C, (float)scale);
    });
    char name[120];
    snprintf(name, 120, "attention fwd B%d N%d H%d D%d", B, N, H, D);
    check(name, of, o, 1e-5);
    snprintf(name, 120, "attention lse B%d N%d H%d D%d", B, N, H, D);
    check(name, lf, lse, 1e-5);
    launch(grid, {128}, dq_smem, [&] {
        attention_backward_dq_f32(g.data(), dv.data(), qkv.data(), qkv.data(), qkv.data(), of.data(), dout.data(), lf.data(), H, N, N, D, 3 * C, 0, 3 * C, C, 3 * C, 2 * C, 3 * C, 0, (float)scale);
    });
    launch(grid, {128}, dkdv_smem, [&] {
        attention_backward_dkdv_f32(g.data(), g.data(), qkv.data(), qkv.data(), qkv.data(), dout.data(), lf.data(), dv.data(), H, N, N, D, 3 * C, 0, 3 * C, C, 3 * C, 2 * C, 3 * C, C, 3 * C, 2 * C, (float)scale);
    });
    snprintf(name, 120, "attention dqkv B%d N%d H%d D%d", B, N, H, D);
    check(name, g, dqkv, 1e-5);
}

int main() {
    matmul_case(1, 37, 53, 29, false, false, true, false);
    matmul_case(2, 131, 45, 67, false, true, false, true);
    matmul_case(2, 29, 140, 19, true, false, true, false);
    matmul_case(1, 130, 129, 9, true, true, true, true);
    attention_case(1, 37, 2, 20);
    attention_case(2, 33, 2, 16);
    attention_case(1, 19, 1, 64);
    attention_case(1, 40, 1, 80);
    printf("failures: %d\n", failures);
    return failures != 0;
}
