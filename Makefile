# cxstream developer tasks. `make help` lists them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help setup demo test test-unit test-integration fmt lint typecheck check bench bench-smoke kafka-start kafka-stop clean

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: ## install everything the demo and tests need (idempotent)
	@scripts/setup.sh

demo: setup ## broker, two workers, Prometheus, Alertmanager, wallboard, live traffic (DEMO_ARGS="--incident team=billing,channel=email")
	@$(PY) -m streams demo $(DEMO_ARGS)

test: setup ## set up, then run the whole test suite (unit + integration on a real broker)
	@$(PY) -m pytest

test-unit: setup ## domain tests only (no broker)
	@$(PY) -m pytest tests/domain

test-integration: setup ## integration tests on a real broker, Prometheus tools, Alertmanager
	@$(PY) -m pytest -m integration

fmt: ## format the code
	@$(PY) -m ruff format streams tests bench
	@$(PY) -m ruff check --fix streams tests bench

lint: ## ruff
	@$(PY) -m ruff check streams tests bench
	@$(PY) -m ruff format --check streams tests bench

typecheck: ## mypy --strict
	@$(PY) -m mypy

check: lint typecheck test ## everything CI checks

bench: setup ## the benchmark suite (own broker, over an hour): figures vs goals in bench/results/latest.json
	@$(PY) bench/suite.py

bench-smoke: setup ## every benchmark at small scale (a few minutes); fails only if the harness or exactness does
	@$(PY) bench/suite.py --smoke --json bench/results/smoke.json

kafka-start: setup ## a local broker on 127.0.0.1:9092 (state in .cx-run/kafka)
	@deploy/kafka-local/kafka.sh start

kafka-stop: ## stop it
	@deploy/kafka-local/kafka.sh stop

clean: ## remove local state (not the venv or the Kafka jars)
	rm -rf .cx-run cxstream-data .pytest_cache .mypy_cache .ruff_cache .hypothesis
