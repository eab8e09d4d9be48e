"""The throwaway PostgreSQL server of the tests and the benchmarks: pytest-postgresql's
executor (``initdb``, ``pg_ctl start -w``, stop, removal of the data directory) on the
installed binaries, and its janitor for the databases.

The plugin's own process fixture (``factories.postgresql_proc``) cannot serve here: CI runs
as root and PostgreSQL refuses root (``pg_ctl: cannot be run as root``); the plugin has no
option to run it as another user, and even with a ``pg_ctl`` that drops to ``postgres`` the
fixture keeps its data directory under pytest's base temp directory, which pytest makes
mode 0700 for root alone (``initdb: could not access directory ...: Permission denied``).
So as root the server's directory is a temp directory the ``postgres`` user owns (Debian's
package creates that user) and ``pg_ctl`` is a two-line script that runs it as that user.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import port_for
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor

# A server whose data may be lost: no commit waits for the disk (the executor's own ``-F``
# already turns fsync off), and it listens where the tests connect, on IPv4 loopback only.
SERVER_OPTIONS = "-c synchronous_commit=off -c full_page_writes=off -c listen_addresses=127.0.0.1"
# The OS user that runs the server when the tests run as root.
SERVER_OS_USER = "postgres"
# Where the data directory goes when this memory-backed directory exists: a session creates
# and drops hundreds of databases of ~1,000 small files each; on this machine's disk
# creating one took ~3 times as long and removing 300 left behind took 100 s (0.5 s here).
MEMORY_DIR = Path("/dev/shm")


def installed_pg_ctl() -> str:
    """``pg_ctl`` beside ``pg_config --bindir``, else the newest of Debian's server packages
    (``pg_config`` may come from libpq-dev alone, without the server)."""
    try:
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if os.access(Path(bindir) / "pg_ctl", os.X_OK):
            return str(Path(bindir) / "pg_ctl")
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major_version)
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run scripts/ensure-postgres.sh")
    return found[-1]


def _major_version(path: str) -> int:
    return int(Path(path).parts[-3])


@dataclass(frozen=True)
class PgServer:
    """A running server: URLs and fresh databases on it."""

    executor: PostgreSQLExecutor

    @property
    def port(self) -> int:
        return self.executor.port

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.executor.user}@{self.executor.host}:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database ``name`` (one of that name is dropped first), empty or a copy of
        ``template``; returns its SQLAlchemy URL."""
        janitor = DatabaseJanitor(
            user=self.executor.user,
            host=self.executor.host,
            port=self.port,
            dbname=name,
            template_dbname=template,
        )
        janitor.drop()
        janitor.init()
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drops ``name`` (ending its sessions first), if it exists."""
        DatabaseJanitor(
            user=self.executor.user, host=self.executor.host, port=self.port, dbname=name
        ).drop()


@contextmanager
def postgres_server() -> Iterator[PgServer]:
    """Starts a server on a free port (a new data directory, in memory when it can be),
    stops and removes it after."""
    in_memory = MEMORY_DIR.is_dir() and os.access(MEMORY_DIR, os.W_OK | os.X_OK)
    root = Path(tempfile.mkdtemp(prefix="picsweb-pg-", dir=MEMORY_DIR if in_memory else None))
    executable = installed_pg_ctl()
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_OS_USER, SERVER_OS_USER)
        wrapper = root / "pg_ctl-as-postgres"
        wrapper.write_text(
            f'#!/bin/sh\nexec runuser -u {SERVER_OS_USER} -- {shlex.quote(executable)} "$@"\n'
        )
        wrapper.chmod(0o755)
        executable = str(wrapper)
    executor = PostgreSQLExecutor(
        executable=executable,
        host="127.0.0.1",
        port=port_for.get_port(None),
        datadir=str(root / "data"),
        unixsocketdir=str(root),
        logfile=str(root / "postgresql.log"),
        startparams="-w",
        dbname="tests",
        postgres_options=SERVER_OPTIONS,
    )
    try:
        try:
            executor.start()
        except Exception as exc:
            log = Path(executor.logfile)
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"PostgreSQL did not start ({exc}); its log ends:\n{tail}") from exc
        yield PgServer(executor)
    finally:
        if executor.running():
            executor.stop()
        executor.clean_directory()
        shutil.rmtree(root, ignore_errors=True)
