# Two commands on a fresh machine (both idempotent):
#   make run    set up .venv and run the default experiment
#   make test   set up .venv and run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export FLWR_TELEMETRY_ENABLED := 0

.PHONY: setup run test lint bench bench-aggregation bench-repopt bench-audio bench-deploy experiment

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/fedssl run $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

# ruff, then the import contracts of docs/architecture.md ([tool.importlinter] in pyproject).
lint: setup
	$(BIN)/ruff check fedssl tests benchmarks
	$(BIN)/lint-imports

experiment: setup
	$(BIN)/fedssl experiment experiments/image_ssl_methods.toml $(ARGS)

bench: setup
	$(BIN)/python benchmarks/overhead.py $(ARGS)

bench-aggregation: setup
	$(BIN)/python benchmarks/aggregation.py $(ARGS)

bench-repopt: setup
	$(BIN)/python benchmarks/repopt_step.py $(ARGS)

bench-audio: setup
	$(BIN)/python benchmarks/audio_models.py $(ARGS)

bench-deploy: setup
	$(BIN)/python benchmarks/deployment.py $(ARGS)
