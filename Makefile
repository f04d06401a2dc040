# Everything a fresh machine needs goes through these targets; the venv lives in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: setup system-deps run devnet test test-py313 test-sim lint typecheck proto proto-check bench clean
N ?= 5

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11 or later is required (set PYTHON=python3.11)")'
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

## test: install everything, check the generated protobuf code, lint, type-check the core and the
## probes, run the whole suite (then the unit tests on Python 3.13 as well). TEST_WORKERS=0
## runs it in one process.
# Two pytest-xdist workers: most network tests wait on protocol timers, not the CPU, so two at
# once take 7 minutes where one at a time took 12 (2026-12-04, this 2-core machine).
TEST_WORKERS ?= 2
test: setup system-deps proto-check lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --durations=15
	@$(MAKE) --no-print-directory test-py313

## test-py313: the unit tests (tests/mesh, tests/probes) on Python 3.13, in .venv313; skipped
## with a warning where no python3.13 is found (an error under CI=true)
PY313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python) $(shell command -v python3.13 2>/dev/null))
VENV313 := .venv313
$(VENV313)/.installed-stamp: pyproject.toml
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/pip install --quiet -e '.[dev]'
	touch $@

test-py313:
	@if [ -z "$(PY313)" ]; then \
	  echo "python3.13 not found: the unit tests did not run on 3.13" >&2; [ -z "$$CI" ]; \
	else \
	  $(MAKE) --no-print-directory $(VENV313)/.installed-stamp && \
	  $(VENV313)/bin/pytest -q -p no:cacheprovider tests/mesh tests/probes; \
	fi

## test-sim: only the network-simulation suite (tests/sim, built on devnet/testing.py)
test-sim: setup
	$(BIN)/pytest tests/sim

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

## proto: regenerate mesh/digest_pb2.py and its .pyi from mesh/digest.proto with the pinned
## protoc of grpcio-tools (the dev extra); commit the result
PROTOC := $(BIN)/python -m grpc_tools.protoc -I.
PROTO_SRC := mesh/digest.proto
PROTO_OUT := mesh/digest_pb2.py mesh/digest_pb2.pyi

proto: setup
	$(PROTOC) --python_out=. --pyi_out=. $(PROTO_SRC)

## proto-check: regenerate into a temp dir and fail if the committed code differs from it
proto-check: setup
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PROTOC) --python_out="$$tmp" --pyi_out="$$tmp" $(PROTO_SRC) && \
	for f in $(PROTO_OUT); do \
	  diff -u "$$f" "$$tmp/$$f" || { echo "$$f is not what protoc makes of $(PROTO_SRC): run make proto" >&2; exit 1; }; \
	done

clean:
	rm -rf $(VENV) $(VENV313) .pytest_cache .mypy_cache .ruff_cache
