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
# Bytecode, compiled once here: where PYTHONDONTWRITEBYTECODE is set (this machine, CI)
# Python never writes it, so every process (each airflow command and component, each test
# session, each dag.test() task) compiled Airflow and pandas from source again: 13-17 s
# only to import Airflow. compileall writes it whatever that variable says.
.venv/bin/python -m compileall -q -j 0 "$site" >/dev/null ||
  echo "install.sh: some files did not compile to bytecode (they compile when imported)" >&2
