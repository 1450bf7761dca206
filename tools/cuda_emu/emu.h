// A CPU emulation of the CUDA execution model for checking kernel logic where there is no GPU,
// shared by the drivers in this folder (run.sh, tests/kernel_emu.rs) and by
// tests/dsp_kernel_emu.rs (kernels/stft_mel.cu through stft_mel_entry.cpp).
//
// One block at a time. The block's CUDA threads are fibers (ucontext) on one OS thread, run in
// rounds: each runs until its next __syncthreads (or its end), then the next; a round over all
// of them is a barrier. Threads that have returned no longer take part, as on sm_70 and later.
// Warp shuffles go through a block-wide exchange array between two barriers, so every thread of
// a block must call them together (as all our kernels do). Blocks may be 1-, 2- or
// 3-dimensional; warps are 32 consecutive linear thread ids, as on CUDA.
// Shared memory: `__shared__` arrays become function statics (kept across blocks); dynamic
// shared memory is emu_dyn_smem() (the driver rewrites `extern __shared__ float smem[];` into
// `float* smem = emu_dyn_smem();`), sized by the launch's smem_bytes and filled with NaN before
// every block, so a read the kernel never wrote shows up as NaN in the results; emu_static_smem()
// is 64 such floats for sources rewritten the same way. It checks indexing, synchronisation
// points and arithmetic, not timing, coalescing, CUDA's memory model or races within a round.
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
#include <string>
#include <ucontext.h>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
using emu_dim3 = dim3;
namespace emu {
inline dim3 thread_idx, block_idx, block_dim, grid_dim;
inline unsigned linear_tid;
inline std::vector<float> dyn_smem, static_smem, shfl;
// Fibers: one context and stack per CUDA thread of a block, reused across blocks and launches.
constexpr size_t kStack = 256 * 1024;
struct Fiber { ucontext_t ctx; std::unique_ptr<char[]> stack; bool done = false; };
inline std::vector<Fiber> fibers;
inline ucontext_t scheduler;
inline Fiber* current = nullptr;
inline const std::function<void()>* body = nullptr;
inline void fiber_main() {
    (*body)();
    current->done = true;  // returns to uc_link, the scheduler
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
#define __launch_bounds__(x)

inline void __syncthreads() { swapcontext(&emu::current->ctx, &emu::scheduler); }
inline float* emu_dyn_smem() { return emu::dyn_smem.data(); }
inline float* emu_static_smem() { return emu::static_smem.data(); }

inline float __shfl_xor_sync(unsigned, float v, int o) {
    const unsigned t = emu::linear_tid;
    emu::shfl[t] = v;
    __syncthreads();
    const float r = emu::shfl[t ^ (unsigned)o];
    __syncthreads();
    return r;
}
inline float __shfl_sync(unsigned, float v, int src) {
    const unsigned t = emu::linear_tid;
    emu::shfl[t] = v;
    __syncthreads();
    const float r = emu::shfl[(t & ~31u) + ((unsigned)src & 31u)];
    __syncthreads();
    return r;
}
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
using std::min; using std::max;

// Runs f as every thread of every block of `grid`; smem_bytes of dynamic shared memory.
template <class F> void launch(dim3 grid, dim3 block, size_t smem_bytes, F f) {
    emu::grid_dim = grid;
    emu::block_dim = block;
    const unsigned nt = block.x * block.y * block.z;
    const std::function<void()> body = f;
    emu::body = &body;
    emu::shfl.assign(nt, 0.0f);
    if (emu::fibers.size() < nt) emu::fibers.resize(nt);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                emu::block_idx = {bx, by, bz};
                emu::dyn_smem.assign(smem_bytes / 4 + 1, std::numeric_limits<float>::quiet_NaN());
                emu::static_smem.assign(64, std::numeric_limits<float>::quiet_NaN());
                for (unsigned t = 0; t < nt; ++t) {
                    emu::Fiber& fb = emu::fibers[t];
                    if (!fb.stack) fb.stack.reset(new char[emu::kStack]);
                    getcontext(&fb.ctx);
                    fb.ctx.uc_stack.ss_sp = fb.stack.get();
                    fb.ctx.uc_stack.ss_size = emu::kStack;
                    fb.ctx.uc_link = &emu::scheduler;
                    makecontext(&fb.ctx, emu::fiber_main, 0);
                    fb.done = false;
                }
                // One round = one barrier. Odd blocks run their threads in reverse order, so a
                // read of shared memory another thread writes without a barrier in between
                // sees stale data (NaN in dynamic shared memory) in one order or the other.
                const bool reverse = (bx + by + bz) & 1;
                for (unsigned live = nt; live > 0;) {
                    live = 0;
                    for (unsigned i = 0; i < nt; ++i) {
                        const unsigned t = reverse ? nt - 1 - i : i;
                        emu::Fiber& fb = emu::fibers[t];
                        if (fb.done) continue;
                        emu::current = &fb;
                        emu::linear_tid = t;
                        emu::thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        swapcontext(&emu::scheduler, &fb.ctx);
                        live += !fb.done;
                    }
                }
            }
}
// Kernels without dynamic shared memory.
template <class F> void launch(dim3 grid, dim3 block, F f) { launch(grid, block, 0, f); }
template <class F> void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, F f) { launch(grid, block, smem_bytes, f); }
