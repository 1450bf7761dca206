// kernels/matmul_tc.cu (the tensor-core matmul, variant 2) under the emulator, against a plain
// double triple loop over the same bf16 inputs.
//   tc_matmul small                     the small odd shapes (run.sh)
//   tc_matmul B M N K ta tb bias gelu acc out_bf16 gx gy threads smem [max_blocks]
//                                       one case with the launch the Rust wrapper planned
//                                       (tests/tc_kernel_emu.rs); with max_blocks, only the
//                                       first max_blocks blocks in row-major order run and
//                                       only their part of C is compared
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

struct Case { int B, M, N, K; bool ta, tb, bias, gelu, acc, out_bf16; };

static int run_case(const Case& c, unsigned gx, unsigned gy, unsigned threads, unsigned smem, long long max_blocks) {
    const int B = c.B, M = c.M, N = c.N, K = c.K;
    auto a = tobf(randv((size_t)B * M * K)), b = tobf(randv((size_t)B * K * N));
    auto bias = randv(N), c0 = randv((size_t)B * M * N);
    if (c.out_bf16) { bias = frombf(tobf(bias)); c0 = frombf(tobf(c0)); }
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
    std::vector<float> cf(c0);
    std::vector<bf16_t> cb = tobf(c0);
    const long long sa = (long long)M * K, sb = (long long)K * N;
    auto kernel = [&] {
        const bf16_t *A = a.data(), *Bp = b.data();
        if (!c.out_bf16) {
            const float* bp = c.bias ? bias.data() : nullptr;
            float* C = cf.data();
            if (!c.ta && !c.tb) matmul_tc_nn_f32(C, A, Bp, bp, M, N, K, sa, sb, c.acc, c.gelu);
            if (!c.ta && c.tb) matmul_tc_nt_f32(C, A, Bp, bp, M, N, K, sa, sb, c.acc, c.gelu);
            if (c.ta && !c.tb) matmul_tc_tn_f32(C, A, Bp, bp, M, N, K, sa, sb, c.acc, c.gelu);
            if (c.ta && c.tb) matmul_tc_tt_f32(C, A, Bp, bp, M, N, K, sa, sb, c.acc, c.gelu);
        } else {
            auto bb = tobf(bias);
            const bf16_t* bp = c.bias ? bb.data() : nullptr;
            bf16_t* C = cb.data();
            if (!c.ta && !c.tb) matmul_tc_nn_bf16(C, A, Bp, bp, M, N, K, sa, sb, c.acc, c.gelu);
            if (!c.ta && c.tb) matmul_tc_nt_bf16(C, A, Bp, bp, M, N, K, sa, sb, c.acc, c.gelu);
            if (c.ta && !c.tb) matmul_tc_tn_bf16(C, A, Bp, bp, M, N, K, sa, sb, c.acc, c.gelu);
            if (c.ta && c.tb) matmul_tc_tt_bf16(C, A, Bp, bp, M, N, K, sa, sb, c.acc, c.gelu);
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
    std::vector<float> g2;
    for (int z = 0; z < B; ++z)
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                const size_t o = (size_t)z * M * N + (size_t)i * N + j;
                if (!covered[o]) continue;
                double s = 0;
                for (int l = 0; l < K; ++l) s += (double)at_a(z, i, l) * at_b(z, l, j);
                if (c.bias) s += bias[j];
                if (c.gelu) s = 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0)));
                if (c.acc) s += c0[o];
                ref.push_back(s);
                g2.push_back(got[o]);
            }
    char name[200];
    snprintf(name, sizeof name, "matmul_tc B%d %dx%dx%d ta%d tb%d bias%d gelu%d acc%d %s%s", B, M, N, K, c.ta, c.tb, c.bias,
             c.gelu, c.acc, c.out_bf16 ? "bf16" : "f32", run_blocks < nblocks ? " (first blocks)" : "");
    check(name, g2, ref, c.out_bf16 ? 5e-3 : 1e-5);
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
            {2, 130, 136, 72, false, false, true, true, false, false},
            {2, 130, 131, 72, false, true, true, false, true, false},
            {1, 136, 136, 97, true, false, false, false, false, true},
            {1, 21, 200, 8, false, false, true, true, true, true},
            {1, 1, 1, 8, false, true, false, false, false, false},
        };
        for (const Case& c : cases)
            errs += run_case(c, (c.N + 127) / 128, (c.M + 127) / 128, TC_THREADS, TC_SMEM_BYTES, 0);
    } else if (argc >= 15) {
        Case c{atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]) != 0, atoi(argv[6]) != 0,
               atoi(argv[7]) != 0, atoi(argv[8]) != 0, atoi(argv[9]) != 0, atoi(argv[10]) != 0};
        errs += run_case(c, (unsigned)atoi(argv[11]), (unsigned)atoi(argv[12]), (unsigned)atoi(argv[13]),
                         (unsigned)atoi(argv[14]), argc >= 16 ? atoll(argv[15]) : 0);
    } else {
        fprintf(stderr, "usage: tc_matmul small | B M N K ta tb bias gelu acc out_bf16 gx gy threads smem [max_blocks]\n");
        return 2;
    }
    printf("tc_matmul failures: %d, emulator errors: %d\n", failures, errs);
    return failures != 0 || errs != 0;
}
