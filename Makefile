# The two commands: `make demo` and `make test`. Both create the virtual environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## demo: start the bundled simulators, run the whole pipeline on an embedded SQLite file in out/demo
demo: $(STAMP)
	$(BIN)/sync-agent demo --out out/demo

## test: lint, type-check and run the test suite (SQLite and the local PostgreSQL)
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

## bench: the benchmarks, each against its baseline (minutes; not part of CI)
bench: $(STAMP)
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/idle.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
