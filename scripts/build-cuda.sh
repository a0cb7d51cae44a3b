#!/usr/bin/env bash
# Builds tpo's CUDA flavour from nothing, on a machine with or without a GPU:
#   1. PyTorch's CUDA libtorch, unpacked from its own wheel (torch==2.14.1, CUDA 13.0) into the tpo cache beside
#      the CPU one: $cache/libtorch-<version>-cuda/{lib,include,share,build-version}. The NVIDIA libraries that
#      libtorch_cuda.so needs (cuBLAS, cuDNN, NCCL, the CUDA runtime, ...) come from NVIDIA's wheels, the ones the
#      torch wheel's metadata requires, and go into the same lib/ (libtorch's RPATH holds $ORIGIN), so that the
#      folder is a complete libtorch: `LIBTORCH=<it>` is all a build or a run needs. The C headers that c10d's NCCL
#      backend (ProcessGroupNCCL.hpp) includes come from the same wheels and go into $libtorch_dir/nvidia-include/
#      (NCCL's; through ATen/cuda/CUDAContextLight.h the CUDA runtime's with crt/ and CCCL's nv/, cuBLAS(Lt)'s,
#      cuSPARSE's and cuSOLVER's: 7 MB); a cache unpacked before they were has them added without redoing the rest.
#   2. The addon built against it (build-cuda/, beside the CPU build/) and its prebuild in prebuilds/linux-x64/cuda/.
#
# No CUDA toolkit, nvcc or GPU is needed: tpo compiles no CUDA code (only host C++ that includes those headers),
# and CMakeLists.txt tells PyTorch's CMake config not to look for a toolkit (see the comment there). The CUDA addon
# loads and runs on CPU without a GPU.
#
# Options:  --unpack-only   step 1 only (with the headers)
#           --no-prebuild   step 2 without the prebuild
# Environment: TPO_CACHE_DIR (cache folder), TPO_CUDA_TORCH_VERSION (default 2.14.1), TPO_WHEEL_DIR (a folder that
#   already holds the wheels; default: pip downloads them from its configured index into $cache/wheels-cuda and
#   removes them once unpacked), LIBTORCH (skip step 1 and build against this CUDA libtorch folder).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
torch_version="${TPO_CUDA_TORCH_VERSION:-2.14.1}"
cache_dir="${TPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tpo}"
libtorch_dir="$cache_dir/libtorch-$torch_version-cuda"

mode=all
for arg in "$@"; do
  case "$arg" in
    --unpack-only) mode=unpack ;;
    --no-prebuild) mode=noprebuild ;;
    *) echo "build-cuda.sh: unknown option '$arg' (known: --unpack-only, --no-prebuild)" >&2; exit 2 ;;
  esac
done

log() { printf '[build-cuda] %s\n' "$*" >&2; }
die() { printf 'build-cuda: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. the CUDA libtorch
# The torch wheel's requirements that carry native libraries: NVIDIA's wheels (cuda-toolkit[...] pulls the CUDA
# runtime, cuBLAS, cuFFT, cuRAND, cuSPARSE, NVRTC, ... as nvidia-* wheels). Python-only ones (triton,
# cuda-bindings, sympy, ...) are not needed by libtorch.
nvidia_requirements() {
  unzip -p "$1" "torch-*.dist-info/METADATA" |
    sed -n 's/^Requires-Dist: \(\(cuda-toolkit\|nvidia-\)[^;]*\);.*platform_system == "Linux".*$/\1/p' |
    tr -d ' '
}

# The NCCL backend's headers (see the top): which wheels hold them, and what of each is taken. The CUDA runtime's
# headers include crt/host_defines.h (its own wheel since CUDA 13) and <nv/target> (CCCL's; the rest of CCCL, 17 MB
# of CUB/Thrust, is device code tpo never includes). cuda-toolkit's extras name these wheels, pinned to the
# toolkit version torch requires.
header_extras=cudart,crt,cccl,cublas,cusparse,cusolver
header_wheels=(cuda_runtime cuda_crt cuda_cccl cublas cusparse cusolver nccl)
header_files=(nccl.h cuda_runtime_api.h crt/host_defines.h nv/target cublas_v2.h cublasLt.h cusparse.h cusolverDn.h)

# The requirements that bring the header wheels, from torch's: cuda-toolkit==V with the header extras, NCCL's pin.
header_requirements() {
  sed -n -e "s/^cuda-toolkit\(\[[^]]*\]\)\{0,1\}\(==.*\)$/cuda-toolkit[$header_extras]\2/p" -e '/^nvidia-nccl-/p'
}

# A wheel of $1 (header_wheels' names; NVIDIA's CUDA 12 wheels carry a _cu12 suffix) in folder $2.
wheel_of() {
  ls "$2"/nvidia_"$1"-*.whl "$2"/nvidia_"$1"_cu[0-9]*-*.whl 2>/dev/null | head -n 1 || true
}

headers_complete() {
  local f
  for f in "${header_files[@]}"; do [[ -f "$1/$f" ]] || return 1; done
}

# Unpacks the header wheels found in folder $1 into folder $2 (created; one include folder like a toolkit's).
unpack_headers() {
  local wheel_dir="$1" dest="$2" name wheel work
  work=$(mktemp -d "$dest.unpack.XXXXXX")
  for name in "${header_wheels[@]}"; do
    wheel=$(wheel_of "$name" "$wheel_dir")
    [[ -n "$wheel" ]] || { rm -rf "$work"; die "no nvidia_$name wheel in $wheel_dir (it holds headers the NCCL backend needs)"; }
    log "unpacking the headers of $(basename "$wheel")"
    if [[ "$name" == cuda_cccl ]]; then
      unzip -q -o "$wheel" 'nvidia/*/include/nv/*' -d "$work"
    else
      unzip -q -o "$wheel" 'nvidia/*/include/*' -d "$work"
    fi
  done
  mkdir -p "$dest"
  local include
  for include in "$work"/nvidia/*/include; do cp -r "$include"/. "$dest"/; done
  rm -rf "$work"
  headers_complete "$dest" || die "the header wheels in $wheel_dir lack some of: ${header_files[*]}"
}

# A libtorch unpacked before the headers were: fetch only the header wheels (their versions from the requirements
# recorded beside the libtorch, else from torch's wheel) and add nvidia-include/ atomically.
add_headers() {
  headers_complete "$libtorch_dir/nvidia-include" && return 0
  log "adding the NCCL backend's headers to $libtorch_dir/nvidia-include"
  local work
  work=$(mktemp -d "$cache_dir/headers-cuda.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  local -a wanted=()
  if [[ -n "${TPO_WHEEL_DIR:-}" ]] && [[ -n "$(wheel_of nccl "$TPO_WHEEL_DIR")" && -n "$(wheel_of cuda_crt "$TPO_WHEEL_DIR")" ]]; then
    unpack_headers "$TPO_WHEEL_DIR" "$work/nvidia-include"
  else
    if [[ -f "$libtorch_dir/nvidia-requirements.txt" ]]; then
      mapfile -t wanted < <(header_requirements <"$libtorch_dir/nvidia-requirements.txt")
    else
      local torch_wheel
      torch_wheel=$(ls "${TPO_WHEEL_DIR:-/nonexistent}"/torch-"$torch_version"*.whl 2>/dev/null | head -n 1 || true)
      if [[ -z "$torch_wheel" ]]; then
        log "fetching torch==$torch_version for its requirements (which NVIDIA wheel versions)"
        python3 -m pip download --quiet --no-deps --only-binary=:all: "torch==$torch_version" -d "$work/torch" ||
          die "pip could not get torch==$torch_version; put its wheel into TPO_WHEEL_DIR"
        torch_wheel=$(ls "$work"/torch/torch-"$torch_version"*.whl | head -n 1)
      fi
      nvidia_requirements "$torch_wheel" >"$work/nvidia-requirements.txt"
      mapfile -t wanted < <(header_requirements <"$work/nvidia-requirements.txt")
      rm -rf "$work/torch"
    fi
    ((${#wanted[@]} == 2)) || die "could not tell the header wheels' versions from torch's requirements (got: ${wanted[*]:-nothing})"
    log "fetching the header wheels: ${wanted[*]}"
    python3 -m pip download --quiet --only-binary=:all: "${wanted[@]}" -d "$work/wheels" ||
      die "pip could not get ${wanted[*]}; put those wheels into TPO_WHEEL_DIR"
    unpack_headers "$work/wheels" "$work/nvidia-include"
  fi
  [[ -f "$libtorch_dir/nvidia-requirements.txt" || ! -f "$work/nvidia-requirements.txt" ]] ||
    mv "$work/nvidia-requirements.txt" "$libtorch_dir/"
  rm -rf "$libtorch_dir/nvidia-include"
  mv "$work/nvidia-include" "$libtorch_dir/nvidia-include"
  rm -rf "$work"
  trap - EXIT
  log "headers in $libtorch_dir/nvidia-include ($(du -sh "$libtorch_dir/nvidia-include" | cut -f1))"
}

fetch_wheels() {
  local dir="$1" torch_wheel
  torch_wheel=$(ls "$dir"/torch-"$torch_version"-*.whl "$dir"/torch-"$torch_version"+*-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -z "$torch_wheel" ]]; then
    log "fetching torch==$torch_version (the wheel that holds the CUDA libtorch, ~550 MB)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "torch==$torch_version" -d "$dir" ||
      die "pip could not get torch==$torch_version; put its wheel and NVIDIA's into TPO_WHEEL_DIR, or set LIBTORCH"
    torch_wheel=$(ls "$dir"/torch-"$torch_version"*.whl | head -n 1)
  fi
  local -a wanted
  # The header extras too: crt and cccl are no requirement of torch's (the libraries need no headers).
  mapfile -t wanted < <(nvidia_requirements "$torch_wheel" | sed "s/^cuda-toolkit\[\([^]]*\)\]/cuda-toolkit[\1,crt,cccl]/")
  ((${#wanted[@]} > 0)) || die "$torch_wheel requires no NVIDIA wheels: not a CUDA build of torch"
  if [[ -z "$(wheel_of cuda_runtime "$dir")" || -z "$(wheel_of cuda_crt "$dir")" || -z "$(wheel_of cuda_cccl "$dir")" ]]; then
    log "fetching NVIDIA's wheels: ${wanted[*]}"
    python3 -m pip download --quiet --only-binary=:all: "${wanted[@]}" -d "$dir" ||
      die "pip could not get NVIDIA's wheels (${wanted[*]}); put them into TPO_WHEEL_DIR"
  fi
  echo "$torch_wheel"
}

unpack_libtorch() {
  if [[ -f "$libtorch_dir/build-version" && -f "$libtorch_dir/lib/libtorch_cuda.so" ]]; then
    log "libtorch $(cat "$libtorch_dir/build-version") is in $libtorch_dir"
    add_headers
    return 0
  fi
  command -v unzip >/dev/null || die "unzip is needed (apt-get install unzip)"
  local wheel_dir="${TPO_WHEEL_DIR:-$cache_dir/wheels-cuda}" keep_wheels=${TPO_WHEEL_DIR:+1}
  mkdir -p "$wheel_dir"
  local torch_wheel
  torch_wheel=$(fetch_wheels "$wheel_dir")
  local tmp="$libtorch_dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/unpacked"
  trap 'rm -rf "$tmp"' EXIT
  log "unpacking libtorch from $(basename "$torch_wheel")"
  unzip -q -o "$torch_wheel" 'torch/lib/*' 'torch/include/*' 'torch/share/*' 'torch/version.py' -d "$tmp/unpacked"
  mv "$tmp/unpacked/torch/lib" "$tmp/unpacked/torch/include" "$tmp/unpacked/torch/share" "$tmp/"
  # libtorch_python.so needs libpython: nothing of tpo's loads it.
  rm -f "$tmp/lib/libtorch_python.so"
  local version
  version=$(sed -n "s/^__version__ = '\(.*\)'$/\1/p" "$tmp/unpacked/torch/version.py")
  [[ "$version" == "$torch_version"* ]] || die "$(basename "$torch_wheel") holds torch $version, not $torch_version"
  grep -q "^cuda: Optional\[str\] = '" "$tmp/unpacked/torch/version.py" ||
    die "$(basename "$torch_wheel") is a CPU build of torch; the CUDA build is needed"
  local wheel
  for wheel in "$wheel_dir"/nvidia_*.whl; do
    log "unpacking $(basename "$wheel")"
    # Status 11: nothing left to unpack (crt's wheel is headers alone).
    unzip -q -o "$wheel" 'nvidia/*' -d "$tmp/unpacked" -x '*/include/*' '*.a' '*__init__.py' '*/bin/*' || (($? == 11))
  done
  # Flat into lib/: libtorch's RPATH has $ORIGIN, and cuDNN finds its sub-libraries beside itself.
  find "$tmp/unpacked/nvidia" -path '*/lib/*' -name '*.so*' -exec mv -t "$tmp/lib" {} +
  unpack_headers "$wheel_dir" "$tmp/nvidia-include"
  # Which NVIDIA wheels (versions) this libtorch was made with: what a later header unpack fetches.
  nvidia_requirements "$torch_wheel" >"$tmp/nvidia-requirements.txt"
  # The official libtorch zip carries this file; the loader and the build read the version from it.
  echo "$version" >"$tmp/build-version"
  rm -rf "$tmp/unpacked" "$libtorch_dir"
  mv "$tmp" "$libtorch_dir"  # atomic: a half-unpacked libtorch never has the final name
  trap - EXIT
  [[ -n "$keep_wheels" ]] || rm -rf "$wheel_dir"
  log "libtorch $version is in $libtorch_dir ($(du -sh "$libtorch_dir" | cut -f1))"
}

# ---------------------------------------------------------------- 2. the CUDA addon
build_addon() {
  cd "$here"
  [[ -f dist/lib/libtorch.js ]] || npm run --silent build:ts
  log "building the CUDA addon into build-cuda/ (libtorch at $LIBTORCH)"
  node scripts/build-native.js --out build-cuda
  if [[ "$mode" != noprebuild ]]; then
    node scripts/prebuild.js --out build-cuda --no-build
  fi
}

if [[ -n "${LIBTORCH:-}" ]]; then
  [[ -f "$LIBTORCH/lib/libtorch_cuda.so" ]] || die "LIBTORCH=$LIBTORCH has no lib/libtorch_cuda.so: not a CUDA libtorch"
else
  unpack_libtorch
  export LIBTORCH="$libtorch_dir"
fi
[[ "$mode" == unpack ]] || build_addon
