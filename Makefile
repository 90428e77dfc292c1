# Two commands on a fresh machine: `make demo` (the embedded sweep) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned: it is the CPU wheel on this machine's disk; unpinned, pip pulls a CUDA build.
TORCH ?= torch==2.13.0
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export TOKENIZERS_PARALLELISM ?= false
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# 64 demo models on the generated mini-pile, on this machine's CPU slots, with a local Prefect.
# The last line printed is the path of the sweep's results.csv.
demo: setup
	$(BIN)/regmix demo --output-root runs

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_regression.py

clean:
	rm -rf runs cache .pytest_cache
