// Tensor-core building blocks as inline PTX (sm_80 and later), for kernel files that start with
// the line `#include "tc.cuh"` (build.rs replaces that line by this file; NVRTC sees no
// headers). Under the CPU emulator (tools/cuda_emu/emu.h defines SEISFUSE_EMU) the same functions
// come from emu.h, which executes them per warp with the PTX ISA's fragment layouts.
//
// Fragments (PTX ISA, "Matrix fragments for mma.m16n8k16 / m16n8k8"), with g = lane / 4 and
// t = lane % 4:
//   m16n8k16 bf16: A (16×16, row-major) in 4 regs of 2 bf16: a[r] holds row g + 8 (r & 1),
//     columns 2t + 8 (r >> 1) + {0, 1} (low half first); B (16×8, "col") in 2 regs: b[r] holds
//     rows (k) 2t + 8 r + {0, 1}, column g; C/D (16×8 f32): c[i] at row g + 8 (i >> 1), column
//     2t + (i & 1).
//   m16n8k8 tf32: a[r] at row g + 8 (r & 1), column t + 4 (r >> 1); b[r] at row t + 4 r,
//     column g; C/D as above.
// ldmatrix.m8n8 (x1/x2/x4): lanes 8i .. 8i+7 give the row addresses (16 bytes each, 16-byte
// aligned, shared memory) of matrix i; lane l receives of matrix i the pair at row l / 4,
// columns 2 (l % 4) + {0, 1} in r[i], or with .trans the pair at rows 2 (l % 4) + {0, 1},
// column l / 4.
#ifndef SEISFUSE_EMU

// 32-bit shared-state-space address of a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned r;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}

__device__ __forceinline__ void mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2],
                                               const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}

__device__ __forceinline__ void mma_tf32_1688(float d[4], const unsigned a[4], const unsigned b[2],
                                              const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}

// f32 to tf32 (round to nearest, ties away), as the bits of a .b32 operand.
__device__ __forceinline__ unsigned f32_to_tf32(float f) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
    return r;
}

__device__ __forceinline__ void ldmatrix_x1(unsigned r[1], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];"
                 : "=r"(r[0]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x2(unsigned r[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(unsigned r[1], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];"
                 : "=r"(r[0]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned r[2], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(row)));
}

// 16 bytes global -> shared, asynchronous (L2 only, .cg). With `full` false nothing is read and
// the 16 bytes are zero-filled (src-size 0), for tiles past the matrix edge; `src` must still be
// a valid address. Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool full) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                 :: "r"(smem_addr(dst)), "l"(src), "r"(full ? 16 : 0) : "memory");
}
// 8 bytes global -> shared, asynchronous (.ca: .cg takes only 16), zero-filled when `full` is
// false, as cp_async_16; both addresses 8-byte aligned (rows whose length is a multiple of 4
// but not of 8 elements).
__device__ __forceinline__ void cp_async_8(void* dst, const void* src, bool full) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;"
                 :: "r"(smem_addr(dst)), "l"(src), "r"(full ? 8 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;" ::: "memory");
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory");
}

// Dynamic shared memory as bytes, 16-byte aligned (a declaration inside a kernel body).
#define TC_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]

#endif  // SEISFUSE_EMU
