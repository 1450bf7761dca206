// The `_bf16` instantiations of the kernels that bf16 training runs on a GPU (matmul, attention,
// layer norm, GELU, softmax, adds, casts, token gathers, conv1d and weight norm, batch norm,
// conv2d, dropout, AdamW's bf16 copy) under the CPU emulation of emu.h. Each is fed
// bf16-rounded inputs and compared with a double loop on the same rounded values, so what is
// left is the kernel's own error: these kernels accumulate in fp32 and round only the output,
// so the bound is about one bf16 ulp of the output (ULP below), and fp32 side outputs (mean,
// rstd, lse, norms) are held to fp32 accuracy. Casts, gathers and dropout masks are exact.
// run.sh rewrites `extern __shared__ float smem[];` in attention and conv1d first; launches
// give dynamic shared memory the size the CUDA wrappers give it.
#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/matmul.cu"
#include "gen/attention.cu"
#undef INSTANTIATE
#include "gen/elementwise.cu"
#undef INSTANTIATE
#include "gen/layer_norm.cu"
#undef INSTANTIATE
#include "gen/softmax.cu"
#undef INSTANTIATE
#include "gen/tokens.cu"
#undef INSTANTIATE
#include "gen/conv1d.cu"
#undef INSTANTIATE
#undef CONV_TILE
#include "gen/batch_norm.cu"
#undef INSTANTIATE
#include "gen/conv2d.cu"
#undef INSTANTIATE
#include "gen/dropout.cu"
#include "gen/adamw.cu"
#include "util.h"
#include <cstdint>

#include "bf16_util.h"

// ---------------------------------------------------------------- matmul and sum_rows
static void matmul_case(int B, int M, int N, int K, bool ta, bool tb, bool bias, bool acc) {
    vf a = rnd(randv((size_t)B * M * K)), b = rnd(randv((size_t)B * K * N)), bv = rnd(randv(N)),
       c0 = rnd(randv((size_t)B * M * N));
    vd ref(c0.size());
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
    vb A = tobf(a), Bm = tobf(b), bb = tobf(bv), C = tobf(c0);
    dim3 grid{(unsigned)((N + 127) / 128), (unsigned)((M + 127) / 128), (unsigned)B};
    launch(grid, {256}, [&] {
        const bf16_t* bp = bias ? bb.data() : nullptr;
        long long sa = (long long)M * K, sb = (long long)K * N;
        if (!ta && !tb) matmul_nn_bf16(C.data(), A.data(), Bm.data(), bp, M, N, K, sa, sb, acc);
        if (!ta && tb) matmul_nt_bf16(C.data(), A.data(), Bm.data(), bp, M, N, K, sa, sb, acc);
        if (ta && !tb) matmul_tn_bf16(C.data(), A.data(), Bm.data(), bp, M, N, K, sa, sb, acc);
        if (ta && tb) matmul_tt_bf16(C.data(), A.data(), Bm.data(), bp, M, N, K, sa, sb, acc);
    });
    char name[120];
    snprintf(name, 120, "matmul bf16 B%d %dx%dx%d ta%d tb%d bias%d acc%d", B, M, N, K, ta, tb, bias, acc);
    checkb(name, C, ref, ULP);
}

static void sum_rows_case(int rows, int cols, bool acc) {
    vf x = rnd(randv((size_t)rows * cols)), o0 = rnd(randv(cols));
    vd ref(cols);
    for (int c = 0; c < cols; ++c) {
        double s = acc ? o0[c] : 0.0;
        for (int r = 0; r < rows; ++r) s += x[(size_t)r * cols + c];
        ref[c] = s;
    }
    vb X = tobf(x), O = tobf(o0);
    launch({(unsigned)((cols + 127) / 128)}, {128}, [&] { sum_rows_bf16(O.data(), X.data(), rows, cols, acc); });
    char name[120];
    snprintf(name, 120, "sum_rows bf16 %dx%d acc%d", rows, cols, acc);
    checkb(name, O, ref, ULP);
}

// ---------------------------------------------------------------- attention
// fused: one [B, N, 3C] qkv buffer (and one dqkv), as the ViT blocks; else separate q [B, Nq, C],
// k and v [B, Nk, C] (cross-attention, Nq != Nk).
static void attention_case(int B, int Nq, int Nk, int H, int D, bool fused) {
    const int C = H * D;
    if (fused) Nk = Nq;
    int qs, qo, ks, ko, vs, vo;
    size_t nq, nk, nv;
    if (fused) { qs = ks = vs = 3 * C; qo = 0; ko = C; vo = 2 * C; nq = nk = nv = (size_t)B * Nq * 3 * C; }
    else { qs = ks = vs = C; qo = ko = vo = 0; nq = (size_t)B * Nq * C; nk = nv = (size_t)B * Nk * C; }
    vf q = rnd(randv(nq, -1.5f, 1.5f)), k = fused ? q : rnd(randv(nk, -1.5f, 1.5f)),
       v = fused ? q : rnd(randv(nv, -1.5f, 1.5f)), dout = rnd(randv((size_t)B * Nq * C));
    const double scale = 1.0 / std::sqrt((double)D);
    auto qi_ = [&](int b, int i, int h, int d) { return (size_t)(b * Nq + i) * qs + qo + h * D + d; };
    auto ki_ = [&](int b, int j, int h, int d) { return (size_t)(b * Nk + j) * ks + ko + h * D + d; };
    auto vi_ = [&](int b, int j, int h, int d) { return (size_t)(b * Nk + j) * vs + vo + h * D + d; };
    auto oi_ = [&](int b, int i, int h, int d) { return (size_t)(b * Nq + i) * C + h * D + d; };
    // The reference; D_i = dO_i . O_i from the exact O, or (Ok given) from the bf16 O the
    // forward kernel stored, which is what the backward kernels read (as FlashAttention-2 does).
    struct Ref { vd o, lse, dq, dk, dv; };
    auto reference = [&](const vb* Ok) {
        Ref r{vd((size_t)B * Nq * C), vd((size_t)B * H * Nq), vd(nq, 0.0), vd(fused ? 0 : nk, 0.0), vd(fused ? 0 : nv, 0.0)};
        vd& o = r.o;
        vd& lse = r.lse;
        vd& rdq = r.dq;
        vd& rdk = fused ? r.dq : r.dk;
        vd& rdv = fused ? r.dq : r.dv;
        for (int b = 0; b < B; ++b)
            for (int h = 0; h < H; ++h)
                for (int i = 0; i < Nq; ++i) {
                    vd P(Nk), dp(Nk);
                    double m = -1e300, z = 0, di = 0;
                    for (int j = 0; j < Nk; ++j) {
                        double s = 0;
                        for (int d = 0; d < D; ++d) s += (double)q[qi_(b, i, h, d)] * k[ki_(b, j, h, d)];
                        P[j] = s * scale;
                        m = std::max(m, P[j]);
                    }
                    for (int j = 0; j < Nk; ++j) z += std::exp(P[j] - m);
                    for (int j = 0; j < Nk; ++j) P[j] = std::exp(P[j] - m) / z;
                    lse[(size_t)(b * H + h) * Nq + i] = m + std::log(z);
                    for (int d = 0; d < D; ++d) {
                        double s = 0;
                        for (int j = 0; j < Nk; ++j) s += P[j] * v[vi_(b, j, h, d)];
                        o[oi_(b, i, h, d)] = s;
                    }
                    for (int j = 0; j < Nk; ++j) {
                        double s = 0;
                        for (int d = 0; d < D; ++d) s += (double)dout[oi_(b, i, h, d)] * v[vi_(b, j, h, d)];
                        dp[j] = s;
                        di += P[j] * s;
                    }
                    if (Ok) {
                        di = 0;
                        for (int d = 0; d < D; ++d) di += (double)dout[oi_(b, i, h, d)] * bf16_to_f32((*Ok)[oi_(b, i, h, d)]);
                    }
                    for (int j = 0; j < Nk; ++j) {
                        double ds = P[j] * (dp[j] - di) * scale;
                        for (int d = 0; d < D; ++d) {
                            rdq[qi_(b, i, h, d)] += ds * k[ki_(b, j, h, d)];
                            rdk[ki_(b, j, h, d)] += ds * q[qi_(b, i, h, d)];
                            rdv[vi_(b, j, h, d)] += P[j] * dout[oi_(b, i, h, d)];
                        }
                    }
                }
        return r;
    };
    vb Q = tobf(q), K = fused ? vb() : tobf(k), V = fused ? vb() : tobf(v), dO = tobf(dout), O((size_t)B * Nq * C);
    const bf16_t* Qp = Q.data();
    const bf16_t* Kp = fused ? Q.data() : K.data();
    const bf16_t* Vp = fused ? Q.data() : V.data();
    vf L((size_t)B * H * Nq), Dv((size_t)B * H * Nq);
    vb dQ(nq, 0), dK_sep(fused ? 0 : nk, 0), dV_sep(fused ? 0 : nv, 0);
    bf16_t* dQp = dQ.data();
    bf16_t* dKp = fused ? dQ.data() : dK_sep.data();
    bf16_t* dVp = fused ? dQ.data() : dV_sep.data();
    const float sc = (float)scale;
    const size_t KT = 32, ROWS = 16, fwd_smem = 4 * (KT * (D + 1) + KT * D + ROWS * D),
                 dq_smem = 4 * (2 * KT * (D + 1) + 2 * ROWS * D),
                 dkdv_smem = 4 * (2 * KT * (D + 1) + 2 * KT + 2 * ROWS * D);  // as src/backend/cuda/attention.rs
    launch({(unsigned)((Nq + 15) / 16), (unsigned)(B * H), 1}, {128}, fwd_smem, [&] {
        attention_forward_bf16(O.data(), L.data(), Qp, Kp, Vp, H, Nq, Nk, D, qs, qo, ks, ko, vs, vo, sc);
    });
    launch({(unsigned)((Nq + 15) / 16), (unsigned)(B * H), 1}, {128}, dq_smem, [&] {
        attention_backward_dq_bf16(dQp, Dv.data(), Qp, Kp, Vp, O.data(), dO.data(), L.data(), H, Nq, Nk, D, qs, qo, ks, ko, vs, vo, qs, qo, sc);
    });
    launch({(unsigned)((Nk + 15) / 16), (unsigned)(B * H), 1}, {128}, dkdv_smem, [&] {
        attention_backward_dkdv_bf16(dKp, dVp, Qp, Kp, Vp, dO.data(), L.data(), Dv.data(), H, Nq, Nk, D, qs, qo, ks, ko, vs, vo, ks, ko, vs, vo, sc);
    });
    const Ref ex = reference(nullptr), kr = reference(&O);
    char name[120];
    const char* lay = fused ? "qkv" : "q,k,v";
    snprintf(name, 120, "attention bf16 fwd %s B%d Nq%d Nk%d H%d D%d", lay, B, Nq, Nk, H, D);
    checkb(name, O, ex.o, ULP);
    snprintf(name, 120, "attention bf16 lse (f32) %s D%d", lay, D);
    check(name, L, ex.lse, F32);
    // Gradients: the norm against the exact reference; every element within an ulp of the
    // reference that takes D_i from the stored bf16 O.
    auto grads = [&](const char* what, const vb& got, const vd& exact, const vd& same_di) {
        snprintf(name, 120, "attention bf16 %s %s B%d Nq%d H%d D%d", what, lay, B, Nq, H, D);
        check(name, frombf(got), exact, ULP);
        snprintf(name, 120, "attention bf16 %s %s D%d, D_i from bf16 O", what, lay, D);
        checkb(name, got, same_di, ULP);
    };
    if (fused) grads("dqkv", dQ, ex.dq, kr.dq);
    else {
        grads("dq", dQ, ex.dq, kr.dq);
        grads("dk", dK_sep, ex.dk, kr.dk);
        grads("dv", dV_sep, ex.dv, kr.dv);
    }
}

// ---------------------------------------------------------------- elementwise, casts
static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
// Round to nearest even by comparing distances in double (independent of the kernel's bit trick).
static bf16_t ref_bf16(float f) {
    uint32_t u = fbits(f);
    if (std::isnan(f)) return (bf16_t)(((u >> 16) & 0x8000u) | 0x7fc0u);
    uint32_t lo = u & 0xffff0000u;
    if ((lo & 0x7fffffffu) == 0x7f800000u) return (bf16_t)(lo >> 16);  // infinity
    uint32_t hi = lo + 0x10000u;
    double x = std::fabs((double)f), a = std::fabs((double)bitsf(lo));
    double b = (hi & 0x7fffffffu) == 0x7f800000u ? std::ldexp(1.0, 128) : std::fabs((double)bitsf(hi));
    double da = x - a, db = b - x;
    if (da < db) return (bf16_t)(lo >> 16);
    if (db < da) return (bf16_t)(hi >> 16);
    return (bf16_t)(((lo >> 16) & 1u) ? hi >> 16 : lo >> 16);
}

static void casts() {
    vf x = randv(4001, -1, 1);
    std::uniform_int_distribution<int> e(-140, 127);
    for (auto& v : x) v = std::ldexp(v, e(rng));  // every exponent, subnormals included
    const uint32_t special[] = {0x00000000u, 0x80000000u, 0x3f800000u, 0x3f808000u, 0x3f818000u, 0x3f808001u,
                                0x3f80ffffu, 0x7f7fffffu, 0x7f7f7fffu, 0x7f7f8000u, 0xff7f8000u, 0x7f800000u,
                                0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffc00001u, 0x7fffffffu, 0x00000001u,
                                0x00008000u, 0x00018000u, 0x807fffffu, 0x00800000u, 0x3effff80u};
    for (uint32_t s : special) x.push_back(bitsf(s));
    const long long n = (long long)x.size();
    vb out(n);
    launch({4}, {256}, [&] { cast_f32_to_bf16(out.data(), x.data(), n); });
    int bad = 0;
    for (long long i = 0; i < n; ++i)
        if (out[i] != ref_bf16(x[i])) {
            if (bad++ < 5) printf("  cast f32->bf16 %08x: got %04x want %04x\n", fbits(x[i]), out[i], ref_bf16(x[i]));
        }
    printf("%-58s %d of %lld differ %s\n", "cast_f32_to_bf16 (RNE, NaN, inf, subnormals)", bad, n, bad ? "FAIL" : "ok");
    if (bad) ++failures;
    vb all(65536);
    for (int i = 0; i < 65536; ++i) all[i] = (bf16_t)i;
    vf wide(65536);
    launch({4}, {256}, [&] { cast_bf16_to_f32(wide.data(), all.data(), 65536); });
    bad = 0;
    for (int i = 0; i < 65536; ++i) bad += fbits(wide[i]) != ((uint32_t)i << 16);
    printf("%-58s %d of 65536 differ %s\n", "cast_bf16_to_f32 (every bf16 value, exact)", bad, bad ? "FAIL" : "ok");
    if (bad) ++failures;
}

static void elementwise() {
    const int cols = 37, nn = 81 * cols;  // 2997: not a multiple of the block
    vf a = rnd(randv(nn, -3, 3)), b = rnd(randv(nn)), bias = rnd(randv(cols));
    vb A = tobf(a), Bv = tobf(b), Bi = tobf(bias), out(nn);
    vd rg(nn), rgb(nn), radd(nn), rbias(nn), rsc(nn);
    for (int i = 0; i < nn; ++i) {
        double x = a[i];
        rg[i] = 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
        rgb[i] = b[i] * (0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI));
        radd[i] = (double)a[i] + b[i];
        rbias[i] = (double)a[i] + bias[i % cols];
        rsc[i] = (double)a[i] * 0.37;
    }
    launch({5}, {256}, [&] { gelu_forward_bf16(out.data(), A.data(), nn); });
    checkb("gelu forward bf16", out, rg, ULP);
    launch({5}, {256}, [&] { gelu_backward_bf16(out.data(), A.data(), Bv.data(), nn); });
    checkb("gelu backward bf16", out, rgb, ULP);
    launch({5}, {256}, [&] { add_bf16(out.data(), A.data(), Bv.data(), nn); });
    checkb("add (residual) bf16", out, radd, ULP);
    launch({5}, {256}, [&] { bias_add_bf16(out.data(), A.data(), Bi.data(), nn, cols); });
    checkb("bias_add bf16", out, rbias, ULP);
    out = A;
    launch({5}, {256}, [&] { scale_bf16(out.data(), 0.37f, nn); });
    checkb("scale (in place) bf16", out, rsc, ULP);
}

// ---------------------------------------------------------------- layer norm, softmax
static void layer_norm_case(int R, int C, int threads) {
    vf x = rnd(randv((size_t)R * C, -2, 3)), w = rnd(randv(C, 0.5, 1.5)), bb = rnd(randv(C)), dy = rnd(randv((size_t)R * C));
    vd ry(R * C), rdx(R * C), rdw(C), rdb(C), rmu(R), rrs(R);
    for (int r = 0; r < R; ++r) {
        double mu = 0, var = 0;
        for (int i = 0; i < C; ++i) mu += x[r * C + i];
        mu /= C;
        for (int i = 0; i < C; ++i) var += (x[r * C + i] - mu) * (x[r * C + i] - mu);
        var /= C;
        double rs = 1 / std::sqrt(var + 1e-5), sg = 0, sgx = 0;
        rmu[r] = mu;
        rrs[r] = rs;
        for (int i = 0; i < C; ++i) {
            double xh = (x[r * C + i] - mu) * rs;
            ry[r * C + i] = xh * w[i] + bb[i];
            sg += dy[r * C + i] * w[i];
            sgx += dy[r * C + i] * w[i] * xh;
            rdw[i] += dy[r * C + i] * xh;
            rdb[i] += dy[r * C + i];
        }
        for (int i = 0; i < C; ++i) {
            double xh = (x[r * C + i] - mu) * rs;
            rdx[r * C + i] = rs * (dy[r * C + i] * w[i] - sg / C - xh * sgx / C);
        }
    }
    vb X = tobf(x), W = tobf(w), Bb = tobf(bb), dY = tobf(dy), Y(R * C), dX(R * C), dW(C, 0), dB(C, 0);
    vf mean(R), rstd(R);
    launch({(unsigned)R}, {(unsigned)threads}, [&] { layer_norm_forward_bf16(Y.data(), mean.data(), rstd.data(), X.data(), W.data(), Bb.data(), C, 1e-5f); });
    launch({(unsigned)R}, {(unsigned)threads}, [&] { layer_norm_backward_dx_bf16(dX.data(), dY.data(), X.data(), W.data(), mean.data(), rstd.data(), nullptr, C); });
    // Param::accumulate_grad hands a zeroed bf16 buffer to the kernel and widens it afterwards.
    launch({(unsigned)((C + 127) / 128)}, {128}, [&] { layer_norm_backward_dwdb_bf16(dW.data(), dB.data(), dY.data(), X.data(), mean.data(), rstd.data(), R, C); });
    char name[120];
    snprintf(name, 120, "layer_norm bf16 %dx%d forward", R, C);
    checkb(name, Y, ry, ULP);
    snprintf(name, 120, "layer_norm bf16 %dx%d mean, rstd (f32)", R, C);
    vf mr(mean);
    mr.insert(mr.end(), rstd.begin(), rstd.end());
    vd rr(rmu);
    rr.insert(rr.end(), rrs.begin(), rrs.end());
    check(name, mr, rr, F32);
    snprintf(name, 120, "layer_norm bf16 %dx%d backward dx", R, C);
    checkb(name, dX, rdx, ULP);
    snprintf(name, 120, "layer_norm bf16 %dx%d backward dw", R, C);
    checkb(name, dW, rdw, ULP);
    snprintf(name, 120, "layer_norm bf16 %dx%d backward db", R, C);
    checkb(name, dB, rdb, ULP);
}

static void softmax_case(int R, int C, int threads) {
    vf x = rnd(randv((size_t)R * C, -4, 4)), dy = rnd(randv((size_t)R * C));
    vd ry(R * C);
    for (int r = 0; r < R; ++r) {
        double m = -1e300, z = 0;
        for (int i = 0; i < C; ++i) m = std::max(m, (double)x[r * C + i]);
        for (int i = 0; i < C; ++i) z += std::exp(x[r * C + i] - m);
        for (int i = 0; i < C; ++i) ry[r * C + i] = std::exp(x[r * C + i] - m) / z;
    }
    vb X = tobf(x), Y(R * C), dY = tobf(dy), dX(R * C);
    launch({(unsigned)R}, {(unsigned)threads}, [&] { softmax_forward_bf16(Y.data(), X.data(), C); });
    // The backward reads the bf16 probabilities the forward stored.
    vf y = frombf(Y);
    vd rdx(R * C);
    for (int r = 0; r < R; ++r) {
        double dot = 0;
        for (int i = 0; i < C; ++i) dot += (double)y[r * C + i] * dy[r * C + i];
        for (int i = 0; i < C; ++i) rdx[r * C + i] = y[r * C + i] * (dy[r * C + i] - dot);
    }
    launch({(unsigned)R}, {(unsigned)threads}, [&] { softmax_backward_bf16(dX.data(), Y.data(), dY.data(), C); });
    char name[120];
    snprintf(name, 120, "softmax bf16 %dx%d forward", R, C);
    checkb(name, Y, ry, ULP);
    snprintf(name, 120, "softmax bf16 %dx%d backward", R, C);
    checkb(name, dX, rdx, ULP);
}

// ---------------------------------------------------------------- tokens
static void tokens() {
    int B = 2, C = 2, H = 12, W = 8, P = 4, np = (H / P) * (W / P), pv = C * P * P;
    vf img = rnd(randv((size_t)B * C * H * W));
    vd rpt((size_t)B * np * pv);
    for (int b = 0; b < B; ++b)
        for (int ci = 0; ci < C; ++ci)
            for (int gy = 0; gy < H / P; ++gy)
                for (int gx = 0; gx < W / P; ++gx)
                    for (int py = 0; py < P; ++py)
                        for (int px = 0; px < P; ++px)
                            rpt[((size_t)(b * np) + gy * (W / P) + gx) * pv + ci * P * P + py * P + px] =
                                img[(((size_t)b * C + ci) * H + gy * P + py) * W + gx * P + px];
    vb I = tobf(img), Pt(rpt.size()), back(img.size());
    launch({2}, {64}, [&] { patchify_bf16(Pt.data(), I.data(), B, C, H, W, P); });
    checkb("patchify bf16", Pt, rpt, 0);
    launch({2}, {64}, [&] { unpatchify_bf16(back.data(), Pt.data(), B, C, H, W, P); });
    checkb("unpatchify bf16", back, dbl(img), 0);
    int Ns = 5, Nd = 6, D = 70;  // D > 64 threads: the column loop wraps
    vf src = rnd(randv((size_t)B * Ns * D)), fill = rnd(randv(D)), dout = rnd(randv((size_t)B * Nd * D)), df0 = rnd(randv(D));
    std::vector<int> idx = {-1, 4, 0, 2, 4, 3, -1, 1, 3, 1, 1, 0};
    vd ro((size_t)B * Nd * D), rds((size_t)B * Ns * D, 0), rdf(dbl(df0));
    for (int b = 0; b < B; ++b)
        for (int i = 0; i < Nd; ++i)
            for (int d = 0; d < D; ++d) {
                int j = idx[b * Nd + i];
                ro[(b * Nd + i) * D + d] = j >= 0 ? src[(b * Ns + j) * D + d] : fill[d];
                if (j >= 0) rds[(b * Ns + j) * D + d] += dout[(b * Nd + i) * D + d];
                else rdf[d] += dout[(b * Nd + i) * D + d];
            }
    vb S = tobf(src), F = tobf(fill), dO = tobf(dout), out(ro.size()), dS(rds.size()), dF = tobf(df0);
    launch({(unsigned)(B * Nd)}, {64}, [&] { gather_rows_bf16(out.data(), S.data(), idx.data(), F.data(), Ns, Nd, D); });
    checkb("gather_rows bf16 (fill)", out, ro, 0);
    launch({(unsigned)(B * Ns)}, {64}, [&] { gather_rows_backward_bf16(dS.data(), dO.data(), idx.data(), Ns, Nd, D); });
    checkb("gather_rows backward bf16 (repeated rows)", dS, rds, ULP);
    launch({1}, {128}, [&] { gather_fill_backward_bf16(dF.data(), dO.data(), idx.data(), B * Nd, D); });
    checkb("gather fill backward bf16 (+=)", dF, rdf, ULP);
}

// ---------------------------------------------------------------- conv1d and weight norm
// As src/backend/cuda/conv1d.rs: channels staged per pass within 8K floats of shared memory.
static int channels_per_pass(int per, int total) {
    return std::min(std::min(std::max(8 * 1024 / per, 1), 16), std::max(total, 1));
}

static void conv1d_case(int Bn, int Cin, int Cout, int Lin, int K, int stride, int pad, int groups, bool bias) {
    const int Lout = (Lin + 2 * pad - K) / stride + 1, cig = Cin / groups, cog = Cout / groups;
    vf x = rnd(randv((size_t)Bn * Cin * Lin)), w = rnd(randv((size_t)Cout * cig * K)), bv = rnd(randv(Cout)),
       dy = rnd(randv((size_t)Bn * Cout * Lout));
    vd ry(dy.size()), rdx(x.size(), 0), rdw(w.size(), 0), rdb(Cout, 0);
    for (int b = 0; b < Bn; ++b)
        for (int co = 0; co < Cout; ++co)
            for (int t = 0; t < Lout; ++t) {
                size_t yi = ((size_t)b * Cout + co) * Lout + t;
                double s = bias ? bv[co] : 0.0;
                for (int c = 0; c < cig; ++c)
                    for (int j = 0; j < K; ++j) {
                        int p = t * stride - pad + j;
                        if (p < 0 || p >= Lin) continue;
                        size_t xi = ((size_t)b * Cin + (co / cog) * cig + c) * Lin + p, wi = ((size_t)co * cig + c) * K + j;
                        s += (double)w[wi] * x[xi];
                        rdx[xi] += (double)w[wi] * dy[yi];
                        rdw[wi] += (double)dy[yi] * x[xi];
                    }
                ry[yi] = s;
                rdb[co] += dy[yi];
            }
    vb X = tobf(x), Wt = tobf(w), Bi = tobf(bv), dY = tobf(dy), Y(ry.size()), dX(x.size()), dW(w.size(), 0), dB(Cout, 0);
    const int win = 127 * stride + K, ccf = channels_per_pass(win + K, cig), ccb = channels_per_pass(K, cog);
    launch({(unsigned)((Lout + 127) / 128), (unsigned)Cout, (unsigned)Bn}, {128}, (size_t)ccf * (win + K) * 4, [&] {
        conv1d_forward_bf16(Y.data(), X.data(), Wt.data(), bias ? Bi.data() : nullptr, Cin, Cout, Lin, Lout, K, stride, pad, groups, ccf);
    });
    launch({(unsigned)((Lin + 127) / 128), (unsigned)Cin, (unsigned)Bn}, {128}, (size_t)ccb * K * 4, [&] {
        conv1d_backward_input_bf16(dX.data(), dY.data(), Wt.data(), Cin, Cout, Lin, Lout, K, stride, pad, groups, ccb);
    });
    {
        // The weight gradient as src/backend/cuda/conv1d.rs launches it: fp32 partial products
        // over splits of batch × time (64 steps each here, so several splits), then their sum.
        const int n = cig * K;
        const long long R = (long long)Bn * Lout, per = 64;
        const int splits = (int)((R + per - 1) / per);
        std::vector<float> part((size_t)splits * Cout * n, NAN);
        dim3 grid{(unsigned)((n + 31) / 32), (unsigned)((cog + 31) / 32), (unsigned)(groups * splits)};
        launch(grid, {256}, [&] {
            conv1d_backward_weight_partial_bf16(part.data(), dY.data(), X.data(), Bn, Cin, Cout, Lin, Lout, K, stride, pad, groups, splits, per);
        });
        launch({3}, {128}, [&] { conv1d_backward_weight_reduce_bf16(dW.data(), part.data(), (long long)Cout * n, splits); });
    }
    launch({(unsigned)Cout}, {256}, [&] { conv1d_backward_bias_bf16(dB.data(), dY.data(), Bn, Cout, Lout); });
    char name[120];
    snprintf(name, 120, "conv1d bf16 fwd B%d %d->%d L%d k%d s%d p%d g%d", Bn, Cin, Cout, Lin, K, stride, pad, groups);
    checkb(name, Y, ry, ULP);
    snprintf(name, 120, "conv1d bf16 dx  %d->%d k%d s%d g%d (cc %d)", Cin, Cout, K, stride, groups, ccb);
    checkb(name, dX, rdx, ULP);
    snprintf(name, 120, "conv1d bf16 dw  %d->%d k%d s%d g%d", Cin, Cout, K, stride, groups);
    checkb(name, dW, rdw, ULP);
    if (bias) {
        snprintf(name, 120, "conv1d bf16 db  %d->%d", Cin, Cout);
        checkb(name, dB, rdb, ULP);
    }
}

// v viewed as [outer, kdim, inner]; the norm is over everything but the kdim axis.
static void weight_norm_case(int outer, int kdim, int inner) {
    const long long n = (long long)outer * kdim * inner;
    vf v = rnd(randv(n)), g = rnd(randv(kdim, 0.5, 2)), dw = rnd(randv(n));
    vd rn(kdim, 0), rs(kdim, 0), rw(n), rdg(kdim), rdv(n);
    auto at = [&](int o, int k, int i) { return ((size_t)o * kdim + k) * inner + i; };
    for (int o = 0; o < outer; ++o)
        for (int k = 0; k < kdim; ++k)
            for (int i = 0; i < inner; ++i) { rn[k] += (double)v[at(o, k, i)] * v[at(o, k, i)]; rs[k] += (double)dw[at(o, k, i)] * v[at(o, k, i)]; }
    for (int k = 0; k < kdim; ++k) { rn[k] = std::sqrt(rn[k]); rdg[k] = rs[k] / rn[k]; }
    for (int o = 0; o < outer; ++o)
        for (int k = 0; k < kdim; ++k)
            for (int i = 0; i < inner; ++i) {
                size_t e = at(o, k, i);
                rw[e] = g[k] * v[e] / rn[k];
                rdv[e] = g[k] / rn[k] * dw[e] - g[k] * rs[k] / (rn[k] * rn[k] * rn[k]) * v[e];
            }
    vb V = tobf(v), G = tobf(g), dW = tobf(dw), Wo(n), dG(kdim, 0), dV(n, 0);
    vf norm(kdim), s(kdim);
    launch({(unsigned)kdim}, {256}, [&] { weight_norm_norms_bf16(norm.data(), V.data(), outer, kdim, inner); });
    launch({4}, {256}, [&] { weight_norm_forward_bf16(Wo.data(), G.data(), V.data(), norm.data(), n, kdim, inner); });
    launch({(unsigned)kdim}, {256}, [&] { weight_norm_backward_g_bf16(dG.data(), s.data(), dW.data(), V.data(), norm.data(), outer, kdim, inner); });
    launch({4}, {256}, [&] { weight_norm_backward_v_bf16(dV.data(), dW.data(), G.data(), V.data(), norm.data(), s.data(), n, kdim, inner); });
    char name[120];
    snprintf(name, 120, "weight_norm bf16 [%d,%d,%d] norms (f32)", outer, kdim, inner);
    check(name, norm, rn, F32);
    snprintf(name, 120, "weight_norm bf16 [%d,%d,%d] w", outer, kdim, inner);
    checkb(name, Wo, rw, ULP);
    snprintf(name, 120, "weight_norm bf16 [%d,%d,%d] dg", outer, kdim, inner);
    checkb(name, dG, rdg, ULP);
    snprintf(name, 120, "weight_norm bf16 [%d,%d,%d] dv", outer, kdim, inner);
    checkb(name, dV, rdv, ULP);
}

// conv1d.cu's layout kernels: transpose_last2 on 32x8 thread blocks (2-D), slice_axis and its
// backward. Pure copies: exact.
static void conv1d_layout() {
    int Bn = 2, M = 37, N = 70;  // neither a multiple of the 32x32 tile
    vf x = rnd(randv((size_t)Bn * M * N));
    vd rt(x.size());
    for (int b = 0; b < Bn; ++b)
        for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) rt[((size_t)b * N + n) * M + m] = x[((size_t)b * M + m) * N + n];
    vb X = tobf(x), T(x.size());
    launch({(unsigned)((N + 31) / 32), (unsigned)((M + 31) / 32), (unsigned)Bn}, {32, 8, 1}, [&] { transpose_last2_bf16(T.data(), X.data(), M, N); });
    checkb("transpose_last2 bf16 (conv1d, 32x8 blocks)", T, rt, 0);
    int outer = 3, len_in = 29, inner = 5, start = 4, len = 20;
    vf v = rnd(randv((size_t)outer * len_in * inner)), dy = rnd(randv((size_t)outer * len * inner));
    vd rs((size_t)outer * len * inner), rb((size_t)outer * len_in * inner, 0.0);
    for (int o = 0; o < outer; ++o)
        for (int t = 0; t < len; ++t)
            for (int i = 0; i < inner; ++i) {
                rs[((size_t)o * len + t) * inner + i] = v[((size_t)o * len_in + start + t) * inner + i];
                rb[((size_t)o * len_in + start + t) * inner + i] = dy[((size_t)o * len + t) * inner + i];
            }
    vb V = tobf(v), dY = tobf(dy), S(rs.size()), dX(rb.size());
    launch({2}, {256}, [&] { slice_axis_bf16(S.data(), V.data(), outer, len_in, inner, start, len); });
    checkb("slice_axis bf16", S, rs, 0);
    launch({2}, {256}, [&] { slice_axis_backward_bf16(dX.data(), dY.data(), outer, len_in, inner, start, len); });
    checkb("slice_axis backward bf16 (zeros outside)", dX, rb, 0);
}

// ---------------------------------------------------------------- batch norm, conv2d
static void batch_norm_case(int N, int C, int H, int W) {
    long HW = (long)H * W, M = N * HW;
    const float eps = 1e-5f, mom = 0.1f;
    vf x = rnd(randv((size_t)N * C * HW, -1, 3)), w = rnd(randv(C)), b = rnd(randv(C)), dy = rnd(randv((size_t)N * C * HW));
    vf rm = randv(C), rv = randv(C, 0.5, 2);
    vd mu(C), rs(C), rmr(C), rvr(C), ry(x.size()), rye(x.size()), rdx(x.size()), rdw(C), rdb(C);
    for (int c = 0; c < C; ++c) {
        double s = 0, v = 0, sdy = 0, sdyx = 0;
        for (int n = 0; n < N; ++n) for (long p = 0; p < HW; ++p) s += x[(n * C + c) * HW + p];
        mu[c] = s / M;
        for (int n = 0; n < N; ++n) for (long p = 0; p < HW; ++p) { double d = x[(n * C + c) * HW + p] - mu[c]; v += d * d; }
        v /= M;
        rs[c] = 1 / std::sqrt(v + eps);
        rmr[c] = (1 - mom) * rm[c] + mom * mu[c];
        rvr[c] = (1 - mom) * rv[c] + mom * v * M / (M - 1);
        for (int n = 0; n < N; ++n)
            for (long p = 0; p < HW; ++p) {
                long i = (n * C + c) * HW + p;
                double xh = (x[i] - mu[c]) * rs[c];
                ry[i] = xh * w[c] + b[c];
                rye[i] = (x[i] - rmr[c]) / std::sqrt(rvr[c] + eps) * w[c] + b[c];
                sdy += dy[i];
                sdyx += dy[i] * xh;
            }
        rdw[c] = sdyx;
        rdb[c] = sdy;
        for (int n = 0; n < N; ++n)
            for (long p = 0; p < HW; ++p) {
                long i = (n * C + c) * HW + p;
                double xh = (x[i] - mu[c]) * rs[c];
                rdx[i] = w[c] * rs[c] * (dy[i] - sdy / M - xh * sdyx / M);
            }
    }
    vb X = tobf(x), Wt = tobf(w), Bb = tobf(b), dY = tobf(dy), Y(x.size()), Ye(x.size()), dX(x.size()), dW(C, 0), dB(C, 0);
    vf mean(C), rstd(C);
    launch({(unsigned)C}, {256}, [&] { batch_norm_stats_bf16(mean.data(), rstd.data(), rm.data(), rv.data(), X.data(), N, C, HW, eps, mom); });
    launch({8}, {256}, [&] { batch_norm_apply_bf16(Y.data(), X.data(), Wt.data(), Bb.data(), mean.data(), rstd.data(), C, HW, (long long)x.size()); });
    launch({8}, {256}, [&] { batch_norm_eval_bf16(Ye.data(), X.data(), Wt.data(), Bb.data(), rm.data(), rv.data(), C, HW, (long long)x.size(), eps); });
    launch({(unsigned)C}, {256}, [&] { batch_norm_backward_bf16(dX.data(), dW.data(), dB.data(), dY.data(), X.data(), Wt.data(), mean.data(), rstd.data(), N, C, HW); });
    vf st(mean);
    st.insert(st.end(), rstd.begin(), rstd.end());
    st.insert(st.end(), rm.begin(), rm.end());
    st.insert(st.end(), rv.begin(), rv.end());
    vd rst(mu);
    rst.insert(rst.end(), rs.begin(), rs.end());
    rst.insert(rst.end(), rmr.begin(), rmr.end());
    rst.insert(rst.end(), rvr.begin(), rvr.end());
    check("batch_norm bf16 mean, rstd, running stats (f32)", st, rst, F32);
    checkb("batch_norm bf16 apply (train)", Y, ry, ULP);
    checkb("batch_norm bf16 eval", Ye, rye, ULP);
    checkb("batch_norm bf16 dx", dX, rdx, ULP);
    checkb("batch_norm bf16 dw", dW, rdw, ULP);
    checkb("batch_norm bf16 db", dB, rdb, ULP);
}

static void conv2d_case(int N, int cin, int cout, int h, int w_, int k) {
    int P = k / 2, KK = k * k;
    long HW = (long)h * w_;
    vf x = rnd(randv((size_t)N * cin * HW)), w = rnd(randv((size_t)cout * cin * KK)), b = rnd(randv(cout)), dy = rnd(randv((size_t)N * cout * HW));
    vd ry(dy.size()), rdx(x.size(), 0), rdw(w.size(), 0), rdb(cout, 0);
    for (int n = 0; n < N; ++n)
        for (int co = 0; co < cout; ++co)
            for (int oy = 0; oy < h; ++oy)
                for (int ox = 0; ox < w_; ++ox) {
                    long yi = ((long)(n * cout + co) * h + oy) * w_ + ox;
                    double s = b[co];
                    for (int ci = 0; ci < cin; ++ci)
                        for (int ky = 0; ky < k; ++ky)
                            for (int kx = 0; kx < k; ++kx) {
                                int iy = oy + ky - P, ix = ox + kx - P;
                                if (iy < 0 || ix < 0 || iy >= h || ix >= w_) continue;
                                long xi = ((long)(n * cin + ci) * h + iy) * w_ + ix, wi = ((long)(co * cin + ci) * k + ky) * k + kx;
                                s += (double)w[wi] * x[xi];
                                rdx[xi] += (double)w[wi] * dy[yi];
                                rdw[wi] += (double)dy[yi] * x[xi];
                            }
                    ry[yi] = s;
                    rdb[co] += dy[yi];
                }
    vb X = tobf(x), Wt = tobf(w), Bb = tobf(b), dY = tobf(dy), Y(ry.size()), dX(x.size()), dW(w.size(), 0), dB(cout, 0);
    unsigned tiles = (unsigned)(((h + 15) / 16) * ((w_ + 15) / 16));
    auto fwd = k == 3 ? conv2d_forward_k3_bf16 : conv2d_forward_k1_bf16;
    auto bin = k == 3 ? conv2d_backward_input_k3_bf16 : conv2d_backward_input_k1_bf16;
    auto bwt = k == 3 ? conv2d_backward_weight_k3_bf16 : conv2d_backward_weight_k1_bf16;
    launch({tiles, (unsigned)((cout + 7) / 8), (unsigned)N}, {256}, [&] { fwd(Y.data(), X.data(), Wt.data(), Bb.data(), 1, N, cin, cout, h, w_); });
    launch({tiles, (unsigned)((cin + 7) / 8), (unsigned)N}, {256}, [&] { bin(dX.data(), dY.data(), Wt.data(), N, cin, cout, h, w_); });
    launch({(unsigned)(cout * cin)}, {256}, [&] { bwt(dW.data(), dY.data(), X.data(), N, cin, cout, h, w_); });
    launch({(unsigned)cout}, {256}, [&] { conv2d_backward_bias_bf16(dB.data(), dY.data(), N, cout, HW); });
    char name[120];
    snprintf(name, 120, "conv2d bf16 fwd n%d %d->%d %dx%d k%d", N, cin, cout, h, w_, k);
    checkb(name, Y, ry, ULP);
    snprintf(name, 120, "conv2d bf16 dx  n%d %d->%d %dx%d k%d", N, cin, cout, h, w_, k);
    checkb(name, dX, rdx, ULP);
    snprintf(name, 120, "conv2d bf16 dw  n%d %d->%d %dx%d k%d", N, cin, cout, h, w_, k);
    checkb(name, dW, rdw, ULP);
    snprintf(name, 120, "conv2d bf16 db  n%d %d->%d %dx%d k%d", N, cin, cout, h, w_, k);
    checkb(name, dB, rdb, ULP);
}

// ---------------------------------------------------------------- dropout, AdamW
static void dropout_case(float p) {
    const long long n = 3001;
    vf x = rnd(randv(n, 0.5, 2));  // nonzero, so a zero output means a dropped element
    const unsigned long long seed = 0x1234567890abcdefull;
    const unsigned step = 7, sid = 3;
    vd ref(n);
    const double scale = 1.0 / (1.0 - p);
    for (long long i = 0; i < n; ++i) ref[i] = philox_uniform(seed, step, sid, i) >= p ? x[i] * scale : 0.0;
    vb X = tobf(x), Y(n);
    vf yf(n);
    launch({4}, {256}, [&] { dropout_bf16(Y.data(), X.data(), n, p, seed, step, sid); });
    launch({4}, {256}, [&] { dropout_f32(yf.data(), x.data(), n, p, seed, step, sid); });
    int mask_diff = 0, dropped = 0;
    for (long long i = 0; i < n; ++i) {
        mask_diff += (Y[i] == 0) != (ref[i] == 0) || (Y[i] == 0) != (yf[i] == 0);
        dropped += Y[i] == 0;
    }
    char name[120];
    snprintf(name, 120, "dropout bf16 p=%.1f mask (= f32 kernel, = twin)", p);
    printf("%-58s %d of %lld differ, %.3f dropped %s\n", name, mask_diff, n, (double)dropped / n, mask_diff ? "FAIL" : "ok");
    if (mask_diff) ++failures;
    snprintf(name, 120, "dropout bf16 p=%.1f values", p);
    checkb(name, Y, ref, ULP);
}

static void adamw_bf16_copy() {
    const int N = 1001;
    vf p = randv(N), m(N, 0.f), v(N, 0.f);
    vb pb(N);
    vd rp(p.begin(), p.end()), rm(N, 0), rv(N, 0);
    for (int t = 1; t <= 3; ++t) {
        vf g = randv(N);
        double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
        for (int i = 0; i < N; ++i) {
            rm[i] = 0.9 * rm[i] + 0.1 * g[i];
            rv[i] = 0.999 * rv[i] + 0.001 * (double)g[i] * g[i];
            rp[i] = rp[i] * (1 - 3e-3 * 0.05) - 3e-3 * (rm[i] / bc1) / (std::sqrt(rv[i] / bc2) + 1e-8);
        }
        // one chunk over the whole buffer, no clipping (the norm is only the non-finite guard)
        int off = 0, len = N;
        float one = 1.0f, nsq = 1.0f;
        launch({1}, {256}, [&] { adamw_chunks(p.data(), m.data(), v.data(), pb.data(), g.data(), &off, &len, &one, &one, &nsq, 3e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, (float)bc1, (float)std::sqrt(bc2), 0.0f); });
    }
    int bad = 0;
    for (int i = 0; i < N; ++i) bad += pb[i] != ref_bf16(p[i]);
    printf("%-58s %d of %d differ %s\n", "adamw bf16 copy == RNE(fp32 master), bitwise", bad, N, bad ? "FAIL" : "ok");
    if (bad) ++failures;
    check("adamw fp32 master (3 steps, one chunk)", p, rp, 1e-6);
    checkb("adamw bf16 copy vs double", pb, rp, ULP);
}

int main() {
    casts();
    matmul_case(1, 37, 53, 29, false, false, true, false);
    matmul_case(2, 131, 45, 67, false, true, false, true);
    matmul_case(2, 29, 140, 19, true, false, true, false);
    matmul_case(1, 130, 129, 9, true, true, true, true);
    sum_rows_case(67, 45, false);
    sum_rows_case(9, 131, true);
    attention_case(1, 37, 0, 1, 20, true);
    attention_case(1, 33, 0, 2, 16, true);
    attention_case(1, 19, 0, 1, 64, true);
    attention_case(1, 21, 45, 2, 20, false);
    elementwise();
    layer_norm_case(9, 131, 128);
    layer_norm_case(5, 40, 64);
    softmax_case(7, 45, 32);
    softmax_case(3, 197, 128);
    tokens();
    conv1d_case(2, 3, 8, 301, 10, 5, 0, 1, false);  // feature-extractor layer
    conv1d_case(2, 16, 16, 37, 9, 1, 4, 4, true);   // grouped positional conv
    conv1d_case(1, 8, 6, 131, 3, 2, 1, 2, true);    // strided, padded, Lout = 66
    conv1d_case(1, 17, 17, 40, 3, 2, 0, 1, true);   // 17 channels: two staging passes (16 + 1)
    conv1d_layout();
    weight_norm_case(16 * 4, 9, 1);  // dim = 2 of a [16, 4, 9] pos-conv weight
    weight_norm_case(1, 6, 35);      // dim = 0
    batch_norm_case(3, 13, 9, 11);
    conv2d_case(2, 3, 5, 19, 23, 3);
    conv2d_case(1, 3, 9, 33, 17, 1);
    dropout_case(0.1f);
    dropout_case(0.5f);
    adamw_bf16_copy();
    printf("failures: %d\n", failures);
    return failures != 0;
}
