# credo: `make demo` and `make test` install everything they need (as root on Debian 12).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.credo-installed

.PHONY: install system-packages venv sdk-venv demo test bench lint clean

install: system-packages venv sdk-venv

system-packages:
	@scripts/install-system-packages.sh

venv: $(STAMP)

# The cloud SDKs for jobs (world-readable, /opt/credo/sdk-venv): the workload identity tests run them.
sdk-venv: system-packages
	@scripts/install-sdk-venv.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: install
	@scripts/demo.sh

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
