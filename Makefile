PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
PYTEST_ARGS ?= -n 2
BIN := $(VENV)/bin

.PHONY: run test lint typecheck bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/.installed $@

run: $(BIN)/.installed
	$(BIN)/claimdesk migrate
	$(BIN)/claimdesk demo --once
	$(BIN)/claimdesk serve --host 127.0.0.1 --port $(PORT)

test: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy app
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed-dev
	$(BIN)/mypy app

# Benchmarks (not part of `test`): SQLite, plus PostgreSQL when CLAIMDESK_BENCH_POSTGRES_URL is set.
# BENCH_ARGS passes options through, e.g. `make bench BENCH_ARGS="--quick queue_next"`.
BENCH_ARGS ?=
bench: $(BIN)/.installed-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
