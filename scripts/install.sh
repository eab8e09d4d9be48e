#!/usr/bin/env bash
# Creates .venv when missing and installs the project's pins (uv when it can, pip otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/pip install --quiet "uv==0.13.9" || true
fi
if [ -x .venv/bin/uv ]; then
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements-test.txt -c constraints.txt
else
  .venv/bin/pip install --quiet -r requirements-test.txt -c constraints.txt
fi
# The project's own packages (include/, plugins/) on the venv's path, as Airflow's workers see them.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$PWD/include" "$PWD/plugins" > "$site/picsweb_onefile_sync.pth"
