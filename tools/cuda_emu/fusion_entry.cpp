// Entry point of the emulated kernels/fusion.cu: runs one planned launch (kernel name with its
// _f32/_bf16 suffix, grid, block, dynamic shared memory, arguments as 64-bit slots in the
// kernel's parameter order, as src/backend/cuda/fusion.rs plans them). Returns 0, -1 for an
// unknown kernel name or argument count, -2 when the emulator reported an error (stderr). Driven by tests/fusion_kernel_emu.rs.
#define PF(i) ((float*)(uintptr_t)a[i])
#define CPF(i) ((const float*)(uintptr_t)a[i])
#define PB(i) ((bf16_t*)(uintptr_t)a[i])
#define CPB(i) ((const bf16_t*)(uintptr_t)a[i])
#define I(i) ((int)(uint32_t)a[i])
static float F(uint64_t v) { uint32_t u = (uint32_t)v; float f; std::memcpy(&f, &u, 4); return f; }

extern "C" int emu_run(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                       unsigned by, unsigned bz, unsigned smem, const uint64_t* a, int nargs) {
    // The emulator's state (grid, block, barrier, shared memory) is global: one launch at a time.
    static std::mutex one_at_a_time;
    std::lock_guard<std::mutex> lock(one_at_a_time);
    const std::string k(name);
    const emu_dim3 g{gx, gy, gz}, b{bx, by, bz};
#define RUN(NAME, N, CALL)                                \
    if (k == NAME && nargs == N) {                        \
        return emu_launch(g, b, smem, [&] { CALL; }) ? -2 : 0; \
    }
    RUN("project_l2norm_forward_f32", 7,
        project_l2norm_forward_f32(PF(0), PF(1), CPF(2), CPF(3), I(4), I(5), F(a[6])))
    RUN("project_l2norm_forward_bf16", 7,
        project_l2norm_forward_bf16(PB(0), PF(1), CPB(2), CPB(3), I(4), I(5), F(a[6])))
    RUN("l2norm_backward_f32", 6, l2norm_backward_f32(PF(0), CPF(1), CPF(2), CPF(3), I(4), F(a[5])))
    RUN("l2norm_backward_bf16", 6, l2norm_backward_bf16(PF(0), CPB(1), CPB(2), CPF(3), I(4), F(a[5])))
    RUN("project_backward_dx_f32", 5, project_backward_dx_f32(PF(0), CPF(1), CPF(2), I(3), I(4)))
    RUN("project_backward_dx_bf16", 5, project_backward_dx_bf16(PB(0), CPF(1), CPB(2), I(3), I(4)))
    RUN("project_backward_dw_f32", 6,
        project_backward_dw_f32(PF(0), CPF(1), CPF(2), I(3), I(4), I(5)))
    RUN("project_backward_dw_bf16", 6,
        project_backward_dw_bf16(PB(0), CPF(1), CPB(2), I(3), I(4), I(5)))
    RUN("similarity_forward_f32", 8,
        similarity_forward_f32(PF(0), CPF(1), CPF(2), CPF(3), I(4), I(5), I(6), F(a[7])))
    RUN("similarity_forward_bf16", 8,
        similarity_forward_bf16(PF(0), CPB(1), CPB(2), CPF(3), I(4), I(5), I(6), F(a[7])))
    RUN("infonce_lse", 4, infonce_lse(PF(0), PF(1), CPF(2), I(3)))
    RUN("infonce_backward", 5, infonce_backward(PF(0), CPF(1), CPF(2), I(3), F(a[4])))
    RUN("similarity_backward_f32", 10,
        similarity_backward_f32(PF(0), PF(1), CPF(2), CPF(3), CPF(4), CPF(5), I(6), I(7), I(8),
                                F(a[9])))
    RUN("similarity_backward_bf16", 10,
        similarity_backward_bf16(PB(0), PB(1), CPF(2), CPB(3), CPB(4), CPF(5), I(6), I(7), I(8),
                                 F(a[9])))
    RUN("logit_scale_backward", 6,
        logit_scale_backward(PF(0), CPF(1), CPF(2), CPF(3), I(4), F(a[5])))
#undef RUN
    return -1;
}
