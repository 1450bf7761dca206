// Checks shared by bf16_ops.cpp and bf16_heads.cpp (after util.h).
#pragma once
typedef std::vector<float> vf;
typedef std::vector<double> vd;
typedef std::vector<bf16_t> vb;
static const double ULP = 4e-3;  // ~one bf16 rounding of the output, as a relative norm error
static const double F32 = 1e-5;  // fp32 side outputs computed from bf16 inputs
static vf rnd(const vf& v) { return frombf(tobf(v)); }  // the values a bf16 tensor holds
static vd dbl(const vf& v) { return vd(v.begin(), v.end()); }

// A bf16 output against a double reference: the relative norm error within `tol` (0: exact),
// and every element the correctly rounded bf16 of the reference up to fp32 accumulation noise,
// i.e. within 0.52 bf16 ulp, as kernels that accumulate in fp32 and round only the output give
// (an extra rounding on the way, or a bf16 intermediate, breaks that). The ulp of values below
// 1e-3 of the reference's rms is taken at that level (cancellation).
static void checkb(const char* name, const vb& got, const vd& ref, double tol) {
    vf g = frombf(got);
    double e = relerr(g, ref), rms = 0, worst = 0;
    for (double r : ref) rms += r * r;
    rms = std::sqrt(rms / std::max<size_t>(ref.size(), 1));
    for (size_t i = 0; i < ref.size(); ++i) {
        double mag = std::max(std::fabs(ref[i]), 1e-3 * rms);
        double ulp = mag > 0 ? std::ldexp(1.0, std::ilogb(mag) - 7) : 0;
        double d = std::fabs(g[i] - ref[i]);
        worst = std::max(worst, ulp > 0 ? d / ulp : (d > 0 ? INFINITY : 0));
    }
    bool ok = e <= tol && (tol == 0 ? worst == 0 : worst <= 0.52);
    if (!ok) ++failures;
    printf("%-50s rel err %.3e, max %.2f ulp %s\n", name, e, worst, ok ? "ok" : "FAIL");
}
