"""Writes the small .npy files under tests/fixtures/npy/ with numpy itself, so that the Rust
reader is tested against the reference writer and not only against our own.

    pip install numpy && python tools/make_npy_fixtures.py

Every array is `(np.arange(12) - 5).reshape(3, 4)` in the named type (floats also × 0.5).
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "npy")


def base(dt):
    a = (np.arange(12) - 5).reshape(3, 4)
    if np.dtype(dt).kind == "f":
        a = a * 0.5
    if np.dtype(dt).kind == "u":
        a = a + 5
    return a.astype(dt)


def main():
    os.makedirs(OUT, exist_ok=True)
    for dt in ["<f4", "<f8", "<i2", "<i4", "<i8", "|u1"]:
        np.save(os.path.join(OUT, f"v1_{dt[1:]}.npy"), base(dt))
    for ver in [(2, 0), (3, 0)]:
        with open(os.path.join(OUT, f"v{ver[0]}_f4.npy"), "wb") as f:
            np.lib.format.write_array(f, base("<f4"), version=ver)
    np.save(os.path.join(OUT, "fortran_f4.npy"), np.asfortranarray(base("<f4")))
    np.save(os.path.join(OUT, "bigendian_f4.npy"), base(">f4"))
    np.save(os.path.join(OUT, "complex_c8.npy"), base("<f4").astype("<c8"))
    a = base("<f4")
    a[1, 2] = np.nan
    np.save(os.path.join(OUT, "nan_f4.npy"), a)
    np.save(os.path.join(OUT, "scalar_f4.npy"), np.float32(2.5))


if __name__ == "__main__":
    main()
