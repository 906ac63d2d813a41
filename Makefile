# Two entry points: `make demo` and `make test`. Both set up whatever is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NATIVE_SRC := $(wildcard native/src/*.c native/include/*.h native/*.h native/*.py)
SOLIDITY := $(wildcard chains/contracts/*.sol) chains/contracts/compile.js
DEMO_DIR ?= .devnet

.PHONY: setup demo test lint pytest clean

setup: $(VENV)/.stamp node_modules/.stamp chains/contracts/build/.stamp

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(VENV)/.stamp: pyproject.toml $(NATIVE_SRC)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

chains/contracts/build/.stamp: $(SOLIDITY) node_modules/.stamp
	node chains/contracts/compile.js
	touch $@

demo: setup
	$(BIN)/relayer devnet --dir $(DEMO_DIR)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy relayer chains native

pytest: setup
	$(BIN)/python -m pytest -q

test: lint pytest

clean:
	rm -rf $(VENV) node_modules chains/contracts/build build *.egg-info native/_native.* $(DEMO_DIR)
