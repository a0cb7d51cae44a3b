#!/usr/bin/env bash
# The Python venv that `tpo bench pytorch` runs stock PyTorch + transformers in: torch 2.13.0+cpu (the same
# libtorch tpo links) and transformers, installed by pip from what pip is configured to reach (on these machines,
# local wheel folders). Never a dependency of tpo itself: only the comparison benchmark uses it.
# Environment: TPO_CACHE_DIR (cache folder; the venv is <cache>/bench-venv), TPO_TORCH_VERSION (default 2.13.0).
set -euo pipefail
cache_dir="${TPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tpo}"
venv="$cache_dir/bench-venv"
torch_version="${TPO_TORCH_VERSION:-2.13.0}"
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import torch, transformers, safetensors; assert torch.__version__.startswith('$torch_version')" 2>/dev/null; then
  exit 0
fi
echo "[bench] making $venv (torch $torch_version+cpu, transformers)" >&2
python3 -m venv "$venv"
# --retries 0: where only local indexes are reachable, do not wait on the default one.
"$venv/bin/pip" install --quiet --retries 0 --timeout 15 "torch==$torch_version+cpu" "transformers>=5,<6" safetensors numpy
"$venv/bin/python" -c "import torch, transformers; print('[bench] torch', torch.__version__, 'transformers', transformers.__version__)" >&2
