# One entry point for setting up and checking the project.
#   make demo  - set up everything and run the one-minute local canary demo
#   make test  - set up everything and run lint, types and the whole test suite
PYTHON ?= $(shell command -v python3.12 || ls -d /root/.pyenv/versions/3.12.*/bin/python3 2>/dev/null | tail -n1 || echo python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup system-deps demo test lint unit

$(BIN)/rollout: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/rollout system-deps

# Debian packages the sandbox and the tests run for real.
system-deps:
	@bash scripts/install-system-deps.sh

demo: setup
	$(BIN)/rollout demo

lint: $(BIN)/rollout
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy rollout

test: setup lint
	$(BIN)/pytest -q --durations=10
