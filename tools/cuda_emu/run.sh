#!/usr/bin/env bash
# Runs CUDA kernels (the engine ops, matmul, attention, the SFM heads and the wav2vec2 objective) on the CPU under a
# small emulation of the CUDA execution model (emu.h: one block at a time, each CUDA thread a ucontext fiber, __syncthreads as a barrier,
# warp shuffles through shared slots) and compares them with plain double-precision loops.
# For machines without a GPU: it checks kernel logic (indexing, halos, reductions, transposes),
# not timing, memory coalescing or real warp behaviour. Needs g++ with C++20 (std::barrier).
set -euo pipefail
cd "$(dirname "$0")"
out="${TMPDIR:-/tmp}/seisfuse-cuda-emu"
mkdir -p "$out"
status=0
# Kernels with dynamic shared memory: point `smem` at the emulation's static buffer.
mkdir -p gen
for k in matmul attention wav2vec2 conv1d; do
    sed 's/extern __shared__ float smem\[\];/float* smem = emu_dyn_smem();/' "../../kernels/$k.cu" > "gen/$k.cu"
done
for t in conv2d batch_norm relu_channels_upsample ms_ssim attention_matmul engine_ops wav2vec2 conv1d; do
    g++ -std=c++20 -O2 -pthread -w -o "$out/$t" "$t.cpp"
    echo "== $t"
    "$out/$t" || status=1
done
# The bf16 instantiations (bf16_ops.cpp, bf16_heads.cpp); bf16_ops also needs conv1d's dynamic
# shared memory rewritten.
sed 's/extern __shared__ float smem\[\];/float* smem = emu_dyn_smem();/' ../../kernels/conv1d.cu > gen/conv1d.cu
for t in bf16_ops bf16_heads; do
    g++ -std=c++20 -O2 -pthread -w -o "$out/$t" "$t.cpp"
    echo "== $t"
    "$out/$t" || status=1
done
exit $status
