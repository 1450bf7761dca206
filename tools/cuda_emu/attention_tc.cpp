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

static int backward(int argc, char** argv);

int main(int argc, char** argv) {
    if (argc >= 2 && std::string(argv[1]) == "bwd") return backward(argc - 1, argv + 1);
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

// Dispatch on the head dim to the kernels of one pass.
#define ATC_BY_DIM(D, CALL)                  \
    switch (D) {                             \
        case 16: CALL(16); break;            \
        case 20: CALL(20); break;            \
        case 32: CALL(32); break;            \
        case 64: CALL(64); break;            \
        case 80: CALL(80); break;            \
        case 128: CALL(128); break;          \
        default: emu::error("no kernel for this head dim"); \
    }

// attention_tc bwd B H Nq Nk D qs qo ks ko vs vo fwd_gx fwd_smem delta_gx dq_gx dq_smem dkdv_gx dkdv_smem [max_bh]
//   the forward, then the backward's three kernels (delta, dK/dV, dQ) with the launches the Rust
//   wrapper planned (grid y = B·H, 128 threads); dq, dk, dv are written on q's, k's and v's
//   layouts into separate NaN-filled buffers and compared, where addressed, with a double
//   reference (the exact softmax, not the kernel's bf16 O). With max_bh, the forward, dK/dV and
//   dQ grids run only their first max_bh rows (batch·head pairs) and only those are compared.
static int backward(int argc, char** argv) {
    if (argc < 19) {
        fprintf(stderr, "usage: attention_tc bwd B H Nq Nk D qs qo ks ko vs vo fwd_gx fwd_smem delta_gx dq_gx dq_smem dkdv_gx dkdv_smem\n");
        return 2;
    }
    const int B = atoi(argv[1]), H = atoi(argv[2]), Nq = atoi(argv[3]), Nk = atoi(argv[4]), D = atoi(argv[5]);
    const int qs = atoi(argv[6]), qo = atoi(argv[7]), ks = atoi(argv[8]), ko = atoi(argv[9]), vs = atoi(argv[10]),
              vo = atoi(argv[11]);
    const unsigned fwd_gx = atoi(argv[12]), fwd_smem = atoi(argv[13]), delta_gx = atoi(argv[14]), dq_gx = atoi(argv[15]),
                   dq_smem = atoi(argv[16]), dkdv_gx = atoi(argv[17]), dkdv_smem = atoi(argv[18]);
    const unsigned gy = argc >= 20 && atoi(argv[19]) > 0 ? std::min(atoi(argv[19]), B * H) : B * H;
    const float scale = 1.0f / std::sqrt((float)D);
    auto len = [&](int n, int stride, int off) { return (size_t)(B * n - 1) * stride + off + (size_t)H * D; };
    const size_t lq = len(Nq, qs, qo), lk = len(Nk, ks, ko), lv = len(Nk, vs, vo);
    const auto q = tobf(randv(lq, -2, 2)), k = tobf(randv(lk)), v = tobf(randv(lv));
    const auto dout = tobf(randv((size_t)B * Nq * H * D));
    const auto qf = frombf(q), kf = frombf(k), vf = frombf(v), gf = frombf(dout);
    std::vector<bf16_t> o((size_t)B * Nq * H * D, f32_to_bf16(NAN));
    std::vector<float> lse((size_t)B * H * Nq, NAN), delta((size_t)B * H * Nq, NAN);
    std::vector<bf16_t> dq(lq, f32_to_bf16(NAN)), dk(lk, f32_to_bf16(NAN)), dv(lv, f32_to_bf16(NAN));
    int errs = 0;
    const unsigned long long conflicts0 = emu::bank_conflicts;
    emu::launch_bounds = ATC_THREADS;
    auto run = [&](unsigned gx, unsigned smem, auto kernel) {
        emu::set_max_dynamic_smem(std::max(smem, 48u * 1024));
        errs += launch({gx, gy, 1}, {ATC_THREADS}, smem, kernel);
    };
#define FWD(DD) attention_tc_forward_d##DD(o.data(), lse.data(), q.data(), k.data(), v.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, scale)
    run(fwd_gx, fwd_smem, [&] { ATC_BY_DIM(D, FWD) });
    emu::set_max_dynamic_smem(48 * 1024);
    errs += launch({delta_gx, 1, 1}, {ATC_THREADS}, 0, [&] {
        attention_tc_backward_delta(delta.data(), o.data(), dout.data(), B, H, Nq, D);
    });
#define DKDV(DD) attention_tc_backward_dkdv_d##DD(dk.data(), dv.data(), q.data(), k.data(), v.data(), dout.data(), lse.data(), delta.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, ks, ko, vs, vo, scale)
    run(dkdv_gx, dkdv_smem, [&] { ATC_BY_DIM(D, DKDV) });
#define DQ(DD) attention_tc_backward_dq_d##DD(dq.data(), q.data(), k.data(), v.data(), dout.data(), lse.data(), delta.data(), H, Nq, Nk, qs, qo, ks, ko, vs, vo, qs, qo, scale)
    run(dq_gx, dq_smem, [&] { ATC_BY_DIM(D, DQ) });
    emu::set_max_dynamic_smem(48 * 1024);
    emu::launch_bounds = 0;

    std::vector<double> rq, rk, rv, rdel;
    std::vector<float> gq, gk, gv, gdel;
    std::vector<double> P((size_t)Nq * Nk), dS((size_t)Nq * Nk);
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
            if ((unsigned)(b * H + h) >= gy) continue;
            auto Q_ = [&](int i, int d) { return (double)qf[((size_t)b * Nq + i) * qs + qo + (size_t)h * D + d]; };
            auto K_ = [&](int j, int d) { return (double)kf[((size_t)b * Nk + j) * ks + ko + (size_t)h * D + d]; };
            auto V_ = [&](int j, int d) { return (double)vf[((size_t)b * Nk + j) * vs + vo + (size_t)h * D + d]; };
            auto G_ = [&](int i, int d) { return (double)gf[((size_t)b * Nq + i) * H * D + (size_t)h * D + d]; };
            for (int i = 0; i < Nq; ++i) {
                double mx = -INFINITY;
                for (int j = 0; j < Nk; ++j) {
                    double s = 0;
                    for (int d = 0; d < D; ++d) s += Q_(i, d) * K_(j, d);
                    P[(size_t)i * Nk + j] = s * scale;
                    mx = std::max(mx, s * scale);
                }
                double sum = 0;
                for (int j = 0; j < Nk; ++j) sum += std::exp(P[(size_t)i * Nk + j] - mx);
                for (int j = 0; j < Nk; ++j) P[(size_t)i * Nk + j] = std::exp(P[(size_t)i * Nk + j] - mx) / sum;
                double del = 0;
                for (int d = 0; d < D; ++d) {
                    double od = 0;
                    for (int j = 0; j < Nk; ++j) od += P[(size_t)i * Nk + j] * V_(j, d);
                    del += od * G_(i, d);
                }
                rdel.push_back(del);
                gdel.push_back(delta[((size_t)b * H + h) * Nq + i]);
                for (int j = 0; j < Nk; ++j) {
                    double dp = 0;
                    for (int d = 0; d < D; ++d) dp += G_(i, d) * V_(j, d);
                    dS[(size_t)i * Nk + j] = P[(size_t)i * Nk + j] * (dp - del);
                }
            }
            for (int i = 0; i < Nq; ++i)
                for (int d = 0; d < D; ++d) {
                    double a = 0;
                    for (int j = 0; j < Nk; ++j) a += dS[(size_t)i * Nk + j] * K_(j, d);
                    rq.push_back(a * scale);
                    gq.push_back(bf16_to_f32(dq[((size_t)b * Nq + i) * qs + qo + (size_t)h * D + d]));
                }
            for (int j = 0; j < Nk; ++j)
                for (int d = 0; d < D; ++d) {
                    double a = 0, c = 0;
                    for (int i = 0; i < Nq; ++i) {
                        a += dS[(size_t)i * Nk + j] * Q_(i, d);
                        c += P[(size_t)i * Nk + j] * G_(i, d);
                    }
                    rk.push_back(a * scale);
                    gk.push_back(bf16_to_f32(dk[((size_t)b * Nk + j) * ks + ko + (size_t)h * D + d]));
                    rv.push_back(c);
                    gv.push_back(bf16_to_f32(dv[((size_t)b * Nk + j) * vs + vo + (size_t)h * D + d]));
                }
        }
    char name[200];
    const char* what[4] = {"delta", "dq", "dk", "dv"};
    const std::vector<float>* got[4] = {&gdel, &gq, &gk, &gv};
    const std::vector<double>* want[4] = {&rdel, &rq, &rk, &rv};
    for (int i = 0; i < 4; ++i) {
        snprintf(name, sizeof name, "attention_tc bwd B%d H%d Nq%d Nk%d D%d %s", B, H, Nq, Nk, D, what[i]);
        check(name, *got[i], *want[i], 1e-2);
    }
    printf("  ldmatrix bank conflicts %llu, emulator errors %d\n", emu::bank_conflicts - conflicts0, errs);
    if (emu::bank_conflicts != conflicts0) ++failures;
    printf("attention_tc failures: %d, emulator errors: %d\n", failures, errs);
    return failures != 0 || errs != 0;
}
