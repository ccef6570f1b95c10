# carelink: the commands a newcomer needs. Everything sets itself up on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run demo test test-unit lint docs docs-check bench bench-quick chaos chaos-quick screenshots clean lock k8s

help: ## show this help
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# The runtime dependencies come from the hashed lock, as in the image, so tests and CI
# run what production runs; the tools and test dependencies are added on top.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "carelink needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes --only-binary=:all: -r requirements.lock
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install carelink with its tools

run: $(STAMP) ## start broker, PostgreSQL and the four services locally until Ctrl-C
	$(PY) -m services.tools.stack

demo: $(STAMP) ## make run, plus simulated hospital and coordinators with live progress
	$(PY) -m services.tools.stack --demo

test: $(STAMP) ## run the whole test suite (unit, contract, integration, end-to-end)
	$(PY) -m pytest

test-unit: $(STAMP) ## only the tests that need no servers
	$(PY) -m pytest tests/unit tests/contract

lint: $(STAMP) ## ruff and mypy, as strict as CI
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

docs: $(STAMP) ## regenerate the JSON Schemas and the AsyncAPI document from the contracts
	$(PY) -m contracts.docs

docs-check: $(STAMP) ## fail if the committed schemas differ from the code
	$(PY) -m contracts.docs --check

bench: $(STAMP) ## measure throughput, latency, scale and memory; writes docs/bench/result.*
	$(PY) -m services.tools.bench

bench-quick: $(STAMP) ## a short benchmark run; writes docs/bench/quick/ (never the full run's files)
	$(PY) -m services.tools.bench --quick

chaos: $(STAMP) ## fault injection: kills, freezes, restarts; prints a verdict (docs/chaos/)
	$(PY) -m services.tools.chaos

chaos-quick: $(STAMP) ## a short fault-injection run
	$(PY) -m services.tools.chaos --quick

screenshots: $(STAMP) ## refresh the console's and the portal's screenshots in docs/ (runs the browser tests)
	CARELINK_SCREENSHOTS=1 $(PY) -m pytest tests/browser -q

clean: ## remove local data and logs (.local) and root's shared PostgreSQL copy; keeps .venv
	rm -rf .local "$${TMPDIR:-/tmp}/carelink-pg-$$(id -u)"/pginstall-*

lock: $(STAMP) ## refresh requirements.lock (the image's pinned, hashed runtime dependencies)
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" $(LOCK_FLAGS) -o requirements.lock

k8s: $(STAMP) ## regenerate deploy/k8s's KafkaTopics, KafkaUsers and ScaledObjects from the catalogue and registry
	$(PY) -m services.tools.k8s
