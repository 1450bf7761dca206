// A CPU emulation of the CUDA execution model for checking kernel logic where there is no GPU,
// shared by the drivers in this folder (run.sh, tests/kernel_emu.rs) and by
// tests/dsp_kernel_emu.rs, tests/fusion_kernel_emu.rs and tests/tc_kernel_emu.rs.
//
// One block at a time, blocks in a seeded shuffled order (EMU_SEED, default 1), as a GPU gives
// no order. The block's CUDA threads are fibers (ucontext) on one OS thread. A thread runs until
// it reaches a block barrier (__syncthreads), a warp-collective operation (shuffles,
// __syncwarp, mma.sync, ldmatrix: see tc_emu.h) or its end. Warp collectives are executed as a
// unit once every lane named in their mask has reached the same collective with the same mask,
// and the lanes then continue; a block barrier is released when every live thread has reached it.
// Threads that have returned no longer take part, as on sm_70 and later. Reported as errors
// (stderr, `emu::error_count`, the launch's return value) and the block abandoned:
//   - a warp collective whose mask names a lane that has exited or waits elsewhere (at a
//     barrier or a different collective): "reached by only part of the warp";
//   - a barrier some threads wait at while others wait at a warp collective (deadlock);
//   - a barrier reached after some threads of the block exited (`emu::strict_barrier`, on by
//     default; CUDA counts exited threads as arrived, but our kernels never rely on it);
//   - launch limits: more than 1024 threads per block (or the block dimension limits), more than
//     `emu::launch_bounds` threads when the driver set it from the kernel's __launch_bounds__,
//     dynamic shared memory above 48 KiB without the opt-in (`emu::set_max_dynamic_smem`, as
//     cuFuncSetAttribute), or static + dynamic shared memory above the card's per-block limit
//     (`emu::arch`: 163 KiB on sm_80, 227 KiB on sm_90); static shared memory (the
//     emu::shared_array storage a block used) above 48 KiB, or above that limit with the
//     dynamic part.
// Shared memory: dynamic shared memory is emu_dyn_smem() (drivers rewrite `extern __shared__
// float smem[];` into `float* smem = emu_dyn_smem();`, and tc.cuh's TC_DYNAMIC_SMEM does it
// itself), 16-byte aligned, sized by the launch and filled with NaN before every block, so a read
// the kernel never wrote shows up as NaN in the results. emu_static_smem() is 64 such floats for
// sources rewritten the same way. Warps run one at a time up to their next barrier (see launch). `__shared__` arrays left in a source become function statics
// that are NOT re-poisoned per block (run.sh rewrites its sources' static arrays into
// emu::shared_array, which is). Odd blocks run their threads in reverse order, so a read of
// shared memory another thread writes without a barrier in between sees stale data in one order
// or the other. It checks indexing, synchronisation points and arithmetic, not timing,
// coalescing or CUDA's memory model beyond that.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <math.h>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <ucontext.h>
#include <vector>

#define SEISFUSE_EMU 1

struct dim3 { unsigned x = 1, y = 1, z = 1; };
using emu_dim3 = dim3;
namespace emu {
inline dim3 thread_idx, block_idx, block_dim, grid_dim;
inline unsigned linear_tid;
inline unsigned n_threads;
inline std::vector<float> static_smem;
// Dynamic shared memory, 16-byte aligned (cp.async and ldmatrix check alignment).
inline std::vector<float> dyn_smem_store;
inline float* dyn_smem_ptr = nullptr;
inline size_t dyn_smem_bytes = 0;
inline int arch = 90;
inline size_t max_dyn_smem = 48 * 1024;  // raised by set_max_dynamic_smem (the opt-in)
inline unsigned launch_bounds = 0;       // 0: none declared; else checked at launch
inline bool strict_barrier = true;
inline unsigned long long block_epoch = 0;
inline size_t block_static_smem = 0;  // bytes of emu::shared_array the running block has used
inline int error_count = 0;
inline int launch_errors = 0;
inline bool block_failed = false;
inline unsigned long long bank_conflicts = 0;  // ldmatrix phases whose 8 rows share banks
inline void error(const std::string& msg) {
    ++error_count;
    ++launch_errors;
    fprintf(stderr, "emu error: block (%u,%u,%u): %s\n", block_idx.x, block_idx.y, block_idx.z, msg.c_str());
}
inline size_t smem_limit(int a) { return a >= 90 ? 227 * 1024 : a >= 80 ? 163 * 1024 : 48 * 1024; }
// cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) for the next launches.
inline void set_max_dynamic_smem(size_t bytes) { max_dyn_smem = bytes; }

// Fibers: one context and stack per CUDA thread of a block, reused across blocks and launches.
constexpr size_t kStack = 256 * 1024;
enum class St { Run, Barrier, Warp, Done };
// A warp collective as one lane posted it: the operation (its executor), the mask, the lane's
// argument record (on the fiber's stack, alive while it waits).
struct WarpOp {
    void (*exec)(void** lane_args, unsigned mask) = nullptr;
    unsigned mask = 0;
    void* args = nullptr;
    const char* what = "";
};
struct Fiber { ucontext_t ctx; std::unique_ptr<char[]> stack; St st = St::Done; WarpOp op; };
inline std::vector<Fiber> fibers;
inline ucontext_t scheduler;
inline Fiber* current = nullptr;
inline const std::function<void()>* body = nullptr;
inline void fiber_main() {
    (*body)();
    current->st = St::Done;  // returns to uc_link, the scheduler
}
inline void yield(St st) {
    current->st = st;
    swapcontext(&current->ctx, &scheduler);
}
// Posts a warp collective for this lane and waits until the warp has executed it.
inline void warp_collective(void (*exec)(void**, unsigned), unsigned mask, void* args, const char* what) {
    current->op = WarpOp{exec, mask, args, what};
    yield(St::Warp);
}
inline unsigned lane_id() { return linear_tid & 31u; }

// Executes the collectives warp w is ready for; returns how many lanes it released.
inline unsigned run_warp_collectives(unsigned w) {
    unsigned released = 0;
    {
        const unsigned base = w * 32, lanes = std::min(32u, n_threads - base);
        const unsigned exist = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
        for (unsigned l = 0; l < lanes; ++l) {
            Fiber& f = fibers[base + l];
            if (f.st != St::Warp) continue;
            const WarpOp op = f.op;
            const unsigned mask = op.mask & exist;
            if (!(mask >> l & 1u)) {
                error(std::string(op.what) + ": the calling lane is not in its own mask");
                block_failed = true;
                return released;
            }
            bool ready = true;
            for (unsigned j = 0; j < lanes && ready; ++j) {
                if (!(mask >> j & 1u)) continue;
                Fiber& g = fibers[base + j];
                if (g.st != St::Warp || g.op.exec != op.exec) { ready = false; break; }
                if (g.op.mask != op.mask) {
                    error(std::string(op.what) + ": lanes of one warp pass different masks");
                    block_failed = true;
                    return released;
                }
            }
            if (!ready) continue;  // decided by the scheduler once nothing else can run
            void* args[32] = {};
            for (unsigned j = 0; j < lanes; ++j)
                if (mask >> j & 1u) args[j] = fibers[base + j].op.args;
            op.exec(args, mask);
            for (unsigned j = 0; j < lanes; ++j)
                if (mask >> j & 1u) { fibers[base + j].st = St::Run; ++released; }
        }
    }
    return released;
}
// Nothing can run and some lane waits at a collective: say who is missing.
inline void report_stuck_collective() {
    for (unsigned t = 0; t < n_threads; ++t) {
        Fiber& f = fibers[t];
        if (f.st != St::Warp) continue;
        const unsigned base = t & ~31u, lanes = std::min(32u, n_threads - base);
        std::string missing;
        for (unsigned j = 0; j < lanes; ++j) {
            if (!(f.op.mask >> j & 1u)) continue;
            const Fiber& g = fibers[base + j];
            if (g.st == St::Warp && g.op.exec == f.op.exec) continue;
            missing += " " + std::to_string(j) + (g.st == St::Done ? "(exited)" : g.st == St::Barrier ? "(at __syncthreads)" : "(at another collective)");
        }
        error(std::string(f.op.what) + " reached by only part of the warp " + std::to_string(t / 32) +
              " (mask 0x" + [&] { char b[16]; snprintf(b, 16, "%08x", f.op.mask); return std::string(b); }() +
              "); lanes missing:" + missing);
        return;
    }
}

// Per-block, poisoned storage for a `__shared__` array (run.sh rewrites static declarations
// `__shared__ T name[..];` into `auto& name = emu::shared_array<T[..], __COUNTER__>();`).
template <class A, int Id> A& shared_array() {
    alignas(16) static A storage;
    static unsigned long long epoch = ~0ull;
    if (epoch != block_epoch) {
        epoch = block_epoch;
        std::memset(&storage, 0xff, sizeof(A));  // all-ones: NaN as f32 and as bf16
        block_static_smem += sizeof(A);
    }
    return storage;
}
}  // namespace emu
#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim
#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

inline void __syncthreads() { emu::yield(emu::St::Barrier); }
inline float* emu_dyn_smem() { return emu::dyn_smem_ptr; }
inline float* emu_static_smem() { return emu::static_smem.data(); }

// Shuffles: 4-byte values, executed per warp once every lane of the mask has arrived.
namespace emu {
struct ShflArgs { uint32_t v; int arg; int width; int mode; uint32_t out; };
inline void exec_shfl(void** a, unsigned mask) {
    for (unsigned l = 0; l < 32; ++l) {
        if (!(mask >> l & 1u)) continue;
        ShflArgs* s = (ShflArgs*)a[l];
        const unsigned w = (unsigned)s->width, seg = l & ~(w - 1);
        unsigned src;
        switch (s->mode) {
            case 0: src = seg + ((unsigned)s->arg & (w - 1)); break;          // idx
            case 1: src = seg + ((l ^ (unsigned)s->arg) & (w - 1)); break;    // xor
            case 2: src = (l & (w - 1)) + (unsigned)s->arg < w ? l + s->arg : l; break;  // down
            default: src = (l & (w - 1)) >= (unsigned)s->arg ? l - s->arg : l; break;   // up
        }
        if (!(mask >> src & 1u)) {
            error("shuffle reads lane " + std::to_string(src) + ", which is not in the mask");
            block_failed = true;
            s->out = 0xffffffffu;
            continue;
        }
        s->out = ((ShflArgs*)a[src])->v;
    }
}
template <class T> T shfl(unsigned mask, T v, int arg, int width, int mode) {
    static_assert(sizeof(T) == 4, "4-byte shuffles only");
    ShflArgs s{};
    std::memcpy(&s.v, &v, 4);
    s.arg = arg;
    s.width = width;
    s.mode = mode;
    warp_collective(exec_shfl, mask, &s, "shuffle");
    T r;
    std::memcpy(&r, &s.out, 4);
    return r;
}
inline void exec_nothing(void**, unsigned) {}
}  // namespace emu
template <class T> T __shfl_sync(unsigned m, T v, int src, int w = 32) { return emu::shfl(m, v, src, w, 0); }
template <class T> T __shfl_xor_sync(unsigned m, T v, int o, int w = 32) { return emu::shfl(m, v, o, w, 1); }
template <class T> T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) { return emu::shfl(m, v, (int)d, w, 2); }
template <class T> T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) { return emu::shfl(m, v, (int)d, w, 3); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_collective(emu::exec_nothing, mask, nullptr, "__syncwarp"); }

inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

// CUDA's 16-byte vector types (alignas(16) as on the device) and their constructors. A kernel
// dereferences them through SF_CHECK_ALIGN16(p) first (a no-op under NVRTC, common.cuh), so a
// misaligned global vector access is reported here instead of silently working on the CPU.
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
namespace emu {
inline void check_align16(const void* p, const char* where) {
    if ((uintptr_t)p & 15u) {
        char b[160];
        snprintf(b, sizeof b, "%s: 16-byte vector access at %p is not 16-byte aligned", where, p);
        error(b);
    }
}
}  // namespace emu
#define SF_CHECK_ALIGN16(p) emu::check_align16((const void*)(p), __func__)
using std::min; using std::max;

namespace emu {
inline bool check_launch(dim3 grid, dim3 block, size_t smem_bytes) {
    const unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    const int before = launch_errors;
    if (nt == 0 || nt > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
        error("block (" + std::to_string(block.x) + "," + std::to_string(block.y) + "," + std::to_string(block.z) +
              ") exceeds CUDA's limits (1024 threads, z ≤ 64)");
    if (launch_bounds && nt > launch_bounds)
        error(std::to_string(nt) + " threads per block exceed the kernel's __launch_bounds__(" + std::to_string(launch_bounds) + ")");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
        error("grid exceeds CUDA's limits (y, z ≤ 65535, none zero)");
    if (smem_bytes > 48 * 1024 && max_dyn_smem < smem_bytes)
        error(std::to_string(smem_bytes) + " B of dynamic shared memory without the opt-in above 48 KiB (set_max_dynamic_smem)");
    if (max_dyn_smem > smem_limit(arch))
        error("the dynamic shared memory opt-in exceeds sm_" + std::to_string(arch) + "'s limit of " + std::to_string(smem_limit(arch)) + " B");
    if (smem_bytes > smem_limit(arch))
        error(std::to_string(smem_bytes) + " B of shared memory exceed sm_" + std::to_string(arch) + "'s limit");
    return launch_errors == before;
}
}  // namespace emu

// Runs f as every thread of every block of `grid`; smem_bytes of dynamic shared memory. Returns
// the number of errors found in this launch (also printed and added to emu::error_count).
template <class F> int launch(dim3 grid, dim3 block, size_t smem_bytes, F f) {
    emu::launch_errors = 0;
    emu::grid_dim = grid;
    emu::block_dim = block;
    if (!emu::check_launch(grid, block, smem_bytes)) return emu::launch_errors;
    const unsigned nt = block.x * block.y * block.z;
    emu::n_threads = nt;
    const std::function<void()> body = f;
    emu::body = &body;
    if (emu::fibers.size() < nt) emu::fibers.resize(nt);
    // Blocks in a shuffled order: nothing may depend on one block running before another.
    std::vector<unsigned long long> order((unsigned long long)grid.x * grid.y * grid.z);
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    static unsigned long long launches = 0;
    const char* seed_env = std::getenv("EMU_SEED");
    std::mt19937_64 rng((seed_env ? std::strtoull(seed_env, nullptr, 10) : 1ull) * 1000003ull + launches++);
    std::shuffle(order.begin(), order.end(), rng);
    for (unsigned long long lin : order) {
        const unsigned bx = lin % grid.x, by = (lin / grid.x) % grid.y, bz = lin / ((unsigned long long)grid.x * grid.y);
        emu::block_idx = {bx, by, bz};
        ++emu::block_epoch;
        emu::block_failed = false;
        emu::block_static_smem = 0;
        emu::dyn_smem_store.assign(smem_bytes / 4 + 8, std::numeric_limits<float>::quiet_NaN());
        emu::dyn_smem_ptr = (float*)(((uintptr_t)emu::dyn_smem_store.data() + 15) & ~(uintptr_t)15);
        emu::dyn_smem_bytes = smem_bytes;
        emu::static_smem.assign(64, std::numeric_limits<float>::quiet_NaN());
        for (unsigned t = 0; t < nt; ++t) {
            emu::Fiber& fb = emu::fibers[t];
            if (!fb.stack) fb.stack.reset(new char[emu::kStack]);
            getcontext(&fb.ctx);
            fb.ctx.uc_stack.ss_sp = fb.stack.get();
            fb.ctx.uc_stack.ss_size = emu::kStack;
            fb.ctx.uc_link = &emu::scheduler;
            makecontext(&fb.ctx, emu::fiber_main, 0);
            fb.st = emu::St::Run;
        }
        const bool reverse = (bx + by + bz) & 1;
        // Warps run one at a time, each as far as it gets (to a barrier, to a collective another
        // of its lanes has not reached, or to its end) before the next starts, in reverse order
        // in odd blocks: a warp reading shared memory another warp writes without a barrier in
        // between sees it unwritten (NaN) in one order or the other.
        const unsigned nw = (nt + 31) / 32;
        while (!emu::block_failed) {
            for (unsigned wi = 0; wi < nw && !emu::block_failed; ++wi) {
                const unsigned w = reverse ? nw - 1 - wi : wi;
                const unsigned base = w * 32, lanes = std::min(32u, nt - base);
                do {
                    for (unsigned i = 0; i < lanes; ++i) {
                        const unsigned t = base + (reverse ? lanes - 1 - i : i);
                        emu::Fiber& fb = emu::fibers[t];
                        if (fb.st != emu::St::Run) continue;
                        emu::current = &fb;
                        emu::linear_tid = t;
                        emu::thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        swapcontext(&emu::scheduler, &fb.ctx);
                    }
                } while (emu::run_warp_collectives(w) > 0 && !emu::block_failed);
            }
            if (emu::block_failed) break;
            unsigned at_barrier = 0, at_warp = 0, done = 0;
            for (unsigned t = 0; t < nt; ++t) {
                const emu::St s = emu::fibers[t].st;
                at_barrier += s == emu::St::Barrier;
                at_warp += s == emu::St::Warp;
                done += s == emu::St::Done;
            }
            if (at_warp > 0) {
                emu::report_stuck_collective();
                break;
            }
            if (at_barrier == 0) break;  // every thread has returned
            if (done > 0 && emu::strict_barrier) {
                emu::error("__syncthreads reached by " + std::to_string(at_barrier) + " of " + std::to_string(nt) +
                           " threads; the others have exited");
                break;
            }
            for (unsigned t = 0; t < nt; ++t)
                if (emu::fibers[t].st == emu::St::Barrier) emu::fibers[t].st = emu::St::Run;
        }
        // Static shared memory (the emu::shared_array storage this block used) counts against
        // the 48 KiB static limit and, with the dynamic part, against the card's.
        if (emu::block_static_smem > 48 * 1024)
            emu::error(std::to_string(emu::block_static_smem) + " B of static shared memory exceed 48 KiB");
        if (emu::block_static_smem + smem_bytes > emu::smem_limit(emu::arch))
            emu::error(std::to_string(emu::block_static_smem) + " B static + " + std::to_string(smem_bytes) +
                       " B dynamic shared memory exceed sm_" + std::to_string(emu::arch) + "'s limit");
        if (emu::launch_errors > 0) break;  // reported once; the other blocks would repeat it
    }
    return emu::launch_errors;
}
// Kernels without dynamic shared memory.
template <class F> int launch(dim3 grid, dim3 block, F f) { return launch(grid, block, 0, f); }
template <class F> int emu_launch(dim3 grid, dim3 block, size_t smem_bytes, F f) { return launch(grid, block, smem_bytes, f); }

// ---- Tensor-core operations (kernels/tc.cuh's functions, emulated) ----
// mma.sync and ldmatrix are warp collectives (all 32 lanes, .sync.aligned); cp.async is per
// thread: the copy is recorded, its destination poisoned (all-ones bytes: NaN) at once, and the
// bytes are copied (or zero-filled) only when the issuing thread's cp.async.wait_group retires
// its group. Addresses are checked for 16-byte alignment and, where the launch has dynamic
// shared memory, for lying inside it.
namespace emu {
inline bool in_dyn_smem(const void* p, size_t bytes) {
    const char* c = (const char*)p;
    const char* b = (const char*)dyn_smem_ptr;
    return dyn_smem_bytes == 0 || (c >= b && c + bytes <= b + dyn_smem_bytes);
}
inline bool check_shared_16(const void* p, const char* what) {
    char b[160];
    if ((uintptr_t)p & 15u) {
        snprintf(b, sizeof b, "%s: shared address %p is not 16-byte aligned", what, p);
    } else if (!in_dyn_smem(p, 16)) {
        snprintf(b, sizeof b, "%s: address %p lies outside the block's %zu B of dynamic shared memory", what, p, dyn_smem_bytes);
    } else {
        return true;
    }
    error(b);
    return false;
}
inline float bf16_bits_to_f32(uint32_t h) { uint32_t u = (h & 0xffffu) << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline float tf32_bits_to_f32(uint32_t u) { u &= 0xffffe000u; float f; std::memcpy(&f, &u, 4); return f; }

struct MmaArgs { uint32_t a[4]; uint32_t b[2]; float c[4]; float d[4]; };
// D = A B + C for one warp; `elem(a, lane, reg, half)` reads an operand element.
template <bool TF32> void exec_mma(void** args, unsigned) {
    constexpr int K = TF32 ? 8 : 16;
    double A[16][16] = {}, B[16][8] = {}, C[16][8] = {};
    for (int l = 0; l < 32; ++l) {
        const MmaArgs* m = (const MmaArgs*)args[l];
        const int g = l >> 2, t = l & 3;
        for (int r = 0; r < 4; ++r) {
            if (TF32) {
                A[g + 8 * (r & 1)][t + 4 * (r >> 1)] = tf32_bits_to_f32(m->a[r]);
            } else {
                for (int h = 0; h < 2; ++h)
                    A[g + 8 * (r & 1)][2 * t + 8 * (r >> 1) + h] = bf16_bits_to_f32(m->a[r] >> (16 * h));
            }
        }
        for (int r = 0; r < 2; ++r) {
            if (TF32) {
                B[t + 4 * r][g] = tf32_bits_to_f32(m->b[r]);
            } else {
                for (int h = 0; h < 2; ++h) B[2 * t + 8 * r + h][g] = bf16_bits_to_f32(m->b[r] >> (16 * h));
            }
        }
        for (int i = 0; i < 4; ++i) C[g + 8 * (i >> 1)][2 * t + (i & 1)] = m->c[i];
    }
    for (int l = 0; l < 32; ++l) {
        MmaArgs* m = (MmaArgs*)args[l];
        const int g = l >> 2, t = l & 3;
        for (int i = 0; i < 4; ++i) {
            const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
            double s = C[row][col];
            for (int k = 0; k < K; ++k) s += A[row][k] * B[k][col];
            m->d[i] = (float)s;
        }
    }
}
template <bool TF32> void mma(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
    MmaArgs m;
    for (int i = 0; i < 4; ++i) { m.a[i] = a[i]; m.c[i] = c[i]; }
    m.b[0] = b[0];
    m.b[1] = b[1];
    warp_collective(exec_mma<TF32>, 0xffffffffu, &m, TF32 ? "mma.sync.m16n8k8.tf32" : "mma.sync.m16n8k16.bf16");
    for (int i = 0; i < 4; ++i) d[i] = m.d[i];
}

struct LdmArgs { const void* row; uint32_t r[4]; };
template <int NUM, bool TRANS> void exec_ldmatrix(void** args, unsigned) {
    for (int i = 0; i < NUM; ++i) {
        uint16_t M[8][8];
        unsigned groups = 0;
        bool conflict = false;
        for (int r = 0; r < 8; ++r) {
            const void* p = ((LdmArgs*)args[8 * i + r])->row;
            if (check_shared_16(p, TRANS ? "ldmatrix.trans" : "ldmatrix")) std::memcpy(M[r], p, 16);
            else std::memset(M[r], 0xff, 16);
            const unsigned grp = ((uintptr_t)p >> 4) & 7u;  // which 4 of the 32 banks
            conflict |= (groups >> grp) & 1u;
            groups |= 1u << grp;
        }
        bank_conflicts += conflict;
        for (int l = 0; l < 32; ++l) {
            const int a = l >> 2, b = 2 * (l & 3);
            const uint16_t lo = TRANS ? M[b][a] : M[a][b], hi = TRANS ? M[b + 1][a] : M[a][b + 1];
            ((LdmArgs*)args[l])->r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
        }
    }
}
template <int NUM, bool TRANS> void ldmatrix(unsigned* r, const void* row) {
    LdmArgs a{row, {}};
    warp_collective(exec_ldmatrix<NUM, TRANS>, 0xffffffffu, &a, TRANS ? "ldmatrix.trans" : "ldmatrix");
    for (int i = 0; i < NUM; ++i) r[i] = a.r[i];
}

// cp.async state of each thread of the running block.
struct CpCopy { void* dst; const void* src; bool full; unsigned bytes = 16; };
struct CpThread { std::vector<CpCopy> open; std::vector<std::vector<CpCopy>> groups; };
inline std::vector<CpThread> cp_threads;
inline unsigned long long cp_epoch = ~0ull;
inline CpThread& cp_thread() {
    if (cp_epoch != block_epoch) {
        cp_epoch = block_epoch;
        cp_threads.assign(n_threads, CpThread{});
    }
    return cp_threads[linear_tid];
}
}  // namespace emu

inline void mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) { emu::mma<false>(d, a, b, c); }
inline void mma_tf32_1688(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) { emu::mma<true>(d, a, b, c); }
// cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits.
inline unsigned f32_to_tf32(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u += 0x1000u;
    return u & 0xffffe000u;
}
inline void ldmatrix_x1(unsigned r[1], const void* row) { emu::ldmatrix<1, false>(r, row); }
inline void ldmatrix_x2(unsigned r[2], const void* row) { emu::ldmatrix<2, false>(r, row); }
inline void ldmatrix_x4(unsigned r[4], const void* row) { emu::ldmatrix<4, false>(r, row); }
inline void ldmatrix_x1_trans(unsigned r[1], const void* row) { emu::ldmatrix<1, true>(r, row); }
inline void ldmatrix_x2_trans(unsigned r[2], const void* row) { emu::ldmatrix<2, true>(r, row); }
inline void ldmatrix_x4_trans(unsigned r[4], const void* row) { emu::ldmatrix<4, true>(r, row); }
inline void cp_async_16(void* dst, const void* src, bool full) {
    if (!emu::check_shared_16(dst, "cp.async destination")) return;
    if ((uintptr_t)src & 15u) return emu::error("cp.async: global source address is not 16-byte aligned");
    std::memset(dst, 0xff, 16);  // poisoned until the wait
    emu::cp_thread().open.push_back({dst, src, full});
}
// cp.async.ca with 8 bytes (tc.cuh's cp_async_8): 8-byte alignment, the same deferral.
inline void cp_async_8(void* dst, const void* src, bool full) {
    if (((uintptr_t)dst & 7u) || !emu::in_dyn_smem(dst, 8))
        return emu::error("cp.async (8 B) destination not 8-byte aligned or outside dynamic shared memory");
    if ((uintptr_t)src & 7u) return emu::error("cp.async (8 B): global source address is not 8-byte aligned");
    std::memset(dst, 0xff, 8);  // poisoned until the wait
    emu::cp_thread().open.push_back({dst, src, full, 8});
}
inline void cp_async_commit() {
    emu::CpThread& c = emu::cp_thread();
    c.groups.push_back(std::move(c.open));
    c.open.clear();
}
template <int N> void cp_async_wait() {
    emu::CpThread& c = emu::cp_thread();
    while (c.groups.size() > (size_t)N) {
        for (const emu::CpCopy& k : c.groups.front()) {
            if (k.full) std::memcpy(k.dst, k.src, k.bytes);
            else std::memset(k.dst, 0, k.bytes);
        }
        c.groups.erase(c.groups.begin());
    }
}
#define TC_DYNAMIC_SMEM(name) unsigned char* name = (unsigned char*)emu_dyn_smem()
