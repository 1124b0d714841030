# Every target sets itself up: a virtual environment in .venv with the project installed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench cassettes docs clean services-up services-down

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m cartstatus.demo

test: $(STAMP)
	@scripts/test-services.sh $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Records every connector's cassettes again from its simulator (tests/connectors/cassettes.py).
cassettes: $(STAMP)
	CARTSTATUS_RECORD_CASSETTES=1 $(BIN)/python -m pytest -q tests/connectors -k cassettes \
		--ignore=tests/connectors/test_cassettes.py
	$(BIN)/python -m pytest -q tests/connectors -k cassettes  # replayed, and read for credentials

lint: $(STAMP)
	@scripts/lint.sh $(BIN)

# The command reference (docs/commands.md), from the CLI's own help; a test fails when it is stale.
docs: $(STAMP)
	$(BIN)/python scripts/command_reference.py

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info demo-work .pytest_cache .mypy_cache .ruff_cache
