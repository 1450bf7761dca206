// kernels/attention_tc.cu (the tensor-core attention forward, variant 2) under the emulator,
// against a double-precision softmax(q kᵀ · scale) v over the same bf16 inputs.
//   attention_tc B H Nq Nk D qs qo ks ko vs vo gx gy threads smem [max_blocks]
//     one call with the launch the Rust wrapper planned (tests/attention_tc_emu.rs): q, k, v on
//     the strided layouts (element (b, n, h, d) of q at (b·Nq + n)·qs + qo + h·D + d); with
//     max_blocks, only the first max_blocks blocks in row-major order (x fastest) run and only
//     their queries are compared.
// tests/attention_tc_emu.rs compiles it with TC_KERNEL_SOURCE naming the very source NVRTC
// compiles (common.cuh and tc.cuh included).
#include "emu.h"
#ifndef TC_KERNEL_SOURCE
#include "../../kernels/common.cuh"
#include "../../kernels/attention_tc.cu"
#else
#include TC_KERNEL_SOURCE
#endif
#include "util.h"

int main(int argc, char** argv) {
    if (argc < 16) {
        fprintf(stderr, "usage: attention_tc B H Nq Nk D qs qo ks ko vs vo gx gy threads smem [max_blocks]\n");
        return 2;
    }
    const int B = atoi(argv[1]), H = atoi(argv[2]), Nq = atoi(argv[3]), Nk = atoi(argv[4]), D = atoi(argv[5]);
    const int qs = atoi(argv[6]), qo = atoi(argv[7]), ks = atoi(argv[8]), ko = atoi(argv[9]), vs = atoi(argv[10]),
              vo = atoi(argv[11]);
    const unsigned gx = atoi(argv[12]), gy = atoi(argv[13]), threads = atoi(argv[14]), smem = atoi(argv[15]);
    const long long max_blocks = argc >= 17 ? atoll(argv[16]) : 0;
    const float scale = 1.0f / std::sqrt((float)D);
    // Buffers as long as the layouts address; queries a little larger so the softmax is not flat.
    auto len = [&](int n, int stride, int off) { return (size_t)(B * n - 1) * stride + off + (size_t)H * D; };
    const auto q = tobf(randv(len(Nq, qs, qo), -2, 2)), k = tobf(randv(len(Nk, ks, ko))), v = tobf(randv(len(Nk, vs, vo)));
    const auto qf = frombf(q), kf = frombf(k), vf = frombf(v);
    std::vector<bf16_t> o((size_t)B * Nq * H * D, f32_to_bf16(NAN));
    std::vector<float> lse((size_t)B * H * Nq, NAN);

    const long long nblocks = (long long)gx * gy;
    const long long run_blocks = max_blocks > 0 ? std::min(max_blocks, nblocks) : nblocks;
    auto kernel = [&] {
        bf16_t* O = o.data();
        float* L = lse.data();
        switch (D) {
            case 20: attention_tc_forward_d20(O, L, q.data(), k.data(), v.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, scale); break;
            case 16: attention_tc_forward_d16(O, L, q.data(), k.data(), v.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, scale); break;
            case 32: attention_tc_forward_d32(O, L, q.data(), k.data(), v.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, scale); break;
            case 64: attention_tc_forward_d64(O, L, q.data(), k.data(), v.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, scale); break;
            case 80: attention_tc_forward_d80(O, L, q.data(), k.data(), v.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, scale); break;
            case 128: attention_tc_forward_d128(O, L, q.data(), k.data(), v.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, scale); break;
            default: emu::error("no kernel for this head dim");
        }
    };
    emu::launch_bounds = ATC_THREADS;
    if (smem > 48 * 1024) emu::set_max_dynamic_smem(smem);  // the wrapper's launch opts in
    const unsigned long long conflicts0 = emu::bank_conflicts;
    int errs = 0;
    if (run_blocks < nblocks) {
        for (long long lin = 0; lin < run_blocks; ++lin) {
            const unsigned bx = lin % gx, by = lin / gx;
            errs += launch({1}, {threads}, smem, [&] {
                emu::grid_dim = {gx, gy, 1};
                emu::block_idx = {bx, by, 0};
                kernel();
            });
        }
    } else {
        errs = launch({gx, gy, 1}, {threads}, smem, kernel);
    }
    emu::launch_bounds = 0;
    emu::set_max_dynamic_smem(48 * 1024);

    // Reference over the queries the blocks that ran cover (block (x, y): queries 64x .. 64x+63
    // of batch·head y).
    std::vector<float> got_o, got_l;
    std::vector<double> ref_o, ref_l;
    std::vector<double> sc(Nk);
    for (long long lin = 0; lin < run_blocks; ++lin) {
        const int bx = lin % gx, bh = lin / gx, b = bh / H, h = bh % H;
        for (int i = bx * 64; i < std::min(Nq, bx * 64 + 64); ++i) {
            const float* qi = &qf[((size_t)b * Nq + i) * qs + qo + (size_t)h * D];
            double mx = -INFINITY;
            for (int j = 0; j < Nk; ++j) {
                const float* kj = &kf[((size_t)b * Nk + j) * ks + ko + (size_t)h * D];
                double s = 0;
                for (int d = 0; d < D; ++d) s += (double)qi[d] * kj[d];
                sc[j] = s * scale;
                mx = std::max(mx, sc[j]);
            }
            double sum = 0;
            for (int j = 0; j < Nk; ++j) sum += std::exp(sc[j] - mx);
            ref_l.push_back(mx + std::log(sum));
            got_l.push_back(lse[((size_t)b * H + h) * Nq + i]);
            for (int d = 0; d < D; ++d) {
                double acc = 0;
                for (int j = 0; j < Nk; ++j) acc += std::exp(sc[j] - mx) * vf[((size_t)b * Nk + j) * vs + vo + (size_t)h * D + d];
                ref_o.push_back(acc / sum);
                got_o.push_back(bf16_to_f32(o[((size_t)b * Nq + i) * H * D + (size_t)h * D + d]));
            }
        }
    }
    char name[200];
    snprintf(name, sizeof name, "attention_tc B%d H%d Nq%d Nk%d D%d O%s", B, H, Nq, Nk, D, run_blocks < nblocks ? " (first blocks)" : "");
    // What rounding the exact result to bf16 alone costs (the output's floor).
    std::vector<float> rounded(ref_o.size());
    for (size_t i = 0; i < ref_o.size(); ++i) rounded[i] = bf16_to_f32(f32_to_bf16((float)ref_o[i]));
    printf("  bf16 rounding of the exact O alone: rel err %.3e\n", relerr(rounded, ref_o));
    check(name, got_o, ref_o, 3e-3);
    snprintf(name, sizeof name, "attention_tc B%d H%d Nq%d Nk%d D%d lse", B, H, Nq, Nk, D);
    check(name, got_l, ref_l, 1e-5);
    printf("  %zu queries compared, %lld of %lld blocks, ldmatrix bank conflicts %llu, emulator errors %d\n", got_l.size(),
           run_blocks, nblocks, emu::bank_conflicts - conflicts0, errs);
    if (emu::bank_conflicts != conflicts0) ++failures;
    printf("attention_tc failures: %d, emulator errors: %d\n", failures, errs);
    return failures != 0 || errs != 0;
}
