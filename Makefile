# bnlab: `make run` starts the embedded service; `make test` runs lint, type checks and the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run migrate lint format typecheck test test-fast screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[worker,dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/alembic upgrade head

run: install
	$(BIN)/python -m api.embedded

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

# Refreshes the README's dashboard pictures: the browser tests save their screenshots there.
screenshots: install
	BNLAB_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser -m browser -q

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
