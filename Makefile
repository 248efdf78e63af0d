# deepspark developer commands: `make demo`, `make test`. Everything runs from the project venv in .venv.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

# Executors must run the venv's python (else: "No module named 'pyarrow'"); keep Spark on loopback.
export PYSPARK_PYTHON := $(CURDIR)/$(VENV)/bin/python
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(VENV)/bin/python
export SPARK_LOCAL_IP := 127.0.0.1
export SPARK_LOCAL_HOSTNAME := localhost

# This machine's pip config names extra index folders that lack some packages; pip then prints one
# "Location ... is ignored" warning per package. Drop exactly those lines, keep everything else.
PIP_NOISE := ^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$$

# The UI's browser tests drive a real headless Chromium (tests/ui/test_browser.py).
CHROMIUM ?= $(or $(DEEPSPARK_CHROMIUM),/usr/bin/chromium)

.PHONY: help venv browser demo test lint bench clean distclean

help:
	@echo "make venv       create .venv and install deepspark[dev] (only when pyproject.toml/constraints.txt changed)"
	@echo "make demo       run 'deepspark demo'"
	@echo "make test       ruff + mypy + pytest (PYTEST_ARGS='-m spark' to narrow); installs Chromium if missing"
	@echo "make browser    install Debian's chromium for the UI browser tests when it is missing (root)"
	@echo "make lint       ruff + mypy"
	@echo "make bench      run every bench/bench_*.py"
	@echo "make clean      remove caches and generated files (distclean also removes .venv)"

venv: $(STAMP)

# Debian's chromium, installed as root when missing; otherwise say what to do (DEEPSPARK_CHROMIUM=/path works too).
browser:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "make: the UI browser tests need Chromium at $(CHROMIUM); install it (as root: apt-get install -y chromium)" >&2; \
		echo "      or point DEEPSPARK_CHROMIUM at a Chromium binary" >&2; \
		exit 1; \
	fi; \
	echo "installing Debian's chromium for the UI browser tests"; \
	apt-get -o DPkg::Lock::Timeout=600 update -qq; \
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; \
	[ -x "$(CHROMIUM)" ] || { echo "make: chromium installed, but $(CHROMIUM) is missing: set DEEPSPARK_CHROMIUM" >&2; exit 1; }

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	@echo "installing deepspark[dev] into $(VENV) (constraints.txt pins torch/pyspark)"
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[dev]' 2>&1 | { grep -Ev "$(PIP_NOISE)" || true; }
	@touch $@

demo: venv
	$(BIN)/deepspark demo

lint: venv
	$(BIN)/ruff check deepspark tests
	$(BIN)/mypy

# Runs all three even when one fails, so CI shows every problem at once; fails if any did
# (pytest's exit code 5, "no tests collected", included).
test: venv browser
	@failed=(); \
	$(BIN)/ruff check deepspark tests || failed+=(ruff); \
	$(BIN)/mypy || failed+=(mypy); \
	start=$$(date +%s); \
	$(BIN)/pytest -m "not cluster" $(PYTEST_ARGS) || failed+=("pytest (exit $$?)"); \
	$(BIN)/pytest -m cluster tests/cluster $(PYTEST_ARGS) || failed+=("pytest cluster (exit $$?)"); \
	echo "suite time: $$(( $$(date +%s) - start )) s"; \
	if [ $${#failed[@]} -gt 0 ]; then echo "make test FAILED: $${failed[*]}" >&2; exit 1; fi

bench: venv
	@shopt -s nullglob; scripts=(bench/bench_*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no bench/bench_*.py scripts"; exit 0; fi; \
	for script in "$${scripts[@]}"; do \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache spark-warehouse metastore_db derby.log demo-output
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
