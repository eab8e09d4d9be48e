#!/usr/bin/env bash
# The tests start their own throwaway PostgreSQL server from the installed binaries.
# Installs Debian's postgresql package when the server binaries are missing.
set -euo pipefail
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ -n "$bindir" ] && [ -x "$bindir/postgres" ] && [ -x "$bindir/initdb" ]; then
  exit 0
fi
if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  exit 0
fi
echo "PostgreSQL server binaries missing: installing Debian's postgresql package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
