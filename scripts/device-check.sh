#!/usr/bin/env bash
# The GPU check of tpo, as one short command (<= 10 minutes) on a machine with one NVIDIA GPU, nvcc-free:
#   1. builds tpo-check (native/check/device_check.cc + tpo's model/training code; no Node, no FFmpeg) against the
#      machine's CUDA libtorch: LIBTORCH, else an installed Python torch (the GPU image has PyTorch with CUDA),
#      else the tpo cache (scripts/build-cuda.sh's). No ccache; a build folder of its own.
#   2. runs it: bf16/float32 matmul rates, the reference fixtures' parity on the GPU in float32, a bf16-autocast TPO
#      step against float32 on the CPU, the DPO step at a 7B-like layer shape with and without activation
#      checkpointing (tokens/s, MFU, peak memory), generation tokens/s.
#   3. writes $OUT/device-check.json (OUT: the device tool's output folder; default ./device-check-out), the build
#      log, and beside them what `tpo plan` predicted for the bench's shape (scripts/device-check/plan-bench.json).
#
#   bash scripts/device-check.sh --prepare   here, before the device call: puts the nlohmann-json and Gloo headers
#                                            into .device-carry/ (carry it: the GPU image may not have the packages)
#   bash scripts/device-check.sh --dry-run   here, without a GPU: the same build and run with the CUDA parts
#                                            skipped and the bench at a tiny scale
#   bash scripts/device-check.sh             on the GPU machine
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$here/device-check-out}"
build="${TPO_CHECK_BUILD:-$here/build-check}"
device=cuda
scale=full
case "${1:-}" in
  --prepare)
    mkdir -p "$here/.device-carry/include"
    cp -r /usr/include/nlohmann /usr/include/gloo "$here/.device-carry/include/"
    echo "carry: .device-carry ($(du -sh "$here/.device-carry" | cut -f1))"
    exit 0 ;;
  --dry-run) device=cpu; scale=tiny ;;
  "") ;;
  *) echo "device-check.sh: unknown option '$1' (--prepare, --dry-run)" >&2; exit 2 ;;
esac
mkdir -p "$out"
log() { printf '[device-check %s] %s\n' "$(date +%T)" "$*" >&2; }
start=$(date +%s)

# ---------------------------------------------------------------- libtorch
libtorch="${LIBTORCH:-}"
if [[ -z "$libtorch" ]]; then
  for py in python3 python; do
    libtorch=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null) && break || libtorch=""
  done
fi
if [[ -z "$libtorch" ]]; then
  cache="${TPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tpo}"
  libtorch=$(ls -d "$cache"/libtorch-*-"$([[ $device == cuda ]] && echo cuda || echo cpu)" 2>/dev/null | sort -V | tail -n 1 || true)
fi
[[ -n "$libtorch" && -f "$libtorch/share/cmake/Torch/TorchConfig.cmake" ]] ||
  { echo "device-check: no libtorch (set LIBTORCH, install torch for python3, or run scripts/build-cuda.sh)" >&2; exit 1; }
if [[ $device == cuda && ! -f "$libtorch/lib/libtorch_cuda.so" ]]; then
  echo "device-check: $libtorch is a CPU libtorch; the GPU check needs a CUDA one" >&2; exit 1
fi
log "libtorch at $libtorch"

# ---------------------------------------------------------------- build
json_args=()
if [[ ! -f /usr/include/nlohmann/json.hpp && -f "$here/.device-carry/include/nlohmann/json.hpp" ]]; then
  json_args=(-DTPO_JSON_INCLUDE="$here/.device-carry/include")
fi
# Gloo's headers: the trainer's data parallelism (native/dist) compiles against them; the wheel ships only Gloo's code.
if [[ ! -f /usr/include/gloo/context.h && -f "$here/.device-carry/include/gloo/context.h" ]]; then
  json_args+=(-DTPO_GLOO_INCLUDE="$here/.device-carry/include")
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
log "configuring tpo-check"
cmake -S "$here" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DTPO_ADDON=OFF -DTPO_CHECK=ON \
  -DTPO_CCACHE=OFF -DTPO_LIBTORCH="$libtorch" "${json_args[@]}" >"$out/build.log" 2>&1 ||
  { tail -n 40 "$out/build.log" >&2; exit 1; }
log "building tpo-check ($(nproc) jobs)"
cmake --build "$build" --target tpo-check -j "$(nproc)" >>"$out/build.log" 2>&1 || { tail -n 60 "$out/build.log" >&2; exit 1; }
log "built in $(($(date +%s) - start)) s"

# ---------------------------------------------------------------- run
cp "$here/scripts/device-check/plan-bench.json" "$out/" 2>/dev/null || true
status=0
"$build/tpo-check" --fixtures "$here/test/fixtures/hf" --device "$device" --scale "$scale" --out "$out/device-check.json" || status=$?
log "done in $(($(date +%s) - start)) s (exit $status): $out/device-check.json"
exit "$status"
