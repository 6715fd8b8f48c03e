# vcs-acme: `make demo` and `make test` set up everything they need on Debian 12.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := .cache/.system-installed
TOOLS_STAMP := .cache/tools/.installed

.PHONY: demo test lint format tools bench bench-idle clean

$(SYSTEM_STAMP): tests/tools/install-system.sh
	tests/tools/install-system.sh
	mkdir -p .cache && touch $@

$(STAMP): pyproject.toml $(SYSTEM_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): tests/tools/install-tools.sh
	tests/tools/install-tools.sh
	touch $@

demo: $(STAMP) $(TOOLS_STAMP)
	PYTHONPATH=tests $(BIN)/python -m support.demo

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint $(TOOLS_STAMP)
	$(BIN)/pytest

bench: $(STAMP) $(TOOLS_STAMP)
	PYTHONPATH=tests $(BIN)/python -m bench.renew_vs_certbot

bench-idle: $(STAMP) $(TOOLS_STAMP)
	PYTHONPATH=tests $(BIN)/python -m bench.daemon_idle

clean:
	rm -rf $(VENV) .cache state .mypy_cache .ruff_cache .pytest_cache
