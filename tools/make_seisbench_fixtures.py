"""Writes two tiny SeisBench-layout datasets under tests/fixtures/seisbench/ with h5py,
following SeisBench's documented on-disk format (metadata.csv + waveforms.hdf5 with groups
`data` and `data_format`; trace names like `bucket0$1,:3,:200`; chunked datasets with a
`chunks` file). SeisBench itself is not used (it needs PyTorch).

    pip install h5py numpy && python tools/make_seisbench_fixtures.py

Sample value of trace t, component c (in Z, N, E), sample w: t * 1000 + c * 100 + w * 0.5.
"""
import csv
import os

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "seisbench")
W = 200


def trace(t, order="ZNE"):
    base = {c: t * 1000 + "ZNE".index(c) * 100 + np.arange(W) * 0.5 for c in "ZNE"}
    return np.stack([base[c] for c in order]).astype(np.float32)


def write_meta(path, rows):
    cols = ["trace_name", "split", "trace_sampling_rate_hz", "trace_Pg_arrival_sample",
            "trace_Pn_arrival_sample", "trace_Sg_arrival_sample", "source_magnitude"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([r.get(c, "") for c in cols])


def main():
    # tiny: one bucket, ZNE, channels first.
    d = os.path.join(OUT, "tiny")
    os.makedirs(d, exist_ok=True)
    with h5py.File(os.path.join(d, "waveforms.hdf5"), "w") as f:
        f["data_format/component_order"] = "ZNE"
        f["data_format/dimension_order"] = "CW"
        f["data_format/sampling_rate"] = 100.0
        f["data/bucket0"] = np.stack([trace(t) for t in range(3)])
    write_meta(os.path.join(d, "metadata.csv"), [
        {"trace_name": "bucket0$0,:3,:200", "split": "train", "trace_sampling_rate_hz": 100,
         "trace_Pg_arrival_sample": 50, "trace_Pn_arrival_sample": 45, "trace_Sg_arrival_sample": 120.5},
        {"trace_name": "bucket0$1,:3,:200", "split": "dev", "trace_sampling_rate_hz": 100,
         "trace_Sg_arrival_sample": 80, "source_magnitude": 2.5},
        {"trace_name": "bucket0$2,:3,:150", "split": "test", "trace_sampling_rate_hz": 100},
    ])
    # chunked: two chunks, components ENZ, samples first, one dataset per trace.
    d = os.path.join(OUT, "chunked")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "chunks"), "w") as f:
        f.write("a\nb\n")
    for c, traces in [("a", [0, 1]), ("b", [2])]:
        with h5py.File(os.path.join(d, f"waveforms{c}.hdf5"), "w") as f:
            f["data_format/component_order"] = "ENZ"
            f["data_format/dimension_order"] = "WC"
            f["data_format/sampling_rate"] = 100.0
            for t in traces:
                f[f"data/trace{t}"] = trace(t, "ENZ").T
        write_meta(os.path.join(d, f"metadata{c}.csv"), [
            {"trace_name": f"trace{t}", "split": "train", "trace_sampling_rate_hz": 100,
             "trace_Pg_arrival_sample": 10 + t} for t in traces])


if __name__ == "__main__":
    main()
