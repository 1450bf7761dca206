// Entry point of the emulated kernels/stft_mel.cu: runs one planned launch (kernel name, grid,
// block, dynamic shared memory, arguments as 64-bit slots as src/backend/cuda/stft_mel.rs plans
// them). Returns 0, -1 for an unknown kernel name, -2 when the emulator reported an error.
#define P(i) ((float*)(uintptr_t)a[i])
#define CP(i) ((const float*)(uintptr_t)a[i])
#define IP(i) ((const int*)(uintptr_t)a[i])
#define I(i) ((int)(uint32_t)a[i])
#define L(i) ((long long)a[i])
#define U(i) ((unsigned long long)a[i])
static float F(uint64_t v) { uint32_t u = (uint32_t)v; float f; std::memcpy(&f, &u, 4); return f; }

extern "C" int emu_run(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                       unsigned by, unsigned bz, unsigned smem, const uint64_t* a, int nargs) {
    // The emulator's state (grid, block, barrier, shared memory) is global: one launch at a time.
    static std::mutex one_at_a_time;
    std::lock_guard<std::mutex> lock(one_at_a_time);
    const std::string k(name);
    const emu_dim3 g{gx, gy, gz}, b{bx, by, bz};
    const int errors_before = emu::error_count;
    if (k == "log_mel_frames_fft" && nargs == 18) {
        emu_launch(g, b, smem, [&] {
            log_mel_frames_fft(P(0), CP(1), CP(2), CP(3), CP(4), IP(5), I(6), I(7), I(8), I(9),
                               I(10), I(11), I(12), U(13), I(14), I(15), F(a[16]), F(a[17]));
        });
    } else if (k == "log_mel_frames_dft" && nargs == 16) {
        emu_launch(g, b, smem, [&] {
            log_mel_frames_dft(P(0), CP(1), CP(2), CP(3), CP(4), IP(5), I(6), I(7), I(8), I(9),
                               I(10), I(11), I(12), I(13), F(a[14]), F(a[15]));
        });
    } else if (k == "log_mel_frames_backward_dft" && nargs == 16) {
        emu_launch(g, b, smem, [&] {
            log_mel_frames_backward_dft(P(0), CP(1), CP(2), CP(3), CP(4), CP(5), IP(6), I(7),
                                        I(8), I(9), I(10), I(11), I(12), I(13), I(14), F(a[15]));
        });
    } else if (k == "log_mel_overlap_add_backward" && nargs == 9) {
        emu_launch(g, b, smem, [&] {
            log_mel_overlap_add_backward(P(0), CP(1), L(2), I(3), I(4), I(5), I(6), I(7), I(8));
        });
    } else if (k == "mel_image_finish" && nargs == 8) {
        emu_launch(g, b, smem, [&] {
            mel_image_finish(P(0), CP(1), I(2), I(3), I(4), I(5), F(a[6]), I(7));
        });
    } else if (k == "mean_over_channels" && nargs == 5) {
        emu_launch(g, b, smem, [&] { mean_over_channels(P(0), CP(1), L(2), I(3), L(4)); });
    } else {
        return -1;
    }
    return emu::error_count == errors_before ? 0 : -2;  // -2: the emulator reported an error
}
