#include <random>
static std::mt19937 rng(42);
inline std::vector<float> randv(size_t n, float lo = -1, float hi = 1) {
    std::uniform_real_distribution<float> d(lo, hi); std::vector<float> v(n); for (auto& x : v) x = d(rng); return v;
}
inline double relerr(const std::vector<float>& a, const std::vector<double>& b) {
    double num = 0, den = 0; for (size_t i = 0; i < a.size(); ++i) { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i]; }
    return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}
static int failures = 0;
inline void check(const char* name, const std::vector<float>& a, const std::vector<double>& b, double tol) {
    double e = relerr(a, b); bool ok = e <= tol; if (!ok) ++failures;
    printf("%-50s rel err %.3e %s\n", name, e, ok ? "ok" : "FAIL");
}
inline std::vector<bf16_t> tobf(const std::vector<float>& v) { std::vector<bf16_t> o(v.size()); for (size_t i = 0; i < v.size(); ++i) o[i] = f32_to_bf16(v[i]); return o; }
inline std::vector<float> frombf(const std::vector<bf16_t>& v) { std::vector<float> o(v.size()); for (size_t i = 0; i < v.size(); ++i) o[i] = bf16_to_f32(v[i]); return o; }
// Errors the emulator reported (emu.h) fail the program even where every comparison passed.
struct EmuErrorsFailExit {
    ~EmuErrorsFailExit() {
        if (emu::error_count > 0) {
            printf("emulator errors: %d\n", emu::error_count);
            fflush(stdout);
            std::_Exit(1);
        }
    }
};
static EmuErrorsFailExit emu_errors_fail_exit;
