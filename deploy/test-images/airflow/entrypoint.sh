#!/usr/bin/env bash
# The stand-in's /entrypoint: the parts of the official Airflow image's entrypoint that the
# project's compose file relies on (see README.md beside this folder).
set -euo pipefail

# Airflow's sub-commands: handed to `airflow` (e.g. `api-server`, `celery worker`).
AIRFLOW_SUBCOMMANDS=" api-server assets backfill celery cheat-sheet config connections dag-processor dags db jobs kerberos plugins pools providers rotate-fernet-key scheduler standalone tasks triggerer users variables version info fab-db "

CONNECTION_CHECK_MAX_COUNT=${CONNECTION_CHECK_MAX_COUNT:=20}
CONNECTION_CHECK_SLEEP_TIME=${CONNECTION_CHECK_SLEEP_TIME:=3}

# Waits until host:port of a URL accepts a TCP connection (what the official image's
# connection checks amount to for a networked database or broker).
wait_for_url() {
  local what="$1" url="$2"
  [ -n "${url}" ] || return 0
  local count=0
  while ! python - "${url}" <<'PY' 2>/dev/null
import socket, sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
if not u.hostname:
    sys.exit(0)  # sqlite and the like: nothing to wait for
default = {"redis": 6379, "amqp": 5672, "pyamqp": 5672}.get(u.scheme.split("+")[0], 5432)
socket.create_connection((u.hostname, u.port or default), 3).close()
PY
  do
    count=$((count + 1))
    if [ "${count}" -ge "${CONNECTION_CHECK_MAX_COUNT}" ]; then
      echo "ERROR! Maximum number of retries (${CONNECTION_CHECK_MAX_COUNT}) reached waiting for the ${what}" >&2
      exit 1
    fi
    echo "Waiting for the ${what} ... ${count}/${CONNECTION_CHECK_MAX_COUNT}" >&2
    sleep "${CONNECTION_CHECK_SLEEP_TIME}"
  done
}

first="${1:-}"
command_name="${first}"
[ "${first}" = "airflow" ] && command_name="${2:-}"

if [ "${CONNECTION_CHECK_MAX_COUNT}" -gt 0 ]; then
  wait_for_url "metadata database" "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-}"
  if [[ "${command_name}" =~ ^(scheduler|celery)$ ]] && [[ "${AIRFLOW__CORE__EXECUTOR:-}" == *CeleryExecutor* ]]; then
    wait_for_url "Celery broker" "${AIRFLOW__CELERY__BROKER_URL:-}"
  fi
fi

if [ "$#" -eq 0 ]; then
  exec airflow --help
fi
case "${first}" in
  bash) shift; exec /bin/bash "$@" ;;
  python) shift; exec python "$@" ;;
  airflow) shift; exec airflow "$@" ;;
esac
if [[ "${AIRFLOW_SUBCOMMANDS}" == *" ${first} "* ]]; then
  exec airflow "$@"
fi
if command -v "${first}" >/dev/null 2>&1; then
  exec "$@"
fi
exec airflow "$@"
