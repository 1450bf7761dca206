#!/usr/bin/env bash
# Build host side of a GPU run (docs/architecture.md): builds the release binary and the test executables
# into the ignored folder .gpu/, to be carried to a GPU machine that has no Rust toolchain.
# Then, on the GPU machine: bash scripts/gpu-run.sh [LOG_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu && mkdir -p .gpu/tests
cargo build --release --bins
cp target/release/seisfuse .gpu/
# The GPU-relevant test executables (the others need the build tree or are CPU-only): every
# test file with a test ignored as needing a GPU (tests/gpu_scripts.rs checks this list).
cargo test --release --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys, shutil
keep = {"ops_parity", "heads_parity", "kernels_compile", "attention", "sfm_parity", "seislm_parity", "seislm_ops_parity", "dsp_gpu", "mixed_precision", "wav2vec2_ops", "seislm_heads_parity", "fusion_ops", "fusion_models", "matmul_tc_gpu", "attention_tc_gpu", "conv1d_tc_gpu", "dist_data_parallel", "dist_grad_sync", "profile", "graph_step", "zz_skip_summary"}
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in keep | set(sys.argv[1:]):
        shutil.copy(m["executable"], ".gpu/tests/" + m["target"]["name"])
        print("test executable:", m["target"]["name"])
' ${SEISFUSE_GPU_TESTS:-}
# Debug symbols make each executable ~35 MB; stripped they are ~2 MB (the device tool carries
# at most 64 MiB with the working tree).
if command -v strip >/dev/null; then strip .gpu/seisfuse .gpu/tests/*; fi
ls -la .gpu .gpu/tests
du -sh .gpu
