#!/usr/bin/env bash
# GPU machine side (no Rust toolchain needed): runs what scripts/gpu-prep.sh built.
# Usage: bash scripts/gpu-run.sh [LOG_DIR]   (default: $OUT or ./gpu-logs)
set -uo pipefail
cd "$(dirname "$0")/.."
LOG="${1:-${OUT:-gpu-logs}}"
mkdir -p "$LOG"
export SEISFUSE_CACHE_DIR="$LOG/kernel-cache"
# A GPU machine: CUDA must start (tests/zz_skip_summary.rs checks it), NVRTC must be found, and
# every skip is listed in $LOG/skips.log (docs/testing.md).
export SEISFUSE_REQUIRE_GPU=1
export SEISFUSE_REQUIRE_NVRTC=1
export SEISFUSE_SKIP_LOG="$LOG/skips.log"
# Tests that run the binary (tests/profile.rs) take this copy instead of the build machine's.
export SEISFUSE_BIN="$PWD/.gpu/seisfuse"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$LOG/nvidia-smi.txt" 2>&1
cat "$LOG/nvidia-smi.txt"
run() { # name, command...
  local name=$1; shift
  echo "== $name: $*"
  local t0=$(date +%s.%N)
  "$@" > "$LOG/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc in $(echo "$(date +%s.%N) - $t0" | bc) s; tail:"
  tail -n 15 "$LOG/$name.log"
}
run doctor .gpu/seisfuse --device cuda doctor
run doctor-cached .gpu/seisfuse --device cuda doctor   # second start: everything from the cache
# --include-ignored: the tests marked "needs a CUDA GPU" run here (none of these executables
# ignores a test for another reason); without CUDA they fail. zz_skip_summary sorts last.
# Tests that need two GPUs (named nccl_two_ranks*) are skipped on a machine with one.
skip=()
if [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -lt 2 ]; then skip=(--skip nccl_two_ranks); fi
for t in .gpu/tests/*; do
  run "test-$(basename "$t")" "$t" --include-ignored --nocapture --test-threads=1 "${skip[@]}"
done
run bench-ops timeout 180 .gpu/seisfuse --device cuda bench ops
run bench-sfm timeout 180 .gpu/seisfuse --device cuda bench sfm --preset sfm-base --mae
run bench-seislm timeout 180 .gpu/seisfuse --device cuda bench seislm --preset seislm-base
run bench-sfm-graph timeout 180 .gpu/seisfuse --device cuda --kernel matmul=2,attention=2 bench sfm --preset sfm-base --precision bf16 --graph --counts
run bench-sfm-tc timeout 180 .gpu/seisfuse --device cuda --kernel matmul=2,attention=2 bench sfm --preset sfm-base --precision bf16 --counts
run bench-seislm-pretrain timeout 180 .gpu/seisfuse --device cuda bench seislm --preset seislm-base --pretrain
run bench-mel timeout 120 .gpu/seisfuse --device cuda bench mel
# Per-kernel profiles (measured), and the prediction for this card's model beside them.
run profile-sfm timeout 300 .gpu/seisfuse --device cuda profile --model sfm-base --batch 64 --precision bf16 --json
run profile-sfm-tc timeout 300 .gpu/seisfuse --device cuda --kernel matmul=2 profile --model sfm-base --batch 64 --precision bf16 --json
run profile-seislm timeout 300 .gpu/seisfuse --device cuda profile --model seislm-base --batch 64 --precision bf16 --json
run predict-sfm timeout 300 .gpu/seisfuse --device cpu profile --model sfm-base --batch 64 --precision bf16 --json
echo "logs in $LOG"
