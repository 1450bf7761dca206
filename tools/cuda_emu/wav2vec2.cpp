// The wav2vec2 objective's kernels (Gumbel quantizer, codevector backward, perplexity,
// contrastive loss) under the CPU emulation of emu.h, against double loops that follow the CPU
// twin (src/backend/cpu/wav2vec2.rs) step by step. run.sh rewrites the dynamic shared memory.
#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/wav2vec2.cu"
#include "util.h"
typedef std::vector<double> vd;
typedef std::vector<float> vf;

static void gumbel_case(int R, int G, int V, int D, float tau) {
    int n = R * G;
    vf logits = randv((size_t)n * V, -2, 2), soft((size_t)n * V), code = randv((size_t)G * V * D);
    std::vector<int> hard(n, -1);
    unsigned long long seed = 0x1234567890ull;
    unsigned step = 7;
    vd rsoft(soft.size());
    std::vector<int> rhard(n);
    for (int rg = 0; rg < n; ++rg) {
        std::vector<double> y(V);
        int best = 0;
        for (int i = 0; i < V; ++i) {
            long long e = (long long)rg * V + i;
            float u = philox_uniform(seed, step, 0x47554d42u, e);
            u = std::min(std::max(u, 1e-10f), 1.0f - 1e-7f);
            y[i] = ((double)logits[e] - std::log(-std::log((double)u))) / tau;
            if (y[i] > y[best]) best = i;
        }
        double z = 0;
        for (int i = 0; i < V; ++i) z += std::exp(y[i] - y[best]);
        for (int i = 0; i < V; ++i) rsoft[(size_t)rg * V + i] = std::exp(y[i] - y[best]) / z;
        rhard[rg] = best;
    }
    launch({(unsigned)n}, {256}, [&] { gumbel_forward_f32(hard.data(), soft.data(), logits.data(), V, tau, seed, step); });
    char name[120];
    snprintf(name, 120, "gumbel forward soft R%d G%d V%d", R, G, V);
    check(name, soft, rsoft, 1e-5);
    int wrong = 0;
    for (int i = 0; i < n; ++i) wrong += hard[i] != rhard[i];
    snprintf(name, 120, "gumbel forward hard R%d G%d V%d", R, G, V);
    printf("%-50s %d of %d differ %s\n", name, wrong, n, wrong ? "FAIL" : "ok");
    failures += wrong != 0;

    // gather
    vf q((size_t)n * D);
    vd rq(q.size());
    for (int rg = 0; rg < n; ++rg)
        for (int k = 0; k < D; ++k) rq[(size_t)rg * D + k] = code[((size_t)(rg % G) * V + hard[rg]) * D + k];
    launch({3}, {128}, [&] { codevector_gather_f32(q.data(), code.data(), hard.data(), (long long)q.size(), G, V, D); });
    snprintf(name, 120, "codevector gather R%d G%d V%d d%d", R, G, V, D);
    check(name, q, rq, 0);

    // backward: dlogits through the soft path, dcode by scatter (accumulated)
    vf dq = randv(q.size()), dl((size_t)n * V), dcode = randv(code.size());
    vd rdl(dl.size()), rdc(dcode.begin(), dcode.end());
    for (int rg = 0; rg < n; ++rg) {
        int g = rg % G;
        std::vector<double> dp(V);
        double dot = 0;
        for (int u = 0; u < V; ++u) {
            for (int k = 0; k < D; ++k) dp[u] += (double)code[((size_t)g * V + u) * D + k] * dq[(size_t)rg * D + k];
            dot += soft[(size_t)rg * V + u] * dp[u];
        }
        for (int u = 0; u < V; ++u) rdl[(size_t)rg * V + u] = soft[(size_t)rg * V + u] * (dp[u] - dot) / tau;
        for (int k = 0; k < D; ++k) rdc[((size_t)g * V + hard[rg]) * D + k] += dq[(size_t)rg * D + k];
    }
    launch({(unsigned)n}, {256}, (size_t)V * 4, [&] { codevector_backward_logits_f32(dl.data(), soft.data(), code.data(), dq.data(), G, V, D, tau); });
    snprintf(name, 120, "codevector backward dlogits R%d G%d V%d d%d", R, G, V, D);
    check(name, dl, rdl, 1e-5);
    launch({(unsigned)(G * V)}, {256}, [&] { codevector_backward_code_f32(dcode.data(), dq.data(), hard.data(), R, G, V, D); });
    snprintf(name, 120, "codevector backward dcode R%d G%d V%d d%d", R, G, V, D);
    check(name, dcode, rdc, 1e-6);
}

static void perplexity_case(int R, int G, int V) {
    int C = G * V;
    vf logits = randv((size_t)R * C, -2, 2), w(R), probs((size_t)R * C), marg(C), dmarg(C), ppl(G), dl((size_t)R * C);
    for (int r = 0; r < R; ++r) w[r] = (r % 3 == 1) ? 0.0f : 1.0f;
    double wsum = 0;
    for (float x : w) wsum += x;
    float dppl = -0.37f;
    vd rprobs(probs.size()), rmarg(C, 0.0), rppl(G), rdl(dl.size(), 0.0), rdm(C);
    for (int rg = 0; rg < R * G; ++rg) {
        double m = -1e300, z = 0;
        for (int v = 0; v < V; ++v) m = std::max(m, (double)logits[(size_t)rg * V + v]);
        for (int v = 0; v < V; ++v) z += std::exp(logits[(size_t)rg * V + v] - m);
        for (int v = 0; v < V; ++v) {
            rprobs[(size_t)rg * V + v] = std::exp(logits[(size_t)rg * V + v] - m) / z;
            probs[(size_t)rg * V + v] = (float)rprobs[(size_t)rg * V + v];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) rmarg[c] += w[r] * rprobs[(size_t)r * C + c] / wsum;
    for (int g = 0; g < G; ++g) {
        double h = 0;
        for (int v = 0; v < V; ++v) h -= rmarg[g * V + v] * std::log(rmarg[g * V + v] + 1e-7);
        rppl[g] = std::exp(h);
        for (int v = 0; v < V; ++v) {
            double p = rmarg[g * V + v];
            rdm[g * V + v] = dppl / wsum * (-rppl[g] * (std::log(p + 1e-7) + p / (p + 1e-7)));
        }
    }
    for (int r = 0; r < R; ++r)
        for (int g = 0; g < G; ++g) {
            if (w[r] == 0) continue;
            size_t base = ((size_t)r * G + g) * V;
            double dot = 0;
            for (int v = 0; v < V; ++v) dot += rprobs[base + v] * w[r] * rdm[g * V + v];
            for (int v = 0; v < V; ++v) rdl[base + v] = rprobs[base + v] * (w[r] * rdm[g * V + v] - dot);
        }
    launch({(unsigned)((C + 31) / 32)}, {256}, [&] { perplexity_marginal_f32(marg.data(), probs.data(), w.data(), R, C, (float)(1.0 / wsum)); });
    check("perplexity marginal", marg, rmarg, 1e-6);
    launch({(unsigned)G}, {256}, [&] { perplexity_finish_f32(ppl.data(), dmarg.data(), marg.data(), V, (float)(dppl / wsum)); });
    check("perplexity per group", ppl, rppl, 1e-5);
    check("perplexity marginal gradient", dmarg, rdm, 1e-5);
    launch({(unsigned)(R * G)}, {256}, [&] { perplexity_backward_f32(dl.data(), probs.data(), w.data(), dmarg.data(), G, V); });
    check("perplexity backward dlogits", dl, rdl, 1e-5);
}

// rows of width f; M frames, each with its positive and K negatives; one negative of frame 0
// is a copy of its positive (excluded), frame 1 has a repeated negative.
static void contrastive_case(int rows, int f, int M, int K, float kappa, float dloss) {
    vf c = randv((size_t)rows * f), q = randv((size_t)rows * f);
    std::vector<int> pos(M), cand((size_t)M * (K + 1));
    for (int m = 0; m < M; ++m) pos[m] = (m * 7 + 3) % rows;  // distinct for rows ≥ M, 7 coprime
    int twin = -1;
    for (int j = 0; j < rows; ++j) {
        bool used = false;
        for (int p : pos) used |= p == j;
        if (!used) { twin = j; break; }
    }
    for (int i = 0; i < f; ++i) q[(size_t)twin * f + i] = q[(size_t)pos[0] * f + i];
    std::mt19937 g(5);
    for (int m = 0; m < M; ++m) {
        cand[(size_t)m * (K + 1)] = pos[m];
        for (int k = 1; k <= K; ++k) {
            int j;
            do j = (int)(g() % rows); while (j == pos[m]);
            cand[(size_t)m * (K + 1) + k] = j;
        }
    }
    cand[1] = twin;
    cand[(size_t)(K + 1) + 2] = cand[(size_t)(K + 1) + 1];
    int S = M * (K + 1);
    std::vector<int> offsets(rows + 1, 0), entries(S), fill(rows);
    for (int s = 0; s < S; ++s) offsets[cand[s] + 1]++;
    for (int j = 0; j < rows; ++j) offsets[j + 1] += offsets[j];
    for (int j = 0; j < rows; ++j) fill[j] = offsets[j];
    for (int s = 0; s < S; ++s) entries[fill[cand[s]]++] = s;
    // double reference
    vd rloss(M), rdc((size_t)rows * f, 0.0), rdq((size_t)rows * f, 0.0);
    auto nrm = [&](const vf& x, int r) { double s = 0; for (int i = 0; i < f; ++i) s += (double)x[(size_t)r * f + i] * x[(size_t)r * f + i]; return std::sqrt(s); };
    for (int m = 0; m < M; ++m) {
        int p = pos[m];
        double cn = nrm(c, p);
        std::vector<double> lg(K + 1), cs(K + 1), den(K + 1);
        std::vector<bool> ex(K + 1, false);
        for (int k = 0; k <= K; ++k) {
            int j = cand[(size_t)m * (K + 1) + k];
            bool same = k > 0;
            for (int i = 0; i < f && same; ++i) same = q[(size_t)j * f + i] == q[(size_t)p * f + i];
            double dot = 0;
            for (int i = 0; i < f; ++i) dot += (double)c[(size_t)p * f + i] * q[(size_t)j * f + i];
            den[k] = std::max(cn * nrm(q, j), 1e-8);
            cs[k] = same ? 0 : dot / den[k];
            ex[k] = same;
            lg[k] = same ? -INFINITY : cs[k] / kappa;
        }
        double mx = -INFINITY, z = 0;
        for (double l : lg) mx = std::max(mx, l);
        for (double l : lg) z += std::exp(l - mx);
        rloss[m] = mx + std::log(z) - lg[0];
        for (int k = 0; k <= K; ++k) {
            if (ex[k]) continue;
            int j = cand[(size_t)m * (K + 1) + k];
            double gk = dloss * (std::exp(lg[k] - mx) / z - (k == 0)) / kappa, qn = nrm(q, j);
            for (int i = 0; i < f; ++i) {
                rdc[(size_t)p * f + i] += gk * (q[(size_t)j * f + i] / den[k] - cs[k] * c[(size_t)p * f + i] / std::max(cn * cn, 1e-16));
                rdq[(size_t)j * f + i] += gk * (c[(size_t)p * f + i] / den[k] - cs[k] * q[(size_t)j * f + i] / std::max(qn * qn, 1e-16));
            }
        }
    }
    vf loss(M), dc((size_t)rows * f, 0.0f), dq((size_t)rows * f, 0.0f), ca(S), cb(S);
    launch({(unsigned)M}, {256}, (size_t)(2 * f + 3 * (K + 1)) * 4, [&] { contrastive_forward_f32(loss.data(), dc.data(), ca.data(), cb.data(), c.data(), q.data(), cand.data(), K + 1, f, kappa, dloss); });
    char name[120];
    snprintf(name, 120, "contrastive loss rows%d f%d M%d K%d", rows, f, M, K);
    check(name, loss, rloss, 1e-5);
    snprintf(name, 120, "contrastive dc rows%d f%d M%d K%d", rows, f, M, K);
    check(name, dc, rdc, 1e-5);
    launch({(unsigned)rows}, {256}, [&] { contrastive_backward_q_f32(dq.data(), c.data(), q.data(), ca.data(), cb.data(), cand.data(), offsets.data(), entries.data(), K + 1, f); });
    snprintf(name, 120, "contrastive dq rows%d f%d M%d K%d", rows, f, M, K);
    check(name, dq, rdq, 1e-5);
}

int main() {
    gumbel_case(5, 2, 37, 13, 0.7f);
    gumbel_case(3, 2, 300, 9, 2.0f);     // more codevectors than threads
    gumbel_case(300, 2, 7, 300, 0.5f);   // several row chunks and dims per thread in the scatter
    perplexity_case(40, 2, 37);
    perplexity_case(9, 3, 300);
    contrastive_case(24, 37, 10, 6, 0.1f, 0.25f);
    contrastive_case(30, 300, 12, 40, 0.3f, 1.0f);  // f > blockDim, K+1 > warps
    printf("failures: %d\n", failures);
    return failures != 0;
}
