# Two entry points for a fresh machine with python3 and pip: `make demo` and `make test`.
# Each creates .venv on first use (llama-cpp-python compiles from source: ~10-15 min on 2 cores).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: demo mine-demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/populace build --config configs/demo.yaml

# Mines the shipped WildChat and oasst1 sample on the embedded model (about 3 minutes on 2 cores).
mine-demo: $(STAMP)
	$(BIN)/populace mine --conversations data/conversations/wildchat.jsonl \
		--conversations data/conversations/oasst1.jsonl --out data/runs/mined/core-mined.yaml

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/models.py

clean:
	rm -rf $(VENV) data/runs/*/
