"""Writes small miniSEED 2 files with pymseed (libmseed, the reference C library) under
tests/fixtures/mseed/, so that the Rust reader is tested against files it did not write.

    pip install pymseed && python tools/make_mseed_fixtures.py

Integer samples: value(i, c) = ((i * i * 7919 + 31 * c) % 20001) - 10000, and every 97th
sample +300000 (so Steim-1/2 need every difference width). Float samples: i * 0.25 - 100.
Start 2024-02-29T12:00:00.5Z, 100 Hz, network XX, station STA, location 00, channels HH[ZNE].
"""
import os

import pymseed
from pymseed import DataEncoding

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "mseed")
START = "2024-02-29T12:00:00.5Z"
N = 1500


def value(i, c):
    v = ((i * i * 7919 + 31 * c) % 20001) - 10000
    if i % 97 == 0:
        v += 300000
    return v


def write(name, comps, encoding, sample_type, data_of, reclen=512, start=START):
    tl = pymseed.MS3TraceList()
    for c, comp in enumerate(comps):
        tl.add_data(f"FDSN:XX_STA_00_H_H_{comp}", data_of(c), sample_type, 100.0, starttime_str=start)
    path = os.path.join(OUT, name)
    if os.path.exists(path):
        os.remove(path)
    tl.to_file(path, overwrite=True, max_record_length=reclen, encoding=encoding, format_version=2)


def main():
    os.makedirs(OUT, exist_ok=True)
    ints = lambda c: [value(i, c) for i in range(N)]
    write("steim1_zne.mseed", "ZNE", DataEncoding.STEIM1, "i", ints)
    write("steim2_zne.mseed", "ZNE", DataEncoding.STEIM2, "i", ints)
    write("int32_z.mseed", "Z", DataEncoding.INT32, "i", ints)
    small = lambda c: [((i * 37) % 2001) - 1000 for i in range(N)]
    write("int16_z.mseed", "Z", DataEncoding.INT16, "i", small)
    floats = lambda c: [i * 0.25 - 100 for i in range(N)]
    write("float32_z.mseed", "Z", DataEncoding.FLOAT32, "f", floats)
    write("float64_z.mseed", "Z", DataEncoding.FLOAT64, "d", floats)
    # A gap: the Z channel stops after 600 samples and resumes 2 s later.
    tl = pymseed.MS3TraceList()
    for c, comp in enumerate("ZNE"):
        if comp == "Z":
            tl.add_data("FDSN:XX_STA_00_H_H_Z", ints(c)[:600], "i", 100.0, starttime_str=START)
            tl.add_data("FDSN:XX_STA_00_H_H_Z", ints(c)[800:], "i", 100.0, starttime_str="2024-02-29T12:00:08.5Z")
        else:
            tl.add_data(f"FDSN:XX_STA_00_H_H_{comp}", ints(c), "i", 100.0, starttime_str=START)
    path = os.path.join(OUT, "gap_zne.mseed")
    tl.to_file(path, overwrite=True, max_record_length=512, encoding=DataEncoding.STEIM2, format_version=2)


if __name__ == "__main__":
    main()
