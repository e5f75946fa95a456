# fn_twilio developer commands. Everything runs in a private virtual environment (.venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: venv lint test demo sandbox bench clean

$(VENV)/.installed: setup.py requirements-test.txt $(wildcard fn_twilio/components/*.py)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e . -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

## Lint: ruff over LINT_PATHS, the whole repository (rules in ruff.toml), mypy over fn_twilio/ and --strict over fn_twilio/lib.
LINT_PATHS ?= .
lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy fn_twilio
	$(VENV)/bin/mypy --strict fn_twilio/lib

## Set up everything, lint, and run the whole test suite: PYTEST_WORKERS processes (pytest-xdist), each
## test file in one of them (its module-scoped sandbox started once); the suite mostly waits on clocks
## and processes, so three workers share two cores well. PYTEST_WORKERS=0 runs it in this process.
PYTEST_WORKERS ?= 3
test: lint
	$(PY) -m pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .sandbox logs

## Run the benchmarks (figures printed, nothing asserted); BENCH_ARGS=--quick for a short run.
bench: venv
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

## The main job on the built-in sandbox: resilient-circuits run with fn_twilio against an emulated
## SOAR and Twilio, a send to three numbers, a reply, Get Responses, and the resulting log.
demo: venv
	$(PY) -m sandbox.soar demo

## Keep the sandbox up with resilient-circuits running; prints the app.config and a prompt to try inputs.
sandbox: venv
	$(PY) -m sandbox.soar --run-app
