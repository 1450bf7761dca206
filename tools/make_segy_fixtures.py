"""Writes small SEG-Y files with segyio (the reference library) under tests/fixtures/segy/,
so that the Rust reader is tested against files it did not write.

    pip install segyio numpy && python tools/make_segy_fixtures.py

cube_ibm.sgy / cube_ieee.sgy: 3 inlines (10, 11, 12) x 4 crosslines (20..23) x 50 samples at
4 ms, sample value = il * 100 + xl + s / 100 (IBM float / IEEE float), offset 150 in the IBM
file (segyio reads differing offsets as a prestack axis) and 100 * xl in the IEEE file,
CDP X/Y = (il * 25.5, xl * 12.25) with scalar -100. Traces are written crossline-fastest
except that the IEEE file is shuffled, so the reader must sort by header.
"""
import os

import numpy as np
import segyio

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "segy")
ILINES = [10, 11, 12]
XLINES = [20, 21, 22, 23]
NS = 50


def write(name, fmt, order, offset):
    spec = segyio.spec()
    spec.iline = 189
    spec.xline = 193
    spec.format = fmt
    spec.sorting = segyio.TraceSortingFormat.INLINE_SORTING
    spec.samples = np.arange(NS) * 4.0
    spec.ilines = ILINES
    spec.xlines = XLINES
    spec.tracecount = len(ILINES) * len(XLINES)
    with segyio.create(os.path.join(OUT, name), spec) as f:
        f.text[0] = segyio.tools.create_text_header({1: "SEISFUSE TEST CUBE WRITTEN BY SEGYIO", 2: f"FORMAT {fmt}"})
        f.bin.update(hdt=4000, hns=NS, format=fmt)
        for t, (il, xl) in enumerate(order):
            f.header[t] = {
                segyio.su.iline: il,
                segyio.su.xline: xl,
                segyio.su.offset: offset(il, xl),
                segyio.su.scalco: -100,
                segyio.su.cdpx: int(round(il * 25.5 * 100)),
                segyio.su.cdpy: int(round(xl * 12.25 * 100)),
                segyio.su.ns: NS,
                segyio.su.dt: 4000,
            }
            f.trace[t] = (il * 100 + xl + np.arange(NS) / 100.0).astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    grid = [(il, xl) for il in ILINES for xl in XLINES]
    write("cube_ibm.sgy", 1, grid, lambda il, xl: 150)
    rng = np.random.default_rng(0)
    shuffled = [grid[i] for i in rng.permutation(len(grid))]
    write("cube_ieee.sgy", 5, shuffled, lambda il, xl: 100 * xl)


if __name__ == "__main__":
    main()
