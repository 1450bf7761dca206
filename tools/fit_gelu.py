#!/usr/bin/env python3
"""Fits the two polynomials of the CPU GELU (src/backend/cpu/gelu.rs) and reports how close
each comes when evaluated in f32, the way the Rust code evaluates it.

  h(u) = erfcx(z) / t,  t = 2 / (2 + z),  u = (t - T0) * SCALE - 1 in [-1, 1],  z in [0, 9.5]
  q(w) = erf(z) / z,    w = z^2,                                             z in [0, 0.5]

Both are least-squares fits at Chebyshev nodes of exact values from mpmath (40 digits), then
turned into monomial coefficients (highest power first, as the Rust arrays are) and rounded to
f32. Needs mpmath and numpy (`pip install mpmath numpy`; PyTorch installs both).

  python3 tools/fit_gelu.py            # the degrees gelu.rs uses (10 and 4)
  python3 tools/fit_gelu.py --h-degree 9 --q-degree 5
"""
import argparse

import mpmath as mp
import numpy as np

mp.mp.dps = 40
F32 = np.float32
Z_MAX = 9.5
Z_SMALL = 0.5


def horner_f32(coeffs, x):
    """Horner's rule in f32 without fused multiply-adds (within an ulp of the FMA form)."""
    acc = np.full_like(x, coeffs[0])
    for c in coeffs[1:]:
        acc = (acc * x + c).astype(F32)
    return acc


def chebyshev_fit(f, lo, hi, degree, nodes=300):
    """Monomial coefficients (highest first) in s in [-1, 1], s = 2 (x - lo) / (hi - lo) - 1."""
    k = np.arange(nodes)
    s = np.cos(np.pi * (k + 0.5) / nodes)
    xs = lo + (hi - lo) * (s + 1) / 2
    ys = np.array([float(f(mp.mpf(float(x)))) for x in xs])
    c = np.polynomial.chebyshev.chebfit(s, ys, degree)
    return np.polynomial.chebyshev.cheb2poly(c)[::-1]


def fit_h(degree):
    t0 = F32(2 / (2 + Z_MAX))
    scale = F32(2 / (1 - float(t0)))

    def h(t):
        z = 2 / t - 2
        return mp.exp(z * z) * mp.erfc(z) / t

    # Fitted over the exact range; the code maps with T0 and SCALE rounded to f32.
    p = chebyshev_fit(h, 2 / (2 + Z_MAX), 1.0, degree).astype(F32)
    z = np.linspace(0, Z_MAX, 4001).astype(F32)
    exact = np.array([float(mp.exp(mp.mpf(float(v)) ** 2) * mp.erfc(mp.mpf(float(v)))) for v in z])
    t = (F32(2) / (F32(2) + z)).astype(F32)
    u = ((t - t0) * scale - F32(1)).astype(F32)
    got = (horner_f32(p, u) * t).astype(F32)
    return t0, scale, p, np.max(np.abs(got / exact - 1))


def fit_q(degree):
    w_max = Z_SMALL * Z_SMALL

    def q(w):
        z = mp.sqrt(w)
        return 2 / mp.sqrt(mp.pi) if z == 0 else mp.erf(z) / z

    # The fit is in s = 2 w / w_max - 1; rewrite it as a polynomial in w.
    ps = chebyshev_fit(q, 0.0, w_max, degree)[::-1]
    pw = np.polynomial.Polynomial(ps)(np.polynomial.Polynomial([-1, 2 / w_max])).coef
    p = pw[::-1].astype(F32)
    z = np.linspace(0, Z_SMALL, 5001)[1:].astype(F32)
    exact = np.array([float(mp.erf(mp.mpf(float(v)))) for v in z])
    got = (horner_f32(p, (z * z).astype(F32)) * z).astype(F32)
    return p, np.max(np.abs(got / exact - 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--h-degree", type=int, default=10)
    ap.add_argument("--q-degree", type=int, default=4)
    a = ap.parse_args()
    t0, scale, h, h_err = fit_h(a.h_degree)
    print(f"T0 = {t0!r}, SCALE = {scale!r}")
    print(f"H (degree {a.h_degree}), erfcx within {h_err:.2e} relative in f32:")
    for c in h:
        print(f"    {float(c)!r},")
    q, q_err = fit_q(a.q_degree)
    print(f"Q (degree {a.q_degree} in z^2), erf within {q_err:.2e} relative in f32:")
    for c in q:
        print(f"    {float(c)!r},")


if __name__ == "__main__":
    main()
