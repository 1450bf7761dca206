#!/usr/bin/env bash
# Runs CUDA kernels (the engine ops, matmul, attention, the SFM heads and the wav2vec2 objective) on the CPU under a
# small emulation of the CUDA execution model (emu.h: one block at a time in shuffled order, each CUDA thread a ucontext fiber, warps
# run one at a time to their next barrier, warp collectives -- shuffles, mma.sync, ldmatrix -- executed per warp, cp.async deferred
# to its wait) and compares them with plain double-precision loops.
# For machines without a GPU: it checks kernel logic (indexing, halos, reductions, transposes),
# not timing, memory coalescing or real warp behaviour. Needs g++ with C++20 (std::barrier).
set -euo pipefail
cd "$(dirname "$0")"
# Everything this run writes goes to a folder of its own (two runs at once, from two checkouts
# or two test processes, must not overwrite each other's sources or binaries).
out="$(mktemp -d "${TMPDIR:-/tmp}/seisfuse-cuda-emu.XXXXXX")"
trap 'rm -rf "$out"' EXIT
status=0
# The kernel sources as the emulation compiles them ($out/gen/, found by the drivers'
# `#include "gen/..."` through -I "$out"): dynamic shared memory
# (`extern __shared__ float smem[];`) becomes emu_dyn_smem(), sized per launch as the CUDA
# wrappers size it, and each static `__shared__ T name[..];` becomes emu::shared_array, storage
# that is poisoned (NaN) at the start of every block as on a GPU nothing carries over.
# A gen/ left in this folder by older versions of this script would shadow them: removed.
rm -rf gen
mkdir -p "$out/gen"
for f in ../../kernels/*.cu; do
    sed -E -e 's/extern __shared__ float smem\[\];/float* smem = emu_dyn_smem();/' \
        -e 's/__shared__ (float|int) ([A-Za-z_][A-Za-z0-9_]*)((\[[^]]+\])+);/auto\& \2 = emu::shared_array<\1\3, __COUNTER__>();/' \
        "$f" > "$out/gen/$(basename "$f")"
done
if (cd "$out" && grep -n '__shared__' gen/*.cu | grep -v '^gen/matmul_tc.cu'); then
    echo "a shared-memory declaration run.sh does not translate (above)"
    exit 1
fi
# Every driver is compiled first, as many at once as there are cores (each takes 6-20 s; on
# two cores this halves the wait), then they run one after another in this order.
drivers=(conv2d batch_norm relu_channels_upsample ms_ssim attention_matmul engine_ops wav2vec2 conv1d
         bf16_ops bf16_heads tc_units tc_matmul)
jobs="$(nproc 2>/dev/null || echo 2)"
for t in "${drivers[@]}"; do
    g++ -std=c++20 -O2 -pthread -w -I "$out" -o "$out/$t" "$t.cpp" > "$out/$t.log" 2>&1 &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
done
wait
for t in "${drivers[@]}"; do
    if [ ! -x "$out/$t" ]; then
        echo "== $t: compile failed"
        cat "$out/$t.log"
        status=1
        continue
    fi
    echo "== $t"
    args=""
    # The tensor-core matmul (kernels/matmul_tc.cu, which uses only TC_DYNAMIC_SMEM) runs here
    # at small odd shapes; the real layer shapes run from tests/tc_kernel_emu.rs. bf16_ops and
    # bf16_heads are the bf16 instantiations; tc_units the emulator's own warp and tensor-core
    # operations.
    [ "$t" = tc_matmul ] && args=small
    "$out/$t" $args || status=1
done
exit $status
