# OnePipe: `make run` opens the dashboard on the shipped models, `make test` runs every check.
# Both set up .venv first when it is missing or the requirements changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8866

.PHONY: install run test test-fast lint format chromium benchmarks clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

run: install
	$(BIN)/voila notebooks/app.ipynb --port=$(PORT)

# Debian's Chromium for the browser tests (never a downloaded browser build).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing: install Debian's package (sudo apt-get install chromium); browser tests will be skipped"; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install chromium lint
	$(BIN)/python -m pytest

# Everything but the slow tests (training, browser, Binder), for quick local runs.
test-fast: install lint
	$(BIN)/python -m pytest -m "not slow"

benchmarks: install
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/training.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
