# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
VENV ?= .venv
export PATH := $(abspath $(VENV))/bin:$(PATH)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo demo-irpo demo-grpo test test-fast
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt scripts/setup.sh
	bash scripts/setup.sh

demo: setup  ## run every declared iteration of params.yaml with DVC
	dvc repro

demo-irpo: setup  ## Iterative RPO on built-in arithmetic: params.yaml <- params/irpo.yaml (old one kept as .bak)
	python scripts/use_preset.py irpo
	dvc repro

demo-grpo: setup  ## GRPO on the IRPO demo's arithmetic tasks: params.yaml <- params/grpo.yaml (old one kept as .bak)
	python scripts/use_preset.py grpo
	dvc repro

test: setup  ## the full CPU test suite (what CI runs); GPU tests skip without a GPU
	python -m pytest -m "not gpu" -q --durations=15

test-fast: setup  ## everything but the real model and vLLM CPU (about 3 minutes)
	python -m pytest -m "not slow and not gpu" -q
