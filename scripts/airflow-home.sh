#!/usr/bin/env bash
# Prepares the project's own Airflow home (git-ignored): SQLite metadata DB, examples off.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.airflow}"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
mkdir -p "$AIRFLOW_HOME"
if [ ! -f "$AIRFLOW_HOME/.migrated" ]; then
  .venv/bin/airflow db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 || { tail -40 "$AIRFLOW_HOME/migrate.log"; exit 1; }
  touch "$AIRFLOW_HOME/.migrated"
fi
# The tasks that call OneFile share one slot, so the run as a whole respects the API's rate limit.
.venv/bin/airflow pools set onefile_api 1 "OneFile API rate limit: tasks calling OneFile take turns" >/dev/null
