// A CPU emulation of the CUDA execution model for checking kernel logic where there is no GPU,
// shared by the drivers in this folder (run.sh, tests/kernel_emu.rs) and by
// tests/dsp_kernel_emu.rs (kernels/stft_mel.cu through stft_mel_entry.cpp).
//
// One block at a time; the block's threads are std::threads (started once per launch, walking
// the grid together, a barrier ending each block); __syncthreads is a std::barrier; warp
// shuffles go through a block-wide exchange array, so every thread of a block must call them
// together (as all our kernels do). Blocks may be 1-, 2- or 3-dimensional; warps are 32
// consecutive linear thread ids, as on CUDA.
// Shared memory: `__shared__` arrays become function statics (kept across blocks); dynamic
// shared memory is emu_dyn_smem() (the driver rewrites `extern __shared__ float smem[];` into
// `float* smem = emu_dyn_smem();`), sized by the launch's smem_bytes and filled with NaN before
// every block, so a read the kernel never wrote shows up as NaN in the results; emu_static_smem()
// is 64 such floats for sources rewritten the same way. It checks indexing, synchronisation
// points and arithmetic, not timing, coalescing or CUDA's memory model.
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <math.h>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
using emu_dim3 = dim3;
namespace emu {
inline thread_local dim3 thread_idx, block_idx;
inline thread_local unsigned linear_tid;
inline dim3 block_dim, grid_dim;
inline std::barrier<>* bar = nullptr;
inline std::vector<float> dyn_smem, static_smem, shfl;
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

inline void __syncthreads() { emu::bar->arrive_and_wait(); }
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
    auto fresh_block = [smem_bytes]() noexcept {
        emu::dyn_smem.assign(smem_bytes / 4 + 1, std::numeric_limits<float>::quiet_NaN());
        emu::static_smem.assign(64, std::numeric_limits<float>::quiet_NaN());
    };
    fresh_block();
    emu::shfl.assign(nt, 0.0f);
    std::barrier<> bar(nt);
    std::barrier block_end(nt, fresh_block);
    emu::bar = &bar;
    std::vector<std::thread> ts;
    ts.reserve(nt);
    for (unsigned t = 0; t < nt; ++t)
        ts.emplace_back([&, t] {
            emu::linear_tid = t;
            emu::thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            for (unsigned bz = 0; bz < grid.z; ++bz)
                for (unsigned by = 0; by < grid.y; ++by)
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        emu::block_idx = {bx, by, bz};
                        f();
                        block_end.arrive_and_wait();
                    }
        });
    for (auto& th : ts) th.join();
}
// Kernels without dynamic shared memory.
template <class F> void launch(dim3 grid, dim3 block, F f) { launch(grid, block, 0, f); }
template <class F> void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, F f) { launch(grid, block, smem_bytes, f); }
