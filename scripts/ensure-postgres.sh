#!/usr/bin/env bash
# The tests (and make bench) start their own throwaway PostgreSQL server from the installed
# binaries with pytest-postgresql's executor (tests/support/postgres.py), which drives
# pg_ctl. Installs Debian's postgresql package when the server binaries are missing.
set -euo pipefail
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ -n "$bindir" ] && [ -x "$bindir/pg_ctl" ] && [ -x "$bindir/postgres" ]; then
  exit 0
fi
if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  exit 0
fi
echo "PostgreSQL server binaries missing: installing Debian's postgresql package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
