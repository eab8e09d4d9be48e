#!/usr/bin/env bash
# The stand-in's entrypoint: what the official postgres image's docker-entrypoint.sh does that
# the compose file relies on (see README.md beside this folder).
set -euo pipefail

if [ "${1:0:1}" = "-" ]; then
  set -- postgres "$@"
fi

if [ "$1" = "postgres" ] && [ "$(id -u)" = "0" ]; then
  mkdir -p "${PGDATA}"
  chown postgres:postgres "${PGDATA}"
  chmod 700 "${PGDATA}"
  exec gosu postgres "$0" "$@"
fi

if [ "$1" = "postgres" ] && [ ! -s "${PGDATA}/PG_VERSION" ]; then
  : "${POSTGRES_USER:=postgres}"
  : "${POSTGRES_DB:=${POSTGRES_USER}}"
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    echo "       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser." >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD}" > "${pwfile}"
  initdb --username="${POSTGRES_USER}" --pwfile="${pwfile}" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 -D "${PGDATA}" >/dev/null
  rm -f "${pwfile}"
  {
    echo
    echo "host all all all scram-sha-256"
  } >> "${PGDATA}/pg_hba.conf"
  echo "listen_addresses = '*'" >> "${PGDATA}/postgresql.auto.conf"
  # A server on the socket only, for the first database and the init scripts.
  pg_ctl -D "${PGDATA}" -o "-c listen_addresses=''" -w start >/dev/null
  export PGUSER="${POSTGRES_USER}" PGPASSWORD="${POSTGRES_PASSWORD}"
  if [ "${POSTGRES_DB}" != "postgres" ]; then
    psql -v ON_ERROR_STOP=1 --dbname postgres -q \
      -c "CREATE DATABASE \"${POSTGRES_DB}\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; . "$f" ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --dbname "${POSTGRES_DB}" -f "$f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "${PGDATA}" -m fast -w stop >/dev/null
  unset PGPASSWORD
  echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
