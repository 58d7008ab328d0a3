# Two commands for a fresh machine with Python 3.11+: `make run` and `make test`.
# The virtualenv is (re)built only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: venv run test lint typecheck unit proto bench bench-tools bench-core bench-bundle bench-grpc \
        bench-http bench-startup bench-propagation clean

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

# Load generators for the server benchmarks: wrk (HTTP/1.1) and h2load (HTTP/2, for gRPC).
bench-tools:
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
	  { echo "installing wrk and h2load from Debian's packages"; apt-get install -y -q wrk nghttp2-client; }

bench-grpc: venv bench-tools
	$(BIN)/python bench/grpc_decisions.py

bench-http: venv bench-tools
	$(BIN)/python bench/http_decisions.py

bench-startup: venv
	$(BIN)/python bench/startup.py

# Needs PostgreSQL ($PDP_BENCH_DATABASE_URL, else postgres@127.0.0.1:5432); starts 21 processes.
bench-propagation: venv
	$(BIN)/python bench/propagation.py

bench: bench-core bench-bundle bench-grpc bench-http bench-startup

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
