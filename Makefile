# Everything a fresh machine needs goes through these targets; the venv lives in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: setup system-deps run devnet test test-sim lint typecheck bench clean
N ?= 5

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## system-deps: Debian packages some tests need (prometheus, chromium, serf); needs root.
## Without them those tests skip locally; under CI=true they fail instead.
system-deps:
	@bash ops/install-system-deps.sh || echo "warning: system packages missing; some tests will skip" >&2

## run: start one health node with its local checks (flags after ARGS=, e.g. ARGS="--health-port 0")
run: setup
	$(BIN)/chorus-health $(ARGS)

## devnet: venv + deps, then a local devnet of N nodes (default 5) with a live cluster table;
## Ctrl-C stops it. From a second terminal: .venv/bin/python -m devnet status|kill|freeze|...
devnet: setup
	$(BIN)/python -m devnet up -n $(N) $(if $(ARGS),-- $(ARGS))

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

## bench: devnet against Serf -> BENCHMARKS.md + BENCHMARKS.png (~50 min; BENCH_ARGS=--quick ~5 min)
bench: $(BENCH_STAMP) system-deps
	@command -v serf >/dev/null || { echo "serf missing: apt-get install -y serf wrk" >&2; exit 2; }
	$(BIN)/python -m devnet.bench $(BENCH_ARGS)

## test: install everything, lint, type-check the core, run the whole suite
test: setup system-deps lint typecheck
	$(BIN)/pytest

## test-sim: only the network-simulation suite (tests/sim, built on devnet/testing.py)
test-sim: setup
	$(BIN)/pytest tests/sim

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
