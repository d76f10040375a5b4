# eai — set-up and entry points.
#
#   make run     create .venv if missing, install eai, run the engine on routes.yaml
#   make test    install test peers (PostgreSQL, dcmtk, Orthanc) + .[test], then ruff, mypy,
#                lint-imports (the layers contracts of pyproject.toml), pytest, and the
#                engine tests again on PostgreSQL (pytest-postgres)
#   make pytest-postgres-all   the whole pytest suite with the engines' journals on
#                PostgreSQL (EAI_TEST_DATABASE=postgresql, tests/_database.py), less the
#                tests about SQLite itself (marker sqlite_only); not part of make test
#   make lint    ruff + mypy + lint-imports
#   make bench   MLLP ingest benchmark (bench-convert, bench-dicom: the others)
#
# Needs Python >= 3.11 as `python3` (override: make PYTHON=python3.11 ...).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ROUTES ?= routes.yaml
PYTEST_ARGS ?=
# The engine tests run again with their journal on PostgreSQL (EAI_TEST_DATABASE, see
# tests/_database.py): the contract suite (kill -9 mid-send included), the engine flow and
# the fault tests, less those about SQLite itself (marker sqlite_only: its file on a full
# disk, a locked file...), deselected rather than skipped. pytest-postgres-all: every test.
PYTEST_POSTGRES ?= tests/contract tests/integration/test_engine_flow.py tests/fault
PYTEST_NOT_SQLITE := -m "not sqlite_only"
PIP := $(BIN)/python -m pip --disable-pip-version-check --no-input

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export DEBIAN_FRONTEND := noninteractive

.PHONY: help run test lint bench bench-convert bench-dicom venv install install-test test-peers ruff mypy lint-imports pytest pytest-postgres pytest-postgres-all

help:
	@echo "targets: run test lint bench bench-convert bench-dicom"

# Create the virtualenv if it is missing (or broken).
venv:
	@if [[ ! -x "$(BIN)/python" ]] || ! "$(BIN)/python" -c '' 2>/dev/null; then \
	    "$(PYTHON)" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	        "eai needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0])'; \
	    echo "creating $(VENV) with $$("$(PYTHON)" --version)"; \
	    "$(PYTHON)" -m venv "$(VENV)"; \
	fi

install: venv
	$(PIP) install -q -e .

install-test: venv
	$(PIP) install -q -e '.[test]'

# External programs the tests start for real (apt-get only as root, only if missing).
test-peers:
	bash scripts/install-test-peers.sh

run: install
	exec "$(BIN)/eai" run -c "$(ROUTES)"

ruff:
	"$(BIN)/ruff" check .

mypy:
	"$(BIN)/mypy"

# The import contracts of pyproject.toml [tool.importlinter]: a forbidden import fails.
lint-imports:
	"$(BIN)/lint-imports" --no-cache

# pytest exit 5 ("no tests collected") is a failure too.
pytest:
	rc=0; "$(BIN)/python" -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) || rc=$$?; \
	if [[ $$rc -eq 5 ]]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

pytest-postgres:
	rc=0; EAI_TEST_DATABASE=postgresql "$(BIN)/python" -m pytest -q -p no:cacheprovider \
	    $(PYTEST_NOT_SQLITE) $(PYTEST_POSTGRES) || rc=$$?; \
	if [[ $$rc -eq 5 ]]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

pytest-postgres-all:
	rc=0; EAI_TEST_DATABASE=postgresql "$(BIN)/python" -m pytest -q -p no:cacheprovider \
	    $(PYTEST_NOT_SQLITE) $(PYTEST_ARGS) || rc=$$?; \
	if [[ $$rc -eq 5 ]]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

# Sequential on purpose: the first failing step stops the target, even with make -j.
test: test-peers install-test
	$(MAKE) --no-print-directory ruff
	$(MAKE) --no-print-directory mypy
	$(MAKE) --no-print-directory lint-imports
	$(MAKE) --no-print-directory pytest
	$(MAKE) --no-print-directory pytest-postgres

lint: install-test
	$(MAKE) --no-print-directory ruff
	$(MAKE) --no-print-directory mypy
	$(MAKE) --no-print-directory lint-imports

bench: install
	"$(BIN)/python" bench/mllp_ingest.py

bench-convert: install
	"$(BIN)/python" bench/convert.py

bench-dicom: install-test test-peers
	"$(BIN)/python" bench/dicom_route.py
