"""What ``python -m sync_demo --serve`` tells one's own Airflow, without printing a secret.

The two connections (the simulator's customer token, the demo database's password) are
written to files of their own, mode 0600, named as docs/own-airflow.md's ``$SECRETS`` names
them (``onefile_api``, ``picsweb_db``). The printout names every Airflow process with the
lines to start it: ``export AIRFLOW_CONN_…="$(cat <file>)"`` (the secret is read when the line
runs, never shown) and its command, so the terminal, a shell history or a pasted transcript
never holds a password.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

# Which process needs which connection (docs/own-airflow.md, section 4).
PROCESSES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("api-server", ("picsweb_db",), "airflow api-server"),
    ("scheduler", (), "airflow scheduler"),
    ("dag-processor", ("picsweb_db",), "airflow dag-processor"),
    ("worker", ("onefile_api", "picsweb_db"), "airflow celery worker"),
)
NOT_NEEDED = ("triggerer", "not needed by the sync (it defers nothing); no connection")


def write_connection_files(secrets_dir: Path, env: Mapping[str, str]) -> dict[str, Path]:
    """Each ``AIRFLOW_CONN_<ID>`` of ``env`` as the file ``secrets_dir/<id>`` (0600, in a
    0700 directory, written through a file created private so no other user can read it
    even for a moment); returns the files by connection id."""
    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    written = {}
    for key, value in env.items():
        conn_id = key.removeprefix("AIRFLOW_CONN_").lower()
        path = secrets_dir.resolve() / conn_id
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        path.chmod(0o600)
        written[conn_id] = path
    return written


def export_line(conn_id: str, path: Path) -> str:
    """``export AIRFLOW_CONN_<ID>="$(cat <path>)"``: the connection, read when run."""
    return f'export AIRFLOW_CONN_{conn_id.upper()}="$(cat {shlex.quote(str(path))})"'


def process_lines(files: Mapping[str, Path]) -> list[str]:
    """Every Airflow process, each with the lines to start it (after docs/own-airflow.md's
    shared settings)."""
    lines = [
        "Airflow's processes, each started after the settings every process shares "
        "(docs/own-airflow.md) with these lines:",
    ]
    for name, conn_ids, command in PROCESSES:
        lines.append(f"  {name}:")
        lines += [f"    {export_line(conn_id, files[conn_id])}" for conn_id in conn_ids]
        lines.append(f"    {command}")
    lines.append(f"  {NOT_NEEDED[0]}: {NOT_NEEDED[1]}")
    lines.append(
        "  (with the LocalExecutor there are no workers: give the scheduler the worker's "
        "export lines; a typed `airflow dags test` needs them too)"
    )
    return lines
