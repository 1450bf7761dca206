#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ with small valid files (the repository's test fixtures and a few
# made here), so that libFuzzer starts past the magic numbers and fixed headers instead of
# having to find them. Run once before `cargo +nightly fuzz run TARGET`.
set -euo pipefail
cd "$(dirname "$0")"
fx=../tests/fixtures
mkdir -p corpus/{npy,dat,mseed,segy,safetensors,seisbench,hdf5}
cp "$fx"/npy/*.npy corpus/npy/
cp "$fx"/mseed/*.mseed corpus/mseed/
cp "$fx"/segy/*.sgy corpus/segy/
cp "$fx"/seisbench/*/metadata*.csv corpus/seisbench/
for d in "$fx"/seisbench/h5py_*; do cp "$d/waveforms.hdf5" "corpus/hdf5/$(basename "$d").hdf5"; done
# the dat target reads its input's first half as the sidecar, the second as the floats
printf '{"shape":[2,2]} \0\0\x80\x3f\0\0\0\x40\0\0\x40\x40\0\0\x80\x40' > corpus/dat/two_by_two
printf '{"shape":[-1,2]}\0\0\x80\x3f\0\0\0\x40\0\0\x40\x40\0\0\x80\x40' > corpus/dat/inferred
python3 - <<'PY'
import json, struct
def st(tensors, path):
    hdr, data = {}, b""
    for name, (dt, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hdr["__metadata__"] = {"format": "pt"}
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
st({"patch_embed.proj.weight": ("F32", [2, 1, 2, 2], b"\0" * 32),
    "blocks.0.mlp.fc1.weight": ("F32", [4, 2], b"\0" * 32),
    "pos_embed": ("F32", [1, 5, 2], b"\0" * 40)}, "corpus/safetensors/vit")
st({"feature_projection.projection.weight": ("BF16", [2, 2], b"\0" * 8),
    "encoder.layers.0.feed_forward.intermediate_dense.weight": ("F16", [4, 2], b"\0" * 16)},
   "corpus/safetensors/w2v")
PY
echo "seeded: $(find corpus -type f | wc -l) files in fuzz/corpus/"
