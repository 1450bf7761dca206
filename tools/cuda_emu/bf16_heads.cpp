// The `_bf16` instantiations of the SFM/SeisLM head and loss kernels (ReLU, concat/split and
// NCHW<->NHWC copies, nearest and bilinear upsampling, NLL, soft cross-entropy, MSE, masked row
// MSE, whole-tensor sums) under the emulation of emu.h, on bf16-rounded inputs against double
// loops, as bf16_ops.cpp does for the trunk kernels (a separate program because channels.cu and
// conv1d.cu both export a transpose_last2_bf16). Copies are exact; values computed in fp32 and
// rounded once are held to ~1 bf16 ulp; fp32 outputs (losses, sums) to fp32 accuracy.
#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/relu.cu"
#undef INSTANTIATE
#include "gen/channels.cu"
#undef INSTANTIATE
#include "gen/upsample.cu"
#undef INSTANTIATE
#include "gen/loss.cu"
#undef INSTANTIATE
#include "gen/reduce.cu"
#include "util.h"

#include "bf16_util.h"

static void relu_and_copies() {
    const long long n = 3001;
    vf x = rnd(randv(n)), dy = rnd(randv(n));
    vd ry(n), rdx(n);
    for (long long i = 0; i < n; ++i) { ry[i] = x[i] < 0 ? 0 : x[i]; rdx[i] = ry[i] > 0 ? dy[i] : 0; }
    vb X = tobf(x), dY = tobf(dy), Y(n), dX(n);
    launch({4}, {256}, [&] { relu_forward_bf16(Y.data(), X.data(), n); });
    checkb("relu forward bf16", Y, ry, 0);
    launch({4}, {256}, [&] { relu_backward_bf16(dX.data(), Y.data(), dY.data(), n); });
    checkb("relu backward bf16", dX, rdx, 0);
    int N = 2, C1 = 3, C2 = 4, HW = 35, Ct = C1 + C2;
    vf a = rnd(randv(N * C1 * HW)), b = rnd(randv(N * C2 * HW));
    vd catr((size_t)N * Ct * HW), tr(catr.size());
    for (int s = 0; s < N; ++s)
        for (int c = 0; c < Ct; ++c)
            for (int p = 0; p < HW; ++p) catr[(s * Ct + c) * HW + p] = c < C1 ? a[(s * C1 + c) * HW + p] : b[(s * C2 + c - C1) * HW + p];
    for (int s = 0; s < N; ++s)
        for (int c = 0; c < Ct; ++c)
            for (int p = 0; p < HW; ++p) tr[(s * HW + p) * Ct + c] = catr[(s * Ct + c) * HW + p];
    vb A = tobf(a), Bv = tobf(b), cat(catr.size()), split(b.size()), t(catr.size());
    launch({3}, {256}, [&] { copy_strided_bf16(cat.data(), A.data(), N, C1 * HW, Ct * HW, 0, C1 * HW, 0); });
    launch({3}, {256}, [&] { copy_strided_bf16(cat.data(), Bv.data(), N, C2 * HW, Ct * HW, C1 * HW, C2 * HW, 0); });
    checkb("concat bf16 (copy_strided)", cat, catr, 0);
    launch({3}, {256}, [&] { copy_strided_bf16(split.data(), cat.data(), N, C2 * HW, C2 * HW, 0, Ct * HW, C1 * HW); });
    checkb("split bf16 (copy_strided)", split, dbl(b), 0);
    launch({3}, {256}, [&] { transpose_last2_bf16(t.data(), cat.data(), N, Ct, HW); });
    checkb("nchw->nhwc bf16 (transpose_last2)", t, tr, 0);
}

// Source index as the CPU twin (src/backend/cpu/upsample.rs::bilinear_src) computes it, in f32.
static double srcidx(int o, int in, int out, int ac, int* i0, int* i1) {
    float s;
    if (ac) { float sc = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f; s = sc * (float)o; }
    else { float sc = (float)in / (float)out; s = sc * ((float)o + 0.5f) - 0.5f; if (s < 0) s = 0; }
    *i0 = std::min((int)s, in - 1);
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    return s - *i0;
}

static void upsample() {
    struct S { int h, w, ho, wo; };
    for (int ac : {0, 1})
        for (S s : {S{7, 9, 28, 36}, S{13, 11, 5, 7}, S{3, 5, 16, 11}}) {
            int P = 3;
            vf x = rnd(randv(P * s.h * s.w)), dy = rnd(randv(P * s.ho * s.wo));
            vd yr(dy.size()), dxr(x.size());
            for (int p = 0; p < P; ++p)
                for (int oy = 0; oy < s.ho; ++oy)
                    for (int ox = 0; ox < s.wo; ++ox) {
                        int y0, y1, x0, x1;
                        double ly = srcidx(oy, s.h, s.ho, ac, &y0, &y1), lx = srcidx(ox, s.w, s.wo, ac, &x0, &x1);
                        const float* xp = &x[p * s.h * s.w];
                        long o = (long)(p * s.ho + oy) * s.wo + ox;
                        yr[o] = (1 - ly) * ((1 - lx) * xp[y0 * s.w + x0] + lx * xp[y0 * s.w + x1]) + ly * ((1 - lx) * xp[y1 * s.w + x0] + lx * xp[y1 * s.w + x1]);
                        double* d = &dxr[p * s.h * s.w];
                        double g = dy[o];
                        d[y0 * s.w + x0] += (1 - ly) * (1 - lx) * g;
                        d[y0 * s.w + x1] += (1 - ly) * lx * g;
                        d[y1 * s.w + x0] += ly * (1 - lx) * g;
                        d[y1 * s.w + x1] += ly * lx * g;
                    }
            vb X = tobf(x), dY = tobf(dy), Y(dy.size()), dX(x.size());
            char name[100];
            launch({8}, {256}, [&] { upsample_bilinear_forward_bf16(Y.data(), X.data(), P, s.h, s.w, s.ho, s.wo, ac); });
            snprintf(name, 100, "bilinear bf16 fwd ac=%d %dx%d->%dx%d", ac, s.h, s.w, s.ho, s.wo);
            checkb(name, Y, yr, ULP);
            launch({8}, {256}, [&] { upsample_bilinear_backward_bf16(dX.data(), dY.data(), P, s.h, s.w, s.ho, s.wo, ac); });
            snprintf(name, 100, "bilinear bf16 bwd ac=%d %dx%d->%dx%d", ac, s.h, s.w, s.ho, s.wo);
            checkb(name, dX, dxr, ULP);
        }
    for (int k : {2, 4}) {
        int P = 3, h = 7, w = 5;
        vf x = rnd(randv(P * h * w)), dy = rnd(randv(P * h * w * k * k));
        vd yr(dy.size()), dxr(x.size());
        for (int p = 0; p < P; ++p)
            for (int oy = 0; oy < h * k; ++oy)
                for (int ox = 0; ox < w * k; ++ox) {
                    long o = ((long)p * h * k + oy) * w * k + ox;
                    yr[o] = x[(p * h + oy / k) * w + ox / k];
                    dxr[(p * h + oy / k) * w + ox / k] += dy[o];
                }
        vb X = tobf(x), dY = tobf(dy), Y(dy.size()), dX(x.size());
        char name[100];
        launch({4}, {256}, [&] { upsample_nearest_forward_bf16(Y.data(), X.data(), P, h, w, k); });
        snprintf(name, 100, "nearest bf16 fwd x%d", k);
        checkb(name, Y, yr, 0);
        launch({4}, {256}, [&] { upsample_nearest_backward_bf16(dX.data(), dY.data(), P, h, w, k); });
        snprintf(name, 100, "nearest bf16 bwd x%d", k);
        checkb(name, dX, dxr, ULP);
    }
}

static void losses(int R, int C, int threads) {
    vf x = rnd(randv((size_t)R * C, -3, 3)), y = rnd(randv((size_t)R * C)), tgr = randv((size_t)R * C, 0, 1);
    for (int r = 0; r < R; ++r) {  // soft targets: rows of a distribution, rounded to bf16
        double z = 0;
        for (int i = 0; i < C; ++i) z += tgr[r * C + i];
        for (int i = 0; i < C; ++i) tgr[r * C + i] /= z;
    }
    vf tg = rnd(tgr);
    std::vector<int> t(R);
    for (int r = 0; r < R; ++r) t[r] = r == 2 ? -100 : r == 4 ? C : (r * 7) % C;  // one ignored, one out of range
    vd rl(R), rvalid(R), rdl((size_t)R * C), rs(R), rds((size_t)R * C), rsq((size_t)R * C), rdm((size_t)R * C), rrow(R), rdrow((size_t)R * C);
    vf mask(R);
    for (int r = 0; r < R; ++r) mask[r] = (float)(r % 3 != 1);
    const float s_nll = 0.25f, s_ce = 0.5f, s_mse = 0.3f;
    for (int r = 0; r < R; ++r) {
        double m = -1e300, z = 0, ts = 0, row = 0;
        for (int i = 0; i < C; ++i) m = std::max(m, (double)x[r * C + i]);
        for (int i = 0; i < C; ++i) z += std::exp(x[r * C + i] - m);
        double lse = m + std::log(z);
        bool ok = t[r] >= 0 && t[r] < C;
        rl[r] = ok ? lse - x[r * C + t[r]] : 0;
        rvalid[r] = ok;
        for (int i = 0; i < C; ++i) { rs[r] += tg[r * C + i] * (lse - x[r * C + i]); ts += tg[r * C + i]; }
        for (int i = 0; i < C; ++i) {
            size_t e = (size_t)r * C + i;
            double p = std::exp(x[e] - lse), d = (double)x[e] - y[e];
            rdl[e] = ok ? (p - (i == t[r])) * s_nll : 0;
            rds[e] = (p * ts - tg[e]) * s_ce;
            rsq[e] = d * d;
            rdm[e] = 2 * d * s_mse;
            row += d * d;
            rdrow[e] = mask[r] * 2 * d / C * s_mse;
        }
        rrow[r] = row / C * mask[r];
    }
    vb X = tobf(x), Y = tobf(y), TG = tobf(tg), dl((size_t)R * C);
    vf l(R), valid(R), sq((size_t)R * C);
    char name[100];
    launch({(unsigned)R}, {(unsigned)threads}, [&] { nll_forward_bf16(l.data(), valid.data(), X.data(), t.data(), C); });
    snprintf(name, 100, "nll bf16 %dx%d forward (f32 row losses)", R, C);
    check(name, l, rl, F32);
    snprintf(name, 100, "nll bf16 %dx%d valid rows", R, C);
    check(name, valid, rvalid, 0);
    launch({(unsigned)R}, {(unsigned)threads}, [&] { nll_backward_bf16(dl.data(), X.data(), t.data(), C, s_nll); });
    snprintf(name, 100, "nll bf16 %dx%d backward", R, C);
    checkb(name, dl, rdl, ULP);
    launch({(unsigned)R}, {(unsigned)threads}, [&] { soft_ce_forward_bf16(l.data(), X.data(), TG.data(), C); });
    snprintf(name, 100, "soft CE bf16 %dx%d forward (f32)", R, C);
    check(name, l, rs, F32);
    launch({(unsigned)R}, {(unsigned)threads}, [&] { soft_ce_backward_bf16(dl.data(), X.data(), TG.data(), C, s_ce); });
    snprintf(name, 100, "soft CE bf16 %dx%d backward", R, C);
    checkb(name, dl, rds, ULP);
    const long long n = (long long)R * C;
    launch({2}, {256}, [&] { mse_forward_bf16(sq.data(), X.data(), Y.data(), n); });
    snprintf(name, 100, "mse bf16 %dx%d forward (f32 squares)", R, C);
    check(name, sq, rsq, F32);
    launch({2}, {256}, [&] { mse_backward_bf16(dl.data(), X.data(), Y.data(), n, s_mse); });
    snprintf(name, 100, "mse bf16 %dx%d backward", R, C);
    checkb(name, dl, rdm, ULP);
    launch({(unsigned)R}, {(unsigned)threads}, [&] { masked_row_mse_forward_bf16(l.data(), X.data(), Y.data(), mask.data(), C); });
    snprintf(name, 100, "masked row MSE bf16 %dx%d forward (f32)", R, C);
    check(name, l, rrow, F32);
    launch({(unsigned)R}, {(unsigned)threads}, [&] { masked_row_mse_backward_bf16(dl.data(), X.data(), Y.data(), mask.data(), C, s_mse); });
    snprintf(name, 100, "masked row MSE bf16 %dx%d backward", R, C);
    checkb(name, dl, rdrow, ULP);
    // Whole-tensor sums of a bf16 tensor, two passes, fp32 throughout.
    const int G = 3;
    vf part(G), out(1);
    double s = 0, s2 = 0;
    for (float v : x) { s += v; s2 += (double)v * v; }
    launch({(unsigned)G}, {256}, [&] { sum_partials_bf16(part.data(), X.data(), n); });
    launch({1}, {1024}, [&] { sum_final(out.data(), part.data(), G, 0.5f); });
    snprintf(name, 100, "sum bf16 %lld (x 0.5, f32)", n);
    check(name, out, vd{0.5 * s}, F32);
    launch({(unsigned)G}, {256}, [&] { sumsq_partials_bf16(part.data(), X.data(), n); });
    launch({1}, {1024}, [&] { sum_final(out.data(), part.data(), G, 1.0f); });
    snprintf(name, 100, "sum of squares bf16 %lld (f32)", n);
    check(name, out, vd{s2}, F32);
}

int main() {
    relu_and_copies();
    upsample();
    losses(7, 45, 32);
    losses(5, 200, 128);
    printf("failures: %d\n", failures);
    return failures != 0;
}
