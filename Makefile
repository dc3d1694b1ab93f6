# winfleet — every install step lives here, nothing is done by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STATE ?= .state

.PHONY: install bytecode test lint image run sim bench bench-sim bench-floor bench-onboard bench-fleet bench-reconcile clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Bytecode for winfleet's own modules, as the image has (deploy/Dockerfile): the workflow
# sandbox imports workflow modules afresh for every run, and where PYTHONDONTWRITEBYTECODE is
# set nothing else writes it, so each run would compile them from source again.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q activities workflows worker sim bench

test: bytecode
	$(BIN)/pytest -q -n 3 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint deploy/Dockerfile

# The worker image (deploy/Dockerfile; needs docker with buildx), with the SIMULATED sample
# payload unless PAYLOAD names a real one (one directory per version, deploy/README.md).
IMAGE ?= winfleet-worker:dev
PAYLOAD ?= $(STATE)/image-payload
image: $(STAMP)
	test -d $(PAYLOAD) || $(BIN)/python -c 'import sys; from sim.payload import build_sample_payloads as b; b(sys.argv[1])' $(PAYLOAD)
	docker buildx build --load -f deploy/Dockerfile --build-context payload=$(PAYLOAD) -t $(IMAGE) .

run: bytecode
	$(BIN)/python -m sim.demo --state-dir $(STATE) $(RUN_ARGS)

sim: $(STAMP)
	$(BIN)/python -m sim up --state-dir $(STATE)/sim

bench-sim: bytecode
	$(BIN)/python -m sim.bench

bench-floor: bytecode
	$(BIN)/python -m bench.floor

bench-onboard: bytecode
	$(BIN)/python -m bench.onboard

bench-fleet: bytecode
	$(BIN)/python -m bench.fleet

bench-reconcile: bytecode
	$(BIN)/python -m bench.reconcile

bench: bench-sim bench-floor bench-onboard bench-fleet bench-reconcile

clean:
	rm -rf $(VENV) $(STATE) .pytest_cache .mypy_cache .ruff_cache
