# Two commands: `make run` serves the gateway with the embedded defaults; `make test` runs the suite.
# Each creates and fills the virtual environment itself.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
MESH_VENV := .venv-mesh-sandbox

.PHONY: run test lint typecheck unit browser promtool bench fuzz clean safety-case

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

test: $(VENV)/.test-deps $(MESH_VENV)/.installed browser promtool lint typecheck
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

# Every figure beside its target (issue 18) in one run, about ten minutes on a quiet machine; the
# counts are options (`$(BIN)/python -m bench --help`, BENCH_ARGS). py-spy splits the HL7 v2 CPU per
# message: the benchmark's own tool, not a dependency of the gateway.
BENCH_ARGS ?=
$(VENV)/.bench-deps: $(VENV)/.test-deps
	$(BIN)/pip install --quiet py-spy==0.4.3
	touch $@

bench: $(VENV)/.bench-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

# The long property-based fuzz run (not part of `make test`): FUZZ_EXAMPLES cases per socket property,
# four times as many for the HL7 mapping. Each property prints how many cases it tried.
FUZZ_EXAMPLES ?= 5000
fuzz: $(VENV)/.test-deps
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/trust/test_fuzz.py -q -s -p no:warnings

# The clinical safety case report (docs/safety/safety-case.md) and the hazard log's JSON Schema, made
# again from schemas/safety/hazards.json; the tests fail when either is out of date.
safety-case: $(VENV)/.run-deps
	$(BIN)/python -m gateway.safety.safety_case

clean:
	rm -rf $(VENV) $(MESH_VENV) data .pytest_cache .mypy_cache .ruff_cache

# Store migrations (gateway/store/migrations/README.md). After changing gateway/store/tables.py:
#   make migration m="add audit table"   writes the next revision from the tables
#   make migration-initial               before the first release only: one initial revision, made afresh
.PHONY: migration migration-initial
migration: $(VENV)/.test-deps
	$(if $(m),,$(error say what the revision changes: make migration m="add audit table"))
	$(BIN)/python -m gateway.store.migrations "$(m)"

migration-initial: $(VENV)/.test-deps
	$(BIN)/python -m gateway.store.migrations --initial "initial schema"

# MESH: NHS Digital's mesh-sandbox in its own virtual environment (it pins its own FastAPI), and the
# demo: `make mesh-sandbox` serves it on 127.0.0.1:8700 with the example mailboxes of
# deploy/mesh-sandbox (README, "MESH"). The tests start their own on a free port.
.PHONY: mesh-sandbox mesh-sandbox-venv
mesh-sandbox-venv: $(MESH_VENV)/.installed

$(MESH_VENV)/.installed: deploy/mesh-sandbox/requirements.txt
	$(PYTHON) -m venv $(MESH_VENV)
	$(MESH_VENV)/bin/pip install --quiet -r deploy/mesh-sandbox/requirements.txt
	touch $@

mesh-sandbox: $(MESH_VENV)/.installed
	$(MESH_VENV)/bin/python deploy/mesh-sandbox/serve.py --port 8700 --store-dir data/mesh-sandbox

# The gateway for the MESH walk-through, against `make mesh-sandbox` (README, "MESH").
.PHONY: mesh-demo
mesh-demo: $(VENV)/.run-deps
	$(BIN)/python -m gateway.mesh.demo schemas data/mesh-demo/schemas
	GATEWAY_CONFIG_FILE=deploy/mesh-sandbox/gateway.toml $(BIN)/referral-gateway serve
