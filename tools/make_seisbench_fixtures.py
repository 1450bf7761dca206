"""Writes tiny SeisBench-layout datasets under tests/fixtures/seisbench/ with h5py, following
SeisBench's documented on-disk format (metadata.csv + waveforms.hdf5 with groups `data` and
`data_format`; trace names like `bucket0$1,:3,:200`; chunked datasets with a `chunks` file).
SeisBench itself is not used (it needs PyTorch).

    pip install h5py numpy && python tools/make_seisbench_fixtures.py

`tiny` and `chunked`: sample value of trace t, component c (in Z, N, E), sample w:
t * 1000 + c * 100 + w * 0.5.

`h5py_earliest`, `h5py_latest`, `h5py_dense`: the same traces in every storage h5py writes
(see `write_storage_set`), stored as f32, f64, int16 or int32, contiguous or chunked with gzip
(with and without shuffle), one dataset per trace and buckets; with h5py's default file format
(superblock 0, symbol-table groups), `libver="latest"` (superblock 3, version-2 object headers,
new chunk indexes) and `track_order=True` (link-message groups, dense link storage past 8
members). Integer traces hold t * 1000 + c * 100 + w, float traces t * 1000 + c * 100 + w * 0.5.
"""
import csv
import os
import sys

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "seisbench")
W = 200
# Samples per trace in the storage sets (small: the files are committed).
WS = 24


def trace(t, order="ZNE"):
    base = {c: t * 1000 + "ZNE".index(c) * 100 + np.arange(W) * 0.5 for c in "ZNE"}
    return np.stack([base[c] for c in order]).astype(np.float32)


def write_meta(path, rows, cols=None):
    cols = cols or ["trace_name", "split", "trace_sampling_rate_hz", "trace_Pg_arrival_sample",
                    "trace_Pn_arrival_sample", "trace_Sg_arrival_sample", "source_magnitude"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([r.get(c, "") for c in cols])


def storage_trace(t, dtype):
    """[3, WS] trace t as `dtype` (integers without the half-sample steps)."""
    w = np.arange(WS)
    step = 1.0 if np.issubdtype(dtype, np.integer) else 0.5
    return np.stack([t * 1000 + c * 100 + w * step for c in range(3)]).astype(dtype)


# (dataset name, trace numbers, dtype, h5py create_dataset options); a name with several
# traces is a bucket [n, 3, WS].
STORAGE = [
    ("trace_f32", [0], np.float32, {}),
    ("trace_f64", [1], np.float64, {}),
    ("trace_i16", [2], np.int16, {}),
    ("trace_i32", [3], np.int32, {}),
    ("trace_gz_shuffle_f32", [4], np.float32, dict(chunks=(1, 8), compression="gzip", shuffle=True)),
    ("trace_gz_i32", [5], np.int32, dict(chunks=(3, 10), compression="gzip")),
    ("bucket0", [6, 7, 8], np.float32, dict(chunks=(2, 3, 8), compression="gzip", shuffle=True)),
    ("bucket1", [9, 10], np.float64, {}),
]


def write_storage_set(name, dense=False, **file_kw):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    rows = []
    with h5py.File(os.path.join(d, "waveforms.hdf5"), "w", **file_kw) as f:
        f["data_format/component_order"] = "ZNE"
        f["data_format/dimension_order"] = "CW"
        f["data_format/sampling_rate"] = 100.0
        for ds, traces, dtype, opts in STORAGE:
            if len(traces) == 1:
                f.create_dataset(f"data/{ds}", data=storage_trace(traces[0], dtype), **opts)
                rows.append({"trace_name": ds, "t": traces[0]})
            else:
                data = np.stack([storage_trace(t, dtype) for t in traces])
                f.create_dataset(f"data/{ds}", data=data, **opts)
                for j, t in enumerate(traces):
                    rows.append({"trace_name": f"{ds}${j},:3,:{WS}", "t": t})
        if dense:
            # Past 8 members libhdf5 moves a creation-ordered group's links into a fractal heap.
            for t in range(11, 23):
                f.create_dataset(f"data/extra{t}", data=storage_trace(t, np.int16))
                rows.append({"trace_name": f"extra{t}", "t": t})
    cols = ["trace_name", "split", "trace_category", "trace_sampling_rate_hz", "trace_npts",
            "trace_P_arrival_sample", "trace_S_arrival_sample", "fixture_trace"]
    write_meta(os.path.join(d, "metadata.csv"), [
        {"trace_name": r["trace_name"], "split": ["train", "dev", "test"][r["t"] % 3],
         "trace_category": "noise" if r["t"] % 4 == 3 else "earthquake",
         "trace_sampling_rate_hz": 100, "trace_npts": WS,
         "trace_P_arrival_sample": "" if r["t"] % 4 == 3 else 3 + r["t"] % 5,
         "trace_S_arrival_sample": "" if r["t"] % 4 == 3 else 12 + r["t"] % 7,
         "fixture_trace": r["t"]} for r in rows], cols)


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
    write_storage_set("h5py_earliest")
    write_storage_set("h5py_latest", libver="latest")
    write_storage_set("h5py_dense", dense=True, track_order=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        OUT = sys.argv[1]
    main()
