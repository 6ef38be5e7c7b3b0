#!/usr/bin/env bash
# Install a CPU build of torch into the given interpreter's environment, before anything
# else can pull PyPI's default (multi-GB, CUDA) Linux wheel. Idempotent.
#   TORCH_VERSION  version to install (default 2.13.0)
#   TORCH_INDEX    pip index URL to take torch from; empty = choose automatically:
#                  1. a CPU wheel already reachable through pip's find-links (offline machines),
#                  2. on Linux, the PyTorch CPU index,
#                  3. elsewhere (macOS, Windows), PyPI, whose wheels there are CPU/MPS builds.
set -euo pipefail
py=${1:?usage: install_torch.sh PYTHON}
ver=${TORCH_VERSION:-2.13.0}
index=${TORCH_INDEX:-}

if "$py" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$ver' else 1)" 2>/dev/null; then
    echo "torch $ver already installed"
    exit 0
fi
pipq() { "$py" -m pip install --quiet "$@"; }

if [ -n "$index" ]; then
    echo "installing torch==$ver from $index"
    pipq --index-url "$index" --extra-index-url https://pypi.org/simple "torch==$ver"
elif pipq --no-index --no-deps "torch==$ver" 2>/dev/null; then
    echo "installed torch==$ver from a local wheel; now its dependencies"
    pipq "torch==$ver"
elif [ "$(uname -s)" = "Linux" ]; then
    echo "installing the CPU build of torch==$ver from the PyTorch CPU index"
    pipq --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple "torch==$ver"
else
    pipq "torch==$ver"
fi
"$py" -c "import importlib.metadata as m; print('torch', m.version('torch'))"
