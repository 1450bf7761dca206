// A CPU emulation of the small part of CUDA that kernels/stft_mel.cu uses, for testing the
// kernels' logic where no GPU exists (tests/dsp_kernel_emu.rs). One std::thread per CUDA
// thread, one block at a time; __syncthreads is a std::barrier; warp shuffles go through a
// block-wide exchange array (every thread of a block calls them together in our kernels).
// Dynamic shared memory is filled with NaN before each block, so a read of shared memory that
// the kernel never wrote shows up as NaN in the results. Not a model of CUDA's memory model
// or timing: it checks indexing, synchronisation points and arithmetic only.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <math.h>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct emu_dim3 { unsigned x, y, z; };
namespace emu {
inline thread_local emu_dim3 thread_idx, block_idx;
inline emu_dim3 block_dim, grid_dim;
inline std::barrier<>* bar = nullptr;
inline std::vector<float> dyn_smem, static_smem, shfl;
}  // namespace emu
#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim
#define __global__
#define __device__
#define __forceinline__ inline
#define __syncthreads() emu::bar->arrive_and_wait()
inline float* emu_dyn_smem() { return emu::dyn_smem.data(); }
inline float* emu_static_smem() { return emu::static_smem.data(); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
    const unsigned t = threadIdx.x;
    emu::shfl[t] = v;
    emu::bar->arrive_and_wait();
    const float r = emu::shfl[t ^ (unsigned)o];
    emu::bar->arrive_and_wait();
    return r;
}

template <class F>
void emu_launch(emu_dim3 grid, emu_dim3 block, size_t smem_bytes, F f) {
    emu::grid_dim = grid;
    emu::block_dim = block;
    const unsigned nt = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                emu::dyn_smem.assign(smem_bytes / 4 + 1, std::numeric_limits<float>::quiet_NaN());
                emu::static_smem.assign(64, std::numeric_limits<float>::quiet_NaN());
                emu::shfl.assign(nt, 0.0f);
                std::barrier<> b(nt);
                emu::bar = &b;
                std::vector<std::thread> ts;
                ts.reserve(nt);
                for (unsigned t = 0; t < nt; ++t)
                    ts.emplace_back([=, &f] {
                        emu::block_idx = {bx, by, bz};
                        emu::thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        f();
                    });
                for (auto& t : ts) t.join();
            }
}
