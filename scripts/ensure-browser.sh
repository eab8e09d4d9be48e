#!/usr/bin/env bash
# tests/airflow screenshots the Airflow UI with a headless Chromium (driven by Playwright,
# whose own browser download cannot work here). Installs Debian's chromium when missing;
# without it those screenshot tests skip and say why.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "chromium missing: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
