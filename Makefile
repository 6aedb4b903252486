# The two commands a newcomer runs: `make run` and `make test`.
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.allele-installed
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: run test test-fast lint docs bench check-criteria env sysdeps clean

$(STAMP): pyproject.toml setup.py scripts/bootstrap.sh src/allele/bench/instruments/_callgrind.c
	VENV=$(VENV) bash scripts/bootstrap.sh
	touch $(STAMP)

env: $(STAMP)

sysdeps:
	bash scripts/sysdeps.sh

## make run: the main job on its embedded defaults - a quick matrix benchmark of every component
## (evolution, Kraken, the agent on the bundled SmolLM2 model) into .allele/results.db, then an
## HTML report. With uncommitted changes it is an interleaved A/B session of the working tree
## against HEAD (both versions in the same rounds); otherwise a plain run compared with the
## previous run through the run-level model (docs/comparison.md).
run: $(STAMP)
	$(VENV)/bin/allele bench ab benchmarks/seed-matrix.yaml --preset quick --base HEAD --run-if-clean --fail-on never --brief --report .allele/report.html

## make test: the whole suite, slow end-to-end tests included, on three xdist workers (a file's
## tests stay on one worker; on 2 cores, two workers left the CPUs idle 15% of the time while tests
## waited on processes, servers and sockets); then the tests marked `serial` (timing assertions
## that a test running beside them would disturb), alone
PYTEST_PAR := -n 3 --dist loadfile
test: $(STAMP) sysdeps
	$(PY) -m pytest $(PYTEST_PAR) -m "not serial"
	$(PY) -m pytest -m serial

## make test-fast: everything but the slow end-to-end tests
test-fast: $(STAMP)
	$(PY) -m pytest $(PYTEST_PAR) -m "not slow"

## make lint: ruff, mypy (strict), the layer and cycle contracts (import-linter) and the size
## limits (600 lines a module, 80 a function)
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy src/allele
	$(VENV)/bin/lint-imports
	$(PY) scripts/check_sizes.py src/allele

## make docs: the documentation site, built offline and strictly into site/ (reference pages
## generated from the code first)
docs: $(STAMP)
	$(PY) scripts/gen_docs.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

BENCHMARKS := evolution_speed kraken_speed kraken_accuracy overhead runner_overhead store_speed \
              mlflow_overhead anomaly_speed anomaly_accuracy forecast_accuracy dashboard_speed \
              changepoint_speed

## make bench: the project's own performance and accuracy benchmarks, one after the other
bench: $(STAMP)
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(PY) benchmarks/$$b.py || exit 1; done

## make check-criteria: the seed's success criteria (observation overhead, storage and retrieval)
## measured in one invocation, PASS/FAIL against our goals with the seed's thresholds beside
check-criteria: $(STAMP)
	$(PY) benchmarks/check_criteria.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
