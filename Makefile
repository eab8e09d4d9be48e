# Two commands do all the set-up on a fresh machine:
#   make demo   - runs the sync against the OneFile simulator and a SQLite PICSWeb
#   make test   - lint, format check and the whole test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__PARALLELISM := 4
export AIRFLOW__CORE__UNIT_TEST_MODE := False

.PHONY: install demo test lint format airflow-home clean bench

$(STAMP): requirements.txt requirements-test.txt constraints.txt pyproject.toml
	scripts/install.sh
	@touch $(STAMP)

install: $(STAMP)

airflow-home: $(STAMP)
	scripts/airflow-home.sh

demo: airflow-home
	$(PY) -m picsweb_sync.demo

test: $(STAMP)
	scripts/ensure-postgres.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .airflow

# Benchmarks beside their loop baselines (~3 min; BENCH_ARGS=--quick for < 30 s)
bench: $(STAMP)
	$(PY) -m benchmarks.run $(BENCH_ARGS)
