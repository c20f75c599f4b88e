# Two commands: `make run` serves the gateway with the embedded defaults; `make test` runs the suite.
# Each creates and fills the virtual environment itself.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit browser promtool bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/referral-gateway serve

test: $(VENV)/.test-deps browser promtool lint typecheck
	$(BIN)/pytest

# ruff, then the import contracts of .importlinter (the layers and each package's "Must not" rules)
lint: $(VENV)/.test-deps
	$(BIN)/ruff check gateway adapters tests bench
	$(BIN)/lint-imports

typecheck: $(VENV)/.test-deps
	$(BIN)/mypy

browser:
	bash scripts/install-browser.sh

# Debian's prometheus package: promtool checks deploy/prometheus/alerts.yml, Prometheus runs it (tests/deploy)
promtool:
	bash scripts/install-promtool.sh

bench: $(VENV)/.test-deps
	$(BIN)/python -m bench

# The long property-based fuzz run (not part of `make test`): FUZZ_EXAMPLES cases per socket property,
# four times as many for the HL7 mapping. Each property prints how many cases it tried.
FUZZ_EXAMPLES ?= 5000
fuzz: $(VENV)/.test-deps
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/trust/test_fuzz.py -q -s -p no:warnings

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

# Store migrations (gateway/store/migrations/README.md). After changing gateway/store/tables.py:
#   make migration m="add audit table"   writes the next revision from the tables
#   make migration-initial               before the first release only: one initial revision, made afresh
.PHONY: migration migration-initial
migration: $(VENV)/.test-deps
	$(if $(m),,$(error say what the revision changes: make migration m="add audit table"))
	$(BIN)/python -m gateway.store.migrations "$(m)"

migration-initial: $(VENV)/.test-deps
	$(BIN)/python -m gateway.store.migrations --initial "initial schema"
