# `make run` and `make test` do all the set-up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# pytest workers: the machine has 2 cores.
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.runtime-installed: $(BIN)/python requirements.txt pyproject.toml
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps --editable .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

PORT ?= 8000

run: install
	$(BIN)/tracking init
	$(BIN)/python -m functions.api.local_setup
	API_KEYS="$$(cat .tracking/api_keys.json)" HOST=127.0.0.1 PORT=$(PORT) \
		$(BIN)/python -m functions.api.serve

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n $(PYTEST_WORKERS) -q

bench: install-dev
	$(BIN)/python bench/tracking_bench.py

clean:
	rm -rf $(VENV) .tracking .pytest_cache .mypy_cache .ruff_cache
