# One command to set up and run the demo, one to set up and run the tests.
#   make demo    a small cluster, bots, and the monitor (or a text view)
#   make test    lint, type-check and every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup setup-gui system-deps test demo lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The package installed as a user gets it (not editable), so tests run what
# `pip install .` ships, twistd dropins included.
setup: $(BIN)/python
	$(BIN)/python -m pip install -q '.[postgres,redis,test]'
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"

setup-gui: setup
	$(BIN)/python -m pip install -q '.[gui,postgres,redis,test]'

system-deps:
	bash scripts/system-deps.sh

# lint-imports checks the layer rules (pyproject.toml).
lint: setup
	$(BIN)/ruff check mmo plugins gui tests twisted benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: setup
	$(BIN)/mypy

test: system-deps setup-gui lint typecheck
	$(BIN)/pytest

demo: setup-gui
	$(BIN)/python -P -m mmo.demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache mmo-data
