// kernels/matmul_tc.cu (the tensor-core matmul, variant 2) under the emulator, against a plain
// double triple loop over the same bf16 inputs.
//   tc_matmul small                     the small odd shapes (run.sh)
//   tc_matmul B M N K ta tb bias epi acc out_bf16 gx gy threads smem [max_blocks]
//                                       one case with the launch the Rust wrapper planned
//                                       (tests/tc_kernel_emu.rs); with max_blocks, only the
//                                       first max_blocks blocks in row-major order run and
//                                       only their part of C is compared; epi 1 (GELU: C = h,
//                                       aux = gelu(h)) also compares aux, epi 2 (dGELU:
//                                       C = x · gelu'(aux)) reads a random aux
// tests/tc_kernel_emu.rs compiles it with TC_KERNEL_SOURCE naming the very source NVRTC
// compiles (common.cuh and tc.cuh included); run.sh with the files in kernels/.
#include "emu.h"
#ifndef TC_KERNEL_SOURCE
#include "../../kernels/common.cuh"
#include "../../kernels/matmul_tc.cu"
#else
#include TC_KERNEL_SOURCE
#endif
#include "util.h"

struct Case { int B, M, N, K; bool ta, tb, bias; int epi; bool acc, out_bf16; };

static double gelu_d(double s) { return 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0))); }
static double gelu_grad_d(double s) {
    return 0.5 * (1.0 + std::erf(s / std::sqrt(2.0))) + s * std::exp(-0.5 * s * s) / std::sqrt(2.0 * M_PI);
}

static int run_case(const Case& c, unsigned gx, unsigned gy, unsigned threads, unsigned smem, long long max_blocks) {
    const int B = c.B, M = c.M, N = c.N, K = c.K;
    auto a = tobf(randv((size_t)B * M * K)), b = tobf(randv((size_t)B * K * N));
    auto bias = randv(N), c0 = randv((size_t)B * M * N), aux0 = randv((size_t)B * M * N);
    if (c.out_bf16) { bias = frombf(tobf(bias)); c0 = frombf(tobf(c0)); aux0 = frombf(tobf(aux0)); }
    const auto af = frombf(a), bfv = frombf(b);
    // Which rows/columns the blocks that run cover (all of C unless max_blocks limits them).
    const long long nblocks = (long long)gx * gy * B;
    const long long run_blocks = max_blocks > 0 ? std::min(max_blocks, nblocks) : nblocks;
    std::vector<char> covered((size_t)B * M * N, 0);
    for (long long lin = 0; lin < run_blocks; ++lin) {
        const int bx = lin % gx, by = (lin / gx) % gy, bz = lin / ((long long)gx * gy);
        for (int i = by * 128; i < std::min(M, by * 128 + 128); ++i)
            for (int j = bx * 128; j < std::min(N, bx * 128 + 128); ++j) covered[(size_t)bz * M * N + (size_t)i * N + j] = 1;
    }
    std::vector<double> ref;
    std::vector<float> got;
    auto at_a = [&](int z, int i, int l) { return af[(size_t)z * M * K + (c.ta ? (size_t)l * M + i : (size_t)i * K + l)]; };
    auto at_b = [&](int z, int l, int j) { return bfv[(size_t)z * K * N + (c.tb ? (size_t)j * K + l : (size_t)l * N + j)]; };
    std::vector<float> cf(c0), auxf(aux0);
    std::vector<bf16_t> cb = tobf(c0), auxb = tobf(aux0);
    const long long sa = (long long)M * K, sb = (long long)K * N;
    auto kernel = [&] {
        const bf16_t *A = a.data(), *Bp = b.data();
        if (!c.out_bf16) {
            const float* bp = c.bias ? bias.data() : nullptr;
            float* C = cf.data();
            float* X = c.epi ? auxf.data() : nullptr;
            if (!c.ta && !c.tb) matmul_tc_nn_f32(C, A, Bp, bp, X, M, N, K, sa, sb, c.acc, c.epi);
            if (!c.ta && c.tb) matmul_tc_nt_f32(C, A, Bp, bp, X, M, N, K, sa, sb, c.acc, c.epi);
            if (c.ta && !c.tb) matmul_tc_tn_f32(C, A, Bp, bp, X, M, N, K, sa, sb, c.acc, c.epi);
            if (c.ta && c.tb) matmul_tc_tt_f32(C, A, Bp, bp, X, M, N, K, sa, sb, c.acc, c.epi);
        } else {
            auto bb = tobf(bias);
            const bf16_t* bp = c.bias ? bb.data() : nullptr;
            bf16_t* C = cb.data();
            bf16_t* X = c.epi ? auxb.data() : nullptr;
            if (!c.ta && !c.tb) matmul_tc_nn_bf16(C, A, Bp, bp, X, M, N, K, sa, sb, c.acc, c.epi);
            if (!c.ta && c.tb) matmul_tc_nt_bf16(C, A, Bp, bp, X, M, N, K, sa, sb, c.acc, c.epi);
            if (c.ta && !c.tb) matmul_tc_tn_bf16(C, A, Bp, bp, X, M, N, K, sa, sb, c.acc, c.epi);
            if (c.ta && c.tb) matmul_tc_tt_bf16(C, A, Bp, bp, X, M, N, K, sa, sb, c.acc, c.epi);
        }
    };
    emu::launch_bounds = TC_THREADS;
    const unsigned long long conflicts0 = emu::bank_conflicts;
    int errs;
    if (max_blocks > 0 && run_blocks < nblocks) {
        // Run only the first blocks: launch a grid of one block per chosen tile, mapping ids.
        errs = 0;
        for (long long lin = 0; lin < run_blocks; ++lin) {
            const unsigned bx = lin % gx, by = (lin / gx) % gy, bz = lin / ((long long)gx * gy);
            errs += launch({1}, {threads}, smem, [&] {
                emu::grid_dim = {gx, gy, (unsigned)B};
                emu::block_idx = {bx, by, bz};
                kernel();
            });
        }
    } else {
        errs = launch({gx, gy, (unsigned)B}, {threads}, smem, kernel);
    }
    emu::launch_bounds = 0;
    got = c.out_bf16 ? frombf(cb) : cf;
    const std::vector<float> aux_got = c.out_bf16 ? frombf(auxb) : auxf;
    // Round as C's type stores: the epilogues apply GELU to the stored pre-activation.
    auto stored = [&](double v) { return c.out_bf16 ? (double)frombf(tobf(std::vector<float>{(float)v}))[0] : (double)(float)v; };
    std::vector<float> g2, aux_g;
    std::vector<double> aux_ref;
    for (int z = 0; z < B; ++z)
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                const size_t o = (size_t)z * M * N + (size_t)i * N + j;
                if (!covered[o]) continue;
                double s = 0;
                for (int l = 0; l < K; ++l) s += (double)at_a(z, i, l) * at_b(z, l, j);
                if (c.bias) s += bias[j];
                if (c.epi == 1) {
                    aux_ref.push_back(gelu_d(stored(got[o])));
                    aux_g.push_back(aux_got[o]);
                } else if (c.epi == 2) {
                    s *= gelu_grad_d(aux0[o]);
                }
                if (c.acc) s += c0[o];
                ref.push_back(s);
                g2.push_back(got[o]);
            }
    char name[200];
    snprintf(name, sizeof name, "matmul_tc B%d %dx%dx%d ta%d tb%d bias%d epi%d acc%d %s%s", B, M, N, K, c.ta, c.tb, c.bias,
             c.epi, c.acc, c.out_bf16 ? "bf16" : "f32", run_blocks < nblocks ? " (first blocks)" : "");
    check(name, g2, ref, c.out_bf16 ? 5e-3 : 1e-5);
    if (c.epi == 1) {
        // gelu of the stored pre-activation, as the unfused GELU kernel computes it
        std::string an = std::string(name) + " aux=gelu(C)";
        check(an.c_str(), aux_g, aux_ref, c.out_bf16 ? 5e-3 : 1e-6);
    }
    printf("  %zu outputs compared, %lld of %lld blocks, ldmatrix bank conflicts %llu, emulator errors %d\n", g2.size(),
           run_blocks, nblocks, emu::bank_conflicts - conflicts0, errs);
    if (emu::bank_conflicts != conflicts0) ++failures;
    return errs;
}

int main(int argc, char** argv) {
    int errs = 0;
    if (argc >= 2 && std::string(argv[1]) == "small") {
        // Odd shapes: edges in M, N and K (K not a multiple of 32; odd where A and B are both
        // transposed the other way, i.e. K is no operand's contiguous dimension), every transpose.
        const Case cases[] = {
            {1, 37, 48, 40, false, false, true, false, false, false},
            {1, 37, 45, 40, false, true, false, false, false, false},
            {1, 40, 48, 37, true, false, true, false, false, false},
            {1, 40, 45, 24, true, true, false, false, false, false},
            {2, 130, 136, 72, false, false, true, 1, false, false},
            {1, 37, 48, 40, false, false, false, 2, false, false},
            {2, 40, 56, 72, true, false, true, 2, false, true},
            {1, 130, 72, 48, false, false, false, 2, false, true},
            {2, 130, 131, 72, false, true, true, false, true, false},
            {1, 136, 136, 97, true, false, false, false, false, true},
            {1, 21, 200, 8, false, true, true, 1, false, true},
            {1, 1, 1, 8, false, true, false, false, false, false},
        };
        for (const Case& c : cases)
            errs += run_case(c, (c.N + 127) / 128, (c.M + 127) / 128, TC_THREADS, TC_SMEM_BYTES, 0);
    } else if (argc >= 15) {
        Case c{atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]) != 0, atoi(argv[6]) != 0,
               atoi(argv[7]) != 0, atoi(argv[8]), atoi(argv[9]) != 0, atoi(argv[10]) != 0};
        errs += run_case(c, (unsigned)atoi(argv[11]), (unsigned)atoi(argv[12]), (unsigned)atoi(argv[13]),
                         (unsigned)atoi(argv[14]), argc >= 16 ? atoll(argv[15]) : 0);
    } else {
        fprintf(stderr, "usage: tc_matmul small | B M N K ta tb bias epi acc out_bf16 gx gy threads smem [max_blocks]\n");
        return 2;
    }
    printf("tc_matmul failures: %d, emulator errors: %d\n", failures, errs);
    return failures != 0 || errs != 0;
}
