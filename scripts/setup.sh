#!/usr/bin/env bash
# Prepares a fresh Debian machine for tpo, and is quick when nothing is missing:
#   1. system packages (compiler, cmake, ccache, FFmpeg's libraries and CLI, nlohmann-json, Gloo's headers)
#   2. libtorch 2.13.0 CPU, unpacked from PyTorch's own wheel into a cache folder outside the repo
#   3. npm dependencies, the TypeScript build and the native addon
#
# Options:  --libtorch-only   only step 2 (what an installed package needs at run time)
#           --no-build        steps 1 and 2 and npm dependencies, no compilation
# Environment: LIBTORCH (use this libtorch folder instead of the cache), TPO_CACHE_DIR (cache folder),
#              TPO_TORCH_VERSION (default 2.13.0), TPO_TORCH_VARIANT (default cpu)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
torch_version="${TPO_TORCH_VERSION:-2.13.0}"
torch_variant="${TPO_TORCH_VARIANT:-cpu}"
cache_dir="${TPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tpo}"
libtorch_dir="$cache_dir/libtorch-$torch_version-$torch_variant"

mode=all
for arg in "$@"; do
  case "$arg" in
    --libtorch-only) mode=libtorch ;;
    --no-build) mode=nobuild ;;
    *) echo "setup.sh: unknown option '$arg' (known: --libtorch-only, --no-build)" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- 1. system packages
system_packages() {
  # command or file that proves the package is there  ->  Debian package
  local -a wanted=(
    "cmake:cmake" "g++:g++" "make:make" "ccache:ccache" "unzip:unzip" "pkg-config:pkg-config"
    "ffmpeg:ffmpeg"
    "/usr/include/nlohmann/json.hpp:nlohmann-json3-dev"
    # c10d's ProcessGroupGloo (native/dist) includes Gloo's headers; the wheel ships Gloo's code, not its headers.
    "/usr/include/gloo/context.h:libgloo-dev"
  )
  local -a missing=()
  local entry probe pkg
  for entry in "${wanted[@]}"; do
    probe="${entry%%:*}"; pkg="${entry#*:}"
    if [[ "$probe" == /* ]]; then [[ -e "$probe" ]] || missing+=("$pkg")
    else command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg"); fi
  done
  local lib
  for lib in libavformat libavcodec libswscale libavutil; do
    pkg-config --exists "$lib" 2>/dev/null || missing+=("$lib-dev")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) -eq 0 ]]; then
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "tpo needs these system packages: ${missing[*]}" >&2
    echo "run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# ---------------------------------------------------------------- 2. libtorch
# PyTorch publishes its C++ library inside the Python wheel: torch/lib, torch/include, torch/share/cmake.
# We unpack those three folders, so nothing Python is needed at run time.
fetch_libtorch() {
  if [[ -n "${LIBTORCH:-}" ]]; then
    [[ -d "$LIBTORCH/share/cmake/Torch" ]] || { echo "LIBTORCH=$LIBTORCH has no share/cmake/Torch: not a libtorch folder" >&2; exit 1; }
    log "using LIBTORCH=$LIBTORCH"
    return 0
  fi
  if [[ -f "$libtorch_dir/build-version" && -f "$libtorch_dir/lib/libtorch_cpu.so" ]]; then
    return 0
  fi
  command -v unzip >/dev/null || { echo "unzip is needed to unpack libtorch (apt-get install unzip)" >&2; exit 1; }
  local wheel_dir="$cache_dir/wheels"
  mkdir -p "$wheel_dir"
  local wheel
  wheel=$(ls "$wheel_dir"/torch-"$torch_version"+"$torch_variant"-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -z "$wheel" ]]; then
    log "fetching torch==$torch_version+$torch_variant (the wheel that holds libtorch)"
    # First from pip's configured local wheel folders (no network), then from its index.
    local spec="torch==$torch_version+$torch_variant"
    python3 -m pip download --quiet --no-index --no-deps --only-binary=:all: "$spec" -d "$wheel_dir" 2>/dev/null \
      || python3 -m pip download --quiet --no-deps --only-binary=:all: "$spec" -d "$wheel_dir" \
      || { echo "could not get the torch $torch_version+$torch_variant wheel with pip; set LIBTORCH to a libtorch folder instead" >&2; exit 1; }
    wheel=$(ls "$wheel_dir"/torch-"$torch_version"+"$torch_variant"-*.whl | head -n 1)
  fi
  log "unpacking libtorch from $(basename "$wheel")"
  local tmp="$libtorch_dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  unzip -q -o "$wheel" 'torch/lib/*' 'torch/include/*' 'torch/share/*' -d "$tmp"
  mv "$tmp/torch/lib" "$tmp/torch/include" "$tmp/torch/share" "$tmp/"
  rmdir "$tmp/torch"
  # The official libtorch zip carries this file; the loader and the build read the version from it.
  echo "$torch_version+$torch_variant" >"$tmp/build-version"
  rm -rf "$libtorch_dir"
  mv "$tmp" "$libtorch_dir"   # atomic: a half-unpacked libtorch never has the final name
  rm -f "$wheel"
  log "libtorch $torch_version+$torch_variant is in $libtorch_dir"
}

# ---------------------------------------------------------------- 3. npm + build
npm_and_build() {
  cd "$here"
  # Install dependencies only when the lockfile changed since the last install.
  if [[ ! -f node_modules/.package-lock.json ]] || ! cmp -s package-lock.json node_modules/.tpo-lock-stamp; then
    log "npm ci"
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.tpo-lock-stamp
  fi
  [[ "$mode" == nobuild ]] && return 0
  log "building TypeScript and the native addon"
  npm run --silent build
}

case "$mode" in
  libtorch) fetch_libtorch ;;
  *) system_packages; fetch_libtorch; npm_and_build ;;
esac
