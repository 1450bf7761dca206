// The conv1d weight gradient (tiled partial products over splits of batch × time, then an
// in-order sum of the splits) under the CPU emulation of emu.h, against a double loop.
#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/conv1d.cu"
#include "util.h"

static void weight_grad_case(int B, int Cin, int Cout, int Lin, int K, int S, int P, int G, long long per) {
    int Lout = (Lin + 2 * P - K) / S + 1, cig = Cin / G, cog = Cout / G, N = cig * K;
    auto x = randv((size_t)B * Cin * Lin), dy = randv((size_t)B * Cout * Lout), dw = randv((size_t)Cout * N);
    std::vector<double> ref(dw.begin(), dw.end());
    for (int co = 0; co < Cout; ++co)
        for (int cl = 0; cl < cig; ++cl)
            for (int j = 0; j < K; ++j) {
                double s = 0;
                int ci = (co / cog) * cig + cl;
                for (int b = 0; b < B; ++b)
                    for (int t = 0; t < Lout; ++t) {
                        int pos = t * S - P + j;
                        if (pos >= 0 && pos < Lin) s += (double)dy[((size_t)b * Cout + co) * Lout + t] * x[((size_t)b * Cin + ci) * Lin + pos];
                    }
                ref[((size_t)co * cig + cl) * K + j] += s;
            }
    long long R = (long long)B * Lout;
    int splits = (int)((R + per - 1) / per);
    std::vector<float> part((size_t)splits * Cout * N, NAN);
    dim3 grid{(unsigned)((N + 31) / 32), (unsigned)((cog + 31) / 32), (unsigned)(G * splits)};
    launch(grid, {256}, [&] { conv1d_backward_weight_partial_f32(part.data(), dy.data(), x.data(), B, Cin, Cout, Lin, Lout, K, S, P, G, splits, per); });
    long long n = (long long)Cout * N;
    launch({3}, {128}, [&] { conv1d_backward_weight_reduce_f32(dw.data(), part.data(), n, splits); });
    char name[120];
    snprintf(name, 120, "conv1d dw b%d cin%d cout%d l%d k%d s%d p%d g%d splits%d", B, Cin, Cout, Lin, K, S, P, G, splits);
    check(name, dw, ref, 1e-6);
}

int main() {
    weight_grad_case(2, 3, 17, 301, 3, 2, 0, 1, 64);      // the feature extractor's first conv
    weight_grad_case(2, 3, 40, 301, 3, 2, 0, 1, 1024);    // one split, two channel tiles
    weight_grad_case(2, 30, 30, 77, 16, 1, 8, 5, 96);     // grouped, even kernel, padding
    weight_grad_case(1, 48, 48, 131, 128, 1, 64, 16, 70); // the positional conv's shape, narrower
    weight_grad_case(2, 40, 24, 60, 7, 3, 3, 1, 32);      // N = 280 over 9 column tiles
    printf("failures: %d\n", failures);
    return failures != 0;
}
