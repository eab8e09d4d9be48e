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

.PHONY: install demo test lint format airflow-home clean bench bench-dag

$(STAMP): requirements.txt requirements-test.txt constraints.txt pyproject.toml scripts/install.sh
	scripts/install.sh
	@touch $(STAMP)

install: $(STAMP)

airflow-home: $(STAMP)
	scripts/airflow-home.sh

demo: airflow-home
	$(PY) -m sync_demo

# Before the first run: does the sync fit this OneFile and this PICSWeb? Read-only (changes
# nothing anywhere); the DAG's connections, from AIRFLOW_CONN_* variables or this project's
# Airflow home. PREFLIGHT_ARGS="--json" for machines (stdout is then only the JSON); exit code 0 ok, 1 blocking, 2 cannot run.
.PHONY: preflight
preflight: $(STAMP)
	@$(PY) -m picsweb_sync.preflight $(PREFLIGHT_ARGS)

# What still differs between OneFile and PICSWeb, and why, for the whole population.
# Read-only like the preflight, with the same connections (AIRFLOW_CONN_* variables or this
# project's Airflow home). DRIFT_ARGS="--json" for machines (stdout is then only the JSON),
# "--csv drift.csv" for every row; exit code 0 nothing unexplained, 1 some, 2 cannot run.
.PHONY: drift
drift: $(STAMP)
	@$(PY) -m picsweb_sync.drift $(DRIFT_ARGS)

# pytest and `make test-compose` run side by side (together as long as pytest, though on 2
# cores each runs slower beside the other): test-compose in the background from the start, its output kept in a log
# file and printed as one block, each line marked [test-compose], when it ends; then the
# target fails if either failed. They share nothing: test-compose has its own Docker engine,
# its containers their own PostgreSQL and networks, its two host ports chosen free. The engine
# is stopped in every case (also on Ctrl-C or a failing pytest). PYTEST_ARGS narrows pytest
# (e.g. PYTEST_ARGS="tests/data/test_window.py"); empty, the default: the whole suite.
PYTEST_ARGS ?=
test: $(STAMP)
	scripts/ensure-postgres.sh
	deploy/ensure-docker-compose.sh
	scripts/ensure-browser.sh
	command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@log="$${TMPDIR:-/tmp}/picsweb-test-compose.$$$$.log"; \
	setsid $(MAKE) --no-print-directory test-compose >"$$log" 2>&1 </dev/null & compose=$$!; \
	echo "make test-compose runs beside pytest (pid $$compose); its output: $$log, shown when it ends"; \
	trap 'kill -TERM -- -$$compose 2>/dev/null; wait $$compose; scripts/docker-engine.sh stop; exit 130' INT TERM; \
	$(VENV)/bin/pytest $(PYTEST_ARGS); pytest_rc=$$?; \
	echo "pytest exited $$pytest_rc; waiting for make test-compose ..."; \
	wait $$compose; compose_rc=$$?; \
	echo "===== make test-compose (ran beside pytest): output ====="; \
	sed 's/^/[test-compose] /' "$$log"; \
	echo "===== make test-compose exited $$compose_rc; pytest exited $$pytest_rc ====="; \
	rm -f "$$log"; scripts/docker-engine.sh stop; \
	[ "$$pytest_rc" = 0 ] && [ "$$compose_rc" = 0 ]

lint: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .airflow

# Benchmarks beside their loop baselines (~3 min; BENCH_ARGS=--quick for < 30 s), then the
# whole DAG beside the database's floor (benchmarks/whole_dag.py: 2,000 and 10,000 learners;
# with --quick in BENCH_ARGS only 2,000)
bench: $(STAMP)
	$(PY) -m benchmarks.run $(BENCH_ARGS)
	$(PY) -m benchmarks.whole_dag $(filter --quick,$(BENCH_ARGS)) $(DAG_ARGS)

# The whole DAG alone: DAG_ARGS="--sizes 2000" (a few minutes), "--sizes 50000" (opt-in, long),
# "--limit 300/60" (OneFile's real limit on both sides); see benchmarks/README.md
bench-dag: $(STAMP)
	$(PY) -m benchmarks.whole_dag $(DAG_ARGS)

# ----- deployment: docker-compose.yaml, Dockerfile (docs/deployment.md) ----------------------
.PHONY: deploy-check-tools deploy-config test-mssql

# Debian's docker-compose, with which tests/deploy validates docker-compose.yaml offline (no
# Docker engine needed); installed when missing, else those tests skip and say why.
deploy-check-tools:
	deploy/ensure-docker-compose.sh

# docker-compose.yaml validated for the default and the demo profile, with generated secrets.
deploy-config: deploy-check-tools
	@env_file=$$(mktemp) && trap 'rm -f "$$env_file"' EXIT && \
	python3 deploy/new_env.py > "$$env_file" && \
	docker-compose --env-file "$$env_file" config -q && \
	docker-compose --env-file "$$env_file" --profile demo config -q && \
	echo "docker-compose.yaml: default and demo profiles valid"

# tests/data and tests/e2e again with their databases on a real SQL Server (tests/mssql), e.g.
# the demo profile's: PICSWEB_TEST_MSSQL_URL=mssql+pymssql://sa:PASSWORD@localhost:1433/master
test-mssql: $(STAMP)
	@if [ -z "$$PICSWEB_TEST_MSSQL_URL" ]; then \
	  echo "PICSWEB_TEST_MSSQL_URL is not set: the SQL Server tests are skipped, e.g."; \
	  echo "  PICSWEB_TEST_MSSQL_URL=mssql+pymssql://sa:PASSWORD@localhost:1433/master make test-mssql"; \
	fi
	$(VENV)/bin/pytest tests/mssql

# docker-compose.yaml and the Dockerfile run for real (docs/deployment.md, "Run for real"):
# an engine of the project's own (scripts/docker-engine.sh, data root kept in
# /var/cache/picsweb-sync-docker), stand-in base images (deploy/test-images), the project image,
# the production services with two workers and the demo-postgres profile, the data team's
# commands; everything it started is stopped afterwards, also on failure.
.PHONY: test-compose
test-compose: $(STAMP)
	deploy/ensure-docker-compose.sh
	PICSWEB_COMPOSE_UP=1 $(VENV)/bin/pytest -s -p no:cacheprovider tests/deploy/test_compose_up.py; \
	  rc=$$?; scripts/docker-engine.sh stop; exit $$rc
