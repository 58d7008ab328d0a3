# Two commands for a fresh machine with Python 3.11+: `make run` and `make test`.
# The virtualenv is (re)built only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: venv run test lint typecheck unit proto bench-core bench-bundle bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "pdp needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

run: venv
	$(BIN)/pdp run --dev

lint: venv
	$(BIN)/ruff check pdp tests bench

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest

test: lint typecheck unit

proto: venv
	$(BIN)/python -m pdp._protogen

bench-core: venv
	$(BIN)/python bench/core.py

bench-bundle: venv
	$(BIN)/python bench/bundle.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
