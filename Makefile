# The two commands of README.md: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck install postgres

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Start the server on the embedded SQLite database, with the GraphQL playground.
run: install
	$(BIN)/runview server start

# Ruff, mypy, and the whole test suite against PostgreSQL and SQLite, in one worker process
# per core plus one, as many tests wait on subprocesses (every test has databases of its
# own, so workers cannot see each other's data).
test: install postgres lint typecheck
	$(BIN)/pytest -n $(shell echo $$(( $$(nproc) + 1 )))

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

postgres:
	bash .ci/postgres-up
