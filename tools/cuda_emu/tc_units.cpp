// Unit tests of the emulator's warp-level and tensor-core operations (emu.h) against oracles
// written out here: the mma fragments are placed by the PTX ISA's tables in their "element i"
// form (not emu.h's register form) and the products compared with a plain triple loop; ldmatrix
// against the ISA's description of which lane receives which pair; cp.async's deferred copy;
// shuffles; and the errors the emulator must report (partial-warp collectives, partial
// barriers, misaligned addresses, launch limits).
#include "emu.h"
#include "../../kernels/common.cuh"
#include "util.h"

static void expect(const char* name, bool ok) {
    if (!ok) ++failures;
    printf("%-50s %s\n", name, ok ? "ok" : "FAIL");
}
static uint16_t bf(float f) { return f32_to_bf16(f); }
static float unbf(uint16_t h) { return bf16_to_f32(h); }

// m16n8k16 bf16, PTX ISA "Matrix fragments for mma.m16n8k16 with floating point type":
// A element a_i (i = 0..7, two per register, low half first): row = groupID for i in
// {0,1,4,5}, else groupID + 8; col = threadID_in_group * 2 + (i & 1), + 8 for i >= 4.
// B element b_i (i = 0..3): row = threadID_in_group * 2 + (i & 1), + 8 for i >= 2; col = groupID.
// C element c_i (i = 0..3): row = groupID for i < 2, else + 8; col = threadID_in_group * 2 + (i & 1).
static void mma_bf16_unit() {
    auto a = randv(16 * 16), b = randv(16 * 8), c = randv(16 * 8);
    for (auto& x : a) x = unbf(bf(x));
    for (auto& x : b) x = unbf(bf(x));
    std::vector<float> d(16 * 8, NAN);
    launch({1}, {32}, [&] {
        const int lane = threadIdx.x, g = lane >> 2, t = lane % 4;
        uint16_t ae[8], be[4];
        float ce[4];
        for (int i = 0; i < 8; ++i) {
            int row = (i == 0 || i == 1 || i == 4 || i == 5) ? g : g + 8;
            int col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
            ae[i] = bf(a[row * 16 + col]);
        }
        for (int i = 0; i < 4; ++i) be[i] = bf(b[(t * 2 + (i & 1) + (i >= 2 ? 8 : 0)) * 8 + g]);
        for (int i = 0; i < 4; ++i) ce[i] = c[(i < 2 ? g : g + 8) * 8 + t * 2 + (i & 1)];
        unsigned ar[4], br[2];
        for (int r = 0; r < 4; ++r) ar[r] = ae[2 * r] | ((unsigned)ae[2 * r + 1] << 16);
        for (int r = 0; r < 2; ++r) br[r] = be[2 * r] | ((unsigned)be[2 * r + 1] << 16);
        float dr[4];
        mma_bf16_16816(dr, ar, br, ce);
        for (int i = 0; i < 4; ++i) d[(i < 2 ? g : g + 8) * 8 + t * 2 + (i & 1)] = dr[i];
    });
    std::vector<double> ref(16 * 8);
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
            double s = c[i * 8 + j];
            for (int k = 0; k < 16; ++k) s += (double)a[i * 16 + k] * b[k * 8 + j];
            ref[i * 8 + j] = s;
        }
    check("mma m16n8k16 bf16 vs triple loop", d, ref, 1e-6);
}

// m16n8k8 tf32 (PTX ISA "Matrix fragments for mma.m16n8k8", .tf32): a_i (i = 0..3): row =
// groupID for i in {0, 2}, else + 8; col = threadID_in_group for i < 2, else + 4. b_i (i = 0, 1):
// row = threadID_in_group (+ 4 for i = 1); col = groupID. C as for m16n8k16.
static void mma_tf32_unit() {
    auto a = randv(16 * 8), b = randv(8 * 8), c = randv(16 * 8);
    auto tf = [](float x) { unsigned u = f32_to_tf32(x); float f; memcpy(&f, &u, 4); return f; };
    for (auto& x : a) x = tf(x);
    for (auto& x : b) x = tf(x);
    std::vector<float> d(16 * 8, NAN);
    launch({1}, {32}, [&] {
        const int lane = threadIdx.x, g = lane >> 2, t = lane % 4;
        unsigned ar[4], br[2];
        float ce[4], dr[4];
        for (int i = 0; i < 4; ++i) ar[i] = f32_to_tf32(a[((i == 0 || i == 2) ? g : g + 8) * 8 + (i < 2 ? t : t + 4)]);
        for (int i = 0; i < 2; ++i) br[i] = f32_to_tf32(b[(t + 4 * i) * 8 + g]);
        for (int i = 0; i < 4; ++i) ce[i] = c[(i < 2 ? g : g + 8) * 8 + t * 2 + (i & 1)];
        mma_tf32_1688(dr, ar, br, ce);
        for (int i = 0; i < 4; ++i) d[(i < 2 ? g : g + 8) * 8 + t * 2 + (i & 1)] = dr[i];
    });
    std::vector<double> ref(16 * 8);
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
            double s = c[i * 8 + j];
            for (int k = 0; k < 8; ++k) s += (double)a[i * 8 + k] * b[k * 8 + j];
            ref[i * 8 + j] = s;
        }
    check("mma m16n8k8 tf32 vs triple loop", d, ref, 1e-6);
    expect("f32_to_tf32 rounds to nearest, ties away", tf(1.0f + 1.0f / 2048) == 1.0f + 1.0f / 1024 &&
                                                            tf(1.0f + 1.0f / 4096) == 1.0f);
}

// ldmatrix (PTX ISA "ldmatrix"): for .x1/.x2/.x4, threads 0-7 / 0-15 / 0-31 give the row
// addresses, 8 per matrix; "each thread receives 2 elements of a row": lane l gets row l / 4,
// elements 2 (l % 4) and 2 (l % 4) + 1 of each matrix; with .trans the matrix is transposed
// first, so lane l gets rows 2 (l % 4), 2 (l % 4) + 1 of column l / 4.
template <int NUM, bool TRANS> static void ldmatrix_unit() {
    bool ok = true;
    launch({1}, {32}, 64 * NUM * 2 + 64, [&] {
        uint16_t* s = (uint16_t*)emu_dyn_smem();
        const int lane = threadIdx.x;
        // Matrix i row r lives at s + (i * 8 + (7 - r)) * 8: rows in reverse order, so the
        // addresses really come from the lanes. Element (i, r, c) = i * 64 + r * 8 + c.
        for (int e = lane; e < NUM * 64; e += 32) {
            int i = e / 64, r = (e / 8) % 8, c = e % 8;
            s[(i * 8 + (7 - r)) * 8 + c] = (uint16_t)e;
        }
        __syncthreads();
        const int mi = lane / 8, r = lane % 8;
        const uint16_t* row = s + ((mi % NUM) * 8 + (7 - r)) * 8;
        unsigned out[4] = {};
        if (NUM == 1) TRANS ? ldmatrix_x1_trans(out, row) : ldmatrix_x1(out, row);
        if (NUM == 2) TRANS ? ldmatrix_x2_trans(out, row) : ldmatrix_x2(out, row);
        if (NUM == 4) TRANS ? ldmatrix_x4_trans(out, row) : ldmatrix_x4(out, row);
        for (int i = 0; i < NUM; ++i) {
            int r0 = TRANS ? 2 * (lane % 4) : lane / 4, c0 = TRANS ? lane / 4 : 2 * (lane % 4);
            int r1 = TRANS ? r0 + 1 : r0, c1 = TRANS ? c0 : c0 + 1;
            unsigned want = (unsigned)(i * 64 + r0 * 8 + c0) | ((unsigned)(i * 64 + r1 * 8 + c1) << 16);
            if (out[i] != want) ok = false;
        }
    });
    char name[64];
    snprintf(name, 64, "ldmatrix x%d%s per the ISA's lane mapping", NUM, TRANS ? " .trans" : "");
    expect(name, ok);
}

// ldmatrix feeding mma, as the kernel does: A row-major [16][16] via x4, B stored [k][n] via
// x2.trans and B stored [n][k] via x2, against the triple loop.
static void ldmatrix_mma_unit() {
    auto a = randv(16 * 16), b = randv(16 * 8);
    for (auto& x : a) x = unbf(bf(x));
    for (auto& x : b) x = unbf(bf(x));
    std::vector<float> d1(128, NAN), d2(128, NAN);
    launch({1}, {32}, 3 * 512, [&] {
        uint16_t* sa = (uint16_t*)emu_dyn_smem();
        uint16_t* sbk = sa + 256;  // [16 k][8 n]
        uint16_t* sbn = sbk + 128; // [8 n][16 k]
        const int lane = threadIdx.x;
        for (int e = lane; e < 256; e += 32) sa[e] = bf(a[e]);
        for (int e = lane; e < 128; e += 32) { sbk[e] = bf(b[e]); sbn[(e % 8) * 16 + e / 8] = bf(b[e]); }
        __syncthreads();
        const int mi = lane / 8, r = lane % 8;
        unsigned af[4], b1[2], b2[2];
        ldmatrix_x4(af, sa + ((mi & 1) * 8 + r) * 16 + (mi >> 1) * 8);
        ldmatrix_x2_trans(b1, sbk + ((mi & 1) * 8 + r) * 8);
        ldmatrix_x2(b2, sbn + r * 16 + (mi & 1) * 8);
        float z[4] = {0, 0, 0, 0}, o1[4], o2[4];
        mma_bf16_16816(o1, af, b1, z);
        mma_bf16_16816(o2, af, b2, z);
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; ++i) {
            d1[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = o1[i];
            d2[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = o2[i];
        }
    });
    std::vector<double> ref(128);
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
            double s = 0;
            for (int k = 0; k < 16; ++k) s += (double)a[i * 16 + k] * b[k * 8 + j];
            ref[i * 8 + j] = s;
        }
    check("ldmatrix x4 + x2.trans + mma vs triple loop", d1, ref, 1e-6);
    check("ldmatrix x4 + x2 + mma vs triple loop", d2, ref, 1e-6);
}

static void cp_async_unit() {
    alignas(16) static float src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    bool before_nan = true, after_ok = true, zero_ok = true, group_ok = true;
    launch({1}, {32}, 32 * 48, [&] {
        float* s = emu_dyn_smem() + threadIdx.x * 12;
        cp_async_16(s, src, true);
        cp_async_commit();
        cp_async_16(s + 4, src + 4, true);
        cp_async_commit();
        cp_async_16(s + 8, src, false);
        cp_async_commit();
        for (int i = 0; i < 12; ++i) before_nan &= std::isnan(s[i]);
        cp_async_wait<2>();  // the oldest group only
        for (int i = 0; i < 4; ++i) group_ok &= s[i] == src[i] && std::isnan(s[4 + i]);
        cp_async_wait<0>();
        for (int i = 0; i < 4; ++i) after_ok &= s[4 + i] == src[4 + i];
        for (int i = 0; i < 4; ++i) zero_ok &= s[8 + i] == 0.0f;
    });
    expect("cp.async destination poisoned until the wait", before_nan);
    expect("cp.async.wait_group N retires the oldest groups", group_ok);
    expect("cp.async copies at the wait", after_ok);
    expect("cp.async src-size 0 zero-fills", zero_ok);
    // The 8-byte form (cp_async_8, attention_tc.cu at head dim 20): 8-byte granules, the same
    // deferral, zero fill, and only its own 8 bytes touched.
    bool b8_nan = true, b8_ok = true, b8_zero = true, b8_rest = true;
    launch({1}, {32}, 32 * 48, [&] {
        float* s = emu_dyn_smem() + threadIdx.x * 12;
        s[4] = 7.0f;
        cp_async_8(s + 2, src + 6, true);
        cp_async_8(s + 6, src, false);
        cp_async_commit();
        b8_nan &= std::isnan(s[2]) && std::isnan(s[3]) && std::isnan(s[6]) && std::isnan(s[7]);
        cp_async_wait<0>();
        b8_ok &= s[2] == src[6] && s[3] == src[7];
        b8_zero &= s[6] == 0.0f && s[7] == 0.0f;
        b8_rest &= s[4] == 7.0f && std::isnan(s[1]) && std::isnan(s[8]);
    });
    expect("cp.async 8 B: destination poisoned until the wait", b8_nan);
    expect("cp.async 8 B copies at the wait", b8_ok);
    expect("cp.async 8 B src-size 0 zero-fills", b8_zero);
    expect("cp.async 8 B touches only its 8 bytes", b8_rest);
}

static void shuffle_unit() {
    bool ok = true;
    launch({1}, {64}, [&] {
        const int lane = threadIdx.x & 31;
        float v = (float)threadIdx.x;
        ok &= __shfl_xor_sync(0xffffffffu, v, 5) == (float)((threadIdx.x & ~31u) + (lane ^ 5));
        ok &= __shfl_sync(0xffffffffu, v, 3) == (float)((threadIdx.x & ~31u) + 3);
        float dn = __shfl_down_sync(0xffffffffu, v, 4);
        ok &= dn == (lane + 4 < 32 ? v + 4 : v);
        int iv = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
        ok &= iv == (int)(threadIdx.x ^ 1);
        if (lane < 16) ok &= __shfl_xor_sync(0x0000ffffu, v, 8) == (float)(threadIdx.x ^ 8);
        ok &= warp_sum(1.0f) == 32.0f;
    });
    expect("shuffles (idx, xor, down, int, half-warp mask)", ok);
}

// Each case must be reported (an error), and a correct launch must not be.
static void expect_error(const char* name, int errors) {
    expect(name, errors > 0);
}
static void error_units() {
    const int before = emu::error_count;
    fprintf(stderr, "(the emu errors below are expected: tc_units checks that they are reported)\n");
    expect_error("reported: shuffle with an exited lane in the mask", launch({1}, {32}, [&] {
        if (threadIdx.x == 7) return;
        (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
    }));
    expect_error("reported: shuffle reached by only part of the warp", launch({1}, {32}, [&] {
        if (threadIdx.x < 16) (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
        __syncthreads();
    }));
    expect_error("reported: __syncthreads after threads exited", launch({1}, {64}, [&] {
        if (threadIdx.x >= 32) return;
        __syncthreads();
    }));
    expect_error("reported: mma by part of a warp", launch({1}, {32}, [&] {
        unsigned a[4] = {}, b[2] = {};
        float c[4] = {}, d[4];
        if (threadIdx.x != 0) mma_bf16_16816(d, a, b, c);
    }));
    expect_error("reported: misaligned ldmatrix row", launch({1}, {32}, 1024, [&] {
        unsigned r[1];
        ldmatrix_x1(r, (char*)emu_dyn_smem() + 8 + 16 * (threadIdx.x & 7));
    }));
    expect_error("reported: cp.async outside dynamic shared memory", launch({1}, {32}, 256, [&] {
        alignas(16) static float src[4];
        cp_async_16(emu_dyn_smem() + 64 + 4 * threadIdx.x, src, true);
        cp_async_wait<0>();
    }));
    expect_error("reported: 1025 threads per block", launch({1}, {1025}, [&] {}));
    expect_error("reported: 64 KiB dynamic shared memory without opt-in", launch({1}, {32}, 64 * 1024, [&] {}));
    emu::launch_bounds = 128;
    expect_error("reported: block above __launch_bounds__", launch({1}, {256}, [&] {}));
    emu::launch_bounds = 0;
    emu::arch = 80;
    emu::set_max_dynamic_smem(200 * 1024);
    expect_error("reported: 200 KiB on sm_80 (limit 163 KiB)", launch({1}, {32}, 200 * 1024, [&] {}));
    emu::arch = 90;
    expect("200 KiB with the opt-in on sm_90 is accepted", launch({1}, {32}, 200 * 1024, [&] {}) == 0);
    emu::set_max_dynamic_smem(48 * 1024);
    expect_error("reported: 64 KiB of static shared memory", launch({1}, {32}, [&] {
        auto& big = emu::shared_array<float[16384], 0>();
        big[threadIdx.x] = 0.0f;
    }));
    expect_error("reported: 40 KiB static + 160 KiB dynamic on sm_80", [&] {
        emu::arch = 80;
        emu::set_max_dynamic_smem(160 * 1024);
        int e = launch({1}, {32}, 160 * 1024, [&] {
            auto& mid = emu::shared_array<float[10240], 1>();
            mid[threadIdx.x] = 0.0f;
        });
        emu::arch = 90;
        emu::set_max_dynamic_smem(48 * 1024);
        return e;
    }());
    printf("(%d expected emulator errors)\n", emu::error_count - before);
    emu::error_count = before;
}

// Blocks run in a shuffled order: record it.
static void order_unit() {
    std::vector<int> order;
    launch({16}, {1}, [&] { order.push_back((int)blockIdx.x); });
    bool sorted = std::is_sorted(order.begin(), order.end());
    std::vector<int> s = order;
    std::sort(s.begin(), s.end());
    bool all = s.size() == 16 && s.front() == 0 && s.back() == 15 && std::unique(s.begin(), s.end()) == s.end();
    expect("blocks run once each, in a shuffled order", !sorted && all);
}

int main() {
    mma_bf16_unit();
    mma_tf32_unit();
    ldmatrix_unit<1, false>();
    ldmatrix_unit<2, false>();
    ldmatrix_unit<4, false>();
    ldmatrix_unit<1, true>();
    ldmatrix_unit<2, true>();
    ldmatrix_unit<4, true>();
    ldmatrix_mma_unit();
    cp_async_unit();
    shuffle_unit();
    error_units();
    order_unit();
    failures += emu::error_count;
    printf("tc units failures: %d\n", failures);
    return failures != 0;
}
