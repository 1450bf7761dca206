// Minimal CPU emulation of the CUDA execution model for checking kernel logic: one block at a
// time, one std::thread per CUDA thread, __syncthreads as a barrier, shuffles through a slot array.
#include <cmath>
#include <cstring>
#include <cstdio>
#include <thread>
#include <barrier>
#include <vector>
#include <algorithm>
#include <functional>
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
std::barrier<>* g_bar;
float g_slots[1024];
#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__
inline void __syncthreads() { g_bar->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
    int t = threadIdx.x;
    g_slots[t] = v;
    __syncthreads();
    float r = g_slots[t ^ o];
    __syncthreads();
    return r;
}
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
using std::min; using std::max;

// The block's threads are started once per launch and walk the grid together: a second barrier
// ends each block, so one block's shared memory is never seen by the next too early.
template <class F> void launch(dim3 grid, dim3 block, F f) {
    gridDim = grid; blockDim = block;
    int nt = block.x;
    std::barrier<> bar(nt), block_end(nt);
    g_bar = &bar;
    std::vector<std::thread> ts;
    for (int t = 0; t < nt; ++t)
        ts.emplace_back([&, t] {
            threadIdx = {(unsigned)t, 0, 0};
            for (unsigned bz = 0; bz < grid.z; ++bz)
                for (unsigned by = 0; by < grid.y; ++by)
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        blockIdx = {bx, by, bz};
                        f();
                        block_end.arrive_and_wait();
                    }
        });
    for (auto& th : ts) th.join();
}
