# bnlab: `make run` starts the embedded service; `make test` runs lint, type checks and the tests.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
# One stamp per install, so that `make test` after `make run` still adds the dev tools: the service needs
# only the worker extra, the tests also the dev extra (which implies the service's install).
SERVICE_STAMP := $(VENV)/.installed-service
DEV_STAMP := $(VENV)/.installed-dev
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -e
CHROMIUM := /usr/bin/chromium

.PHONY: install chromium run migrate lint format typecheck test test-fast fuzz screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The Python client (`import bnlab`) is a distribution of its own in clients/python; the CLI is built on it.
$(SERVICE_STAMP): pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) ./clients/python
	$(PIP_INSTALL) '.[worker]'
	touch $@

$(DEV_STAMP): pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) './clients/python[pandas]'
	$(PIP_INSTALL) '.[worker,dev]'
	touch $@ $(SERVICE_STAMP)

install: $(DEV_STAMP)

# The browser tests drive Debian's Chromium (no browser download): installed here when it is missing and
# this user may install packages (root, or sudo without a password); otherwise one line says how, and the
# browser tests skip (with CI=true they fail).
chromium:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then as_root=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root="sudo -n"; \
	else as_root="none"; fi; \
	if [ "$$as_root" != none ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's chromium for the browser tests (about 120 MB)"; \
	  $$as_root apt-get update -q && \
	  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium && exit 0; \
	fi; \
	echo "Chromium is missing at $(CHROMIUM): install it with 'sudo apt-get install -y chromium' (the browser tests skip without it; with CI=true they fail)"

migrate: $(SERVICE_STAMP)
	$(BIN)/alembic upgrade head

run: $(SERVICE_STAMP)
	$(BIN)/python -m api.embedded --port $(PORT)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

test: lint typecheck chromium
	$(BIN)/python -m pytest -m "not fuzz"

test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser and not fuzz"

# 500 generated requests per operation and 500 generated sequences of linked calls against PostgreSQL,
# looking for any 5xx (about 7 minutes on two cores, so not part of `make test`).
fuzz: $(DEV_STAMP)
	CI=true $(BIN)/python -m pytest -m fuzz

# Refreshes the README's dashboard pictures: the browser tests save their screenshots there.
screenshots: $(DEV_STAMP) chromium
	BNLAB_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser -m browser -q

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
