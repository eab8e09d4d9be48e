"""A real Airflow in its production shape for the tests: api-server, scheduler with the
CeleryExecutor, dag-processor and two Celery workers on a Redis broker.

Each component runs as its own subprocess in its own process group, with a throwaway
``AIRFLOW_HOME`` and a metadata database on the tests' PostgreSQL server (which is also
Celery's result backend). Redis is a ``redis-server`` of its own on a free port, never the
machine's. The tests drive it the way the data team does: the ``airflow`` CLI (same
environment) and the REST API. ``stop()`` signals each process group, waits for it, and
kills whatever of the components' own process trees is still left.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import requests

from tests.support import own_airflow
from tests.support.airflow_settings import harness_settings, worker_test_args

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")
WORKER_HOSTNAME_ENV = "PICSWEB_TEST_WORKER_HOSTNAME"
# Every wait of these tests allows at least this long: waits detect hangs, not slowness.
HANG_SECONDS = float(os.environ.get("PICSWEB_TEST_HANG_SECONDS", "900"))

# Each component is `airflow <command>` (Airflow's own entry point and argv) run by this
# launcher, which first imports Airflow and the modules the component will need, then waits
# for the metadata DB to be migrated (the marker file), then runs the command. So the slow
# imports overlap the migration, and a component whose pytest process died (a killed
# session) stops its own process group instead of running on.
# argv: marker, preload..., "--", the airflow command's arguments.
LAUNCHER = """
import importlib, os, signal, sys, threading, time
from pathlib import Path

marker = Path(sys.argv[1])
split = sys.argv.index("--")
preload, command = sys.argv[2:split], sys.argv[split + 1 :]
parent = os.getppid()


def watch_parent():
    while os.getppid() == parent:
        time.sleep(2)
    os.killpg(0, signal.SIGTERM)


threading.Thread(target=watch_parent, daemon=True).start()
import airflow.__main__

for module in preload:
    if "=" in module:  # an environment variable the real command sets before importing
        key, value = module.split("=", 1)
        os.environ[key] = value
    else:
        importlib.import_module(module)
deadline = time.monotonic() + 600
while not marker.exists():
    if time.monotonic() > deadline:
        sys.exit("the metadata DB was not migrated in time")
    time.sleep(0.1)
sys.argv = ["airflow", *command]
sys.exit(airflow.__main__.main())
"""

# A program that is not Airflow (redis-server), run as the child of a watchdog that stops
# its process group when the pytest process dies.
WATCHDOG = """
import os, signal, subprocess, sys, time

parent = os.getppid()
child = subprocess.Popen(sys.argv[1:])
while child.poll() is None:
    if os.getppid() != parent:
        os.killpg(0, signal.SIGTERM)
    time.sleep(1)
sys.exit(child.returncode)
"""

# The DAG's tasks import these heavy third-party libraries (never the sync's own code, which
# other people edit while tests run: each task imports that fresh). A task process is forked
# from the process that runs it (a Celery worker's pool process, itself forked from the
# worker; the scheduler's LocalExecutor workers): whatever that has imported a task does
# not import again, which would otherwise cost every task seconds.
TASK_PRELOAD = (
    "numpy",
    "pandas",
    "sqlalchemy",
    "psycopg2",
    "requests",
    "airflow.providers.http.hooks.http",
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.decorators.short_circuit",
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
)
PRELOAD = {
    "scheduler": (
        "airflow.cli.commands.scheduler_command",
        "airflow.jobs.scheduler_job_runner",
    ),
    # airflow.api_fastapi.main marks the process as a server before importing the app.
    "api-server": (
        "airflow.cli.commands.api_server_command",
        "uvicorn",
        "fastapi",
        "_AIRFLOW_PROCESS_CONTEXT=server",
        "airflow.api_fastapi.app",
    ),
    "dag-processor": (
        "airflow.cli.commands.dag_processor_command",
        "airflow.jobs.dag_processor_job_runner",
        "airflow.dag_processing.manager",
    ),
    "worker": (
        *TASK_PRELOAD,
        "celery",
        "kombu",
        "redis",
        "airflow.providers.celery.cli.celery_command",
        "airflow.providers.celery.executors.celery_executor_utils",
    ),
}
EXECUTOR_PRELOAD = {
    "LocalExecutor": ("airflow.executors.local_executor", *TASK_PRELOAD),
    "CeleryExecutor": ("airflow.providers.celery.executors.celery_executor",),
}


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the test's Celery workers: the name each worker was
    started with, so task instances tell which worker ran them (on one machine every
    worker would otherwise report the same host name, as separate containers do not)."""
    return os.environ[WORKER_HOSTNAME_ENV]


@dataclass(frozen=True)
class Component:
    """One long-running Airflow process: ``airflow <argv>`` with ``preload`` imported
    first and ``env`` over the common environment."""

    name: str
    argv: tuple[str, ...]
    preload: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


FINAL_RUN_STATES = {"success", "failed"}
FINAL_TI_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}


class AirflowServerError(AssertionError):
    """Something in the real Airflow did not happen in time; the message has the log tails."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("give the REST API an aware datetime")
    return value.isoformat()


@dataclass
class AirflowServer:
    """The components of one Airflow. ``executor="CeleryExecutor"`` (the production shape)
    adds a Redis broker and ``workers`` Celery workers of ``worker_concurrency`` slots each;
    ``"LocalExecutor"`` runs tasks from the scheduler."""

    home: Path
    metadata_url: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    executor: str = "CeleryExecutor"
    workers: int = 2
    worker_concurrency: int = 2
    port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    startup_seconds: float | None = None
    startup_phases: dict[str, float] = field(default_factory=dict)
    # The simple auth manager's users (name -> role: viewer, user, op or admin).
    # docs/own-airflow.md's users (admin, sync-notes) and the tests' viewer.
    users: Mapping[str, str] = field(
        default_factory=lambda: {"admin": "admin", "sync-notes": "user", "viewer": "viewer"}
    )
    # ``$SECRETS`` of docs/own-airflow.md: the secrets, users' passwords and connections,
    # one file each, outside the home (whose every file the tests search for secrets).
    secrets_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="picsweb-airflow-secrets-"))
    )
    _token: str | None = None
    _env: dict[str, str] | None = None
    _tasks_env: dict[str, str] | None = None
    _components: list[Component] | None = None
    _secrets_ready: bool = False
    _session: requests.Session = field(default_factory=requests.Session)

    # ----- environment -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def celery(self) -> bool:
        return self.executor == "CeleryExecutor"

    @property
    def worker_names(self) -> list[str]:
        """The Celery workers' host names (each task instance's ``hostname``)."""
        return [f"worker-{n}" for n in range(1, self.workers + 1)] if self.celery else []

    @property
    def site(self) -> dict[str, str]:
        """The site values of docs/own-airflow.md (its ``site`` block) for this Airflow."""
        return {
            "SYNC_DIR": str(REPO),
            "AIRFLOW_HOME": str(self.home),
            "SECRETS": str(self.secrets_dir),
            "API_URL": self.base_url,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.port),
            "EXECUTOR": self.executor,
            "BROKER_URL": self.broker_url,
        }

    def _base_env(self) -> dict[str, str]:
        """Nothing inherited from the pytest process's own Airflow settings (its home is
        the ``dag.test()`` one)."""
        return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}

    def step_env(self, *steps: str) -> dict[str, str]:
        """What the blocks ``steps`` of docs/own-airflow.md add to the environment."""
        return own_airflow.run_steps(list(steps), self.site, self._base_env())

    @property
    def env(self) -> dict[str, str]:
        """The environment of a typed ``airflow`` command: docs/own-airflow.md's
        ``settings`` and ``tasks`` blocks (``airflow dags test`` runs tasks itself), then
        the tests' own settings. Components get theirs from ``component_env``."""
        if self._tasks_env is None:
            self._tasks_env = self.step_env("tasks")
        return {**self.component_env, **self._tasks_env}

    @property
    def component_env(self) -> dict[str, str]:
        """What every component starts with before its own block: the page's
        ``settings``, then harness_settings, then ``extra_env`` but its connections (which
        start() writes to the files the page's blocks read)."""
        if self._env is None:
            self._prepare_secrets()
            self._env = {**self._base_env(), **self.step_env("settings")}
        env = {**self._env, **harness_settings(self)}
        env.update({k: v for k, v in self.extra_env.items() if not k.startswith("AIRFLOW_CONN_")})
        return env

    def components(self) -> list[Component]:
        """What ``start()`` starts, each with its command and connections as
        docs/own-airflow.md gives them: Redis and the workers only with the
        CeleryExecutor (with the LocalExecutor the scheduler gets the tasks' block)."""
        if self._components is not None:
            return self._components
        scheduler_steps = ("scheduler",) if self.celery else ("scheduler", "tasks")
        found = [
            Component(
                "api-server",
                tuple(own_airflow.command("api-server")),
                PRELOAD["api-server"],
                self.step_env("api-server"),
            ),
            Component(
                "scheduler",
                tuple(own_airflow.command("scheduler")),
                PRELOAD["scheduler"] + EXECUTOR_PRELOAD[self.executor],
                self.step_env(*scheduler_steps),
            ),
            Component(
                "dag-processor",
                tuple(own_airflow.command("dag-processor")),
                PRELOAD["dag-processor"],
                self.step_env("dag-processor"),
            ),
        ]
        tasks_env = self.step_env("tasks") if self.worker_names else {}
        documented_path = self.component_env.get("PYTHONPATH")
        for name in self.worker_names:
            found.append(
                Component(
                    name,
                    (*own_airflow.command("worker"), *worker_test_args(name, self)),
                    PRELOAD["worker"],
                    {
                        **tasks_env,
                        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
                        WORKER_HOSTNAME_ENV: name,
                        # worker_hostname lives in the repository's tests package.
                        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), documented_path) if p),
                    },
                )
            )
        self._components = found
        return found

    @property
    def component_names(self) -> list[str]:
        return (["redis"] if self.celery else []) + [c.name for c in self.components()]

    @property
    def passwords_file(self) -> Path:
        return self.secrets_dir / "passwords.json"

    def _prepare_secrets(self) -> None:
        """docs/own-airflow.md's ``secrets`` block (the three shared secrets, the page's
        users' passwords), the metadata DB's URL in its file, and a password for each of
        the tests' further users: all before the api-server starts, so it prints none."""
        if self._secrets_ready:
            return
        self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        metadata = self.secrets_dir / "metadata_db"
        metadata.write_text(self.metadata_url + "\n")
        metadata.chmod(0o600)
        self.step_env("secrets")
        known = json.loads(self.passwords_file.read_text())
        for user in self.users:
            known.setdefault(user, secrets.token_urlsafe(18))
        self.passwords_file.write_text(json.dumps(known) + "\n")
        self.passwords_file.chmod(0o600)
        self._secrets_ready = True

    def _write_connections(self) -> None:
        """Each ``AIRFLOW_CONN_*`` of ``extra_env`` as the file docs/own-airflow.md's
        blocks read (``$SECRETS/<conn id>``), and ``airflow_api`` (the sync-notes user's
        login) made by the page's ``note-connection`` block unless given."""
        self._prepare_secrets()
        for key, value in self.extra_env.items():
            if key.startswith("AIRFLOW_CONN_"):
                path = self.secrets_dir / key.removeprefix("AIRFLOW_CONN_").lower()
                path.write_text(value + "\n")
                path.chmod(0o600)
        if "AIRFLOW_CONN_AIRFLOW_API" not in self.extra_env:
            self.step_env("note-connection")
        self._env = self._tasks_env = None
        self._components = None

    def password(self, user: str = "admin") -> str:
        """The password of one of ``users`` (as the api-server reads it); known before
        ``start()``, so a connection of the components' environment can hold it."""
        self._prepare_secrets()
        passwords = json.loads(self.passwords_file.read_text())
        if user not in passwords:
            raise KeyError(f"no user {user!r} in this Airflow (users: {sorted(self.users)})")
        return passwords[user]

    def token(self, user: str = "admin") -> str:
        """A fresh REST API token of ``user`` (``POST /auth/token``)."""
        answer = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": user, "password": self.password(user)},
            timeout=10,
        )
        if answer.status_code not in (200, 201):
            raise AirflowServerError(
                f"POST /auth/token for {user!r} answered {answer.status_code}: {answer.text[:500]}"
            )
        return answer.json()["access_token"]

    def component_log(self, name: str) -> Path:
        return self.home / f"{name}.out"

    # ----- lifecycle -------------------------------------------------------------------
    def start(self, dag_id: str, timeout: float | None = None) -> None:
        """Migrate the metadata DB, start the components and wait until ``dag_id`` is
        parsed, the API answers and every worker answers a ping. On any failure
        everything started is stopped.

        The components start at once and import Airflow while ``airflow db migrate``
        runs; each runs its command only when the migration is done (see LAUNCHER).
        """
        timeout = HANG_SECONDS if timeout is None else max(timeout, HANG_SECONDS)
        began = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        # Every Airflow process writes a default airflow.cfg when there is none: with one in
        # place the processes starting together cannot trip over each other's half-written
        # file. Everything is configured through the environment.
        (self.home / "airflow.cfg").touch()
        self._write_connections()
        marker = self.home / ".migrated"
        try:
            if self.celery:
                self._start_redis()
            for component in self.components():
                self._spawn(
                    component.name,
                    [sys.executable, "-c", LAUNCHER, str(marker), *component.preload, "--"]
                    + list(component.argv),
                    {**self.component_env, **component.env},
                )
            self.cli(*own_airflow.command("migrate"), timeout=timeout)
            marker.touch()
            self.startup_phases["db migrate"] = time.monotonic() - began
            self._wait(lambda: self._dag_ready(dag_id), timeout, f"DAG {dag_id} parsed")
            self.startup_phases["DAG parsed"] = time.monotonic() - began
            if self.celery:
                self._wait(
                    self._workers_ready, timeout, "every Celery worker ready (answering a ping)"
                )
                self.startup_phases["workers ready"] = time.monotonic() - began
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        out = self.component_log(name).open("ab")
        try:
            self.procs[name] = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, signalled as a whole
            )
        finally:
            out.close()

    def _start_redis(self) -> None:
        """A redis-server of the test's own on a free port (never the machine's service,
        which other tests and programs may use), nothing persisted."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise AirflowServerError("redis-server not found: install Debian's redis-server")
        redis_dir = self.home / "redis"
        redis_dir.mkdir(exist_ok=True)
        argv = [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(redis_dir)]
        self._spawn("redis", [sys.executable, "-c", WATCHDOG, *argv], self.env)
        self._wait(self._redis_ready, 20, "redis-server to answer PING")

    def _redis_ready(self) -> bool:
        self.check_alive()
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _workers_ready(self) -> bool:
        self.check_alive()
        return set(self.ping_workers()) >= set(self.worker_names)

    def ping_workers(self, timeout: float = 1.0) -> list[str]:
        """The host names of the Celery workers that answer a ping through the broker."""
        from celery import Celery

        app = Celery(broker=self.broker_url)
        try:
            answers = app.control.ping(timeout=timeout)
        finally:
            app.close()
        return [node.split("@", 1)[-1] for answer in answers for node in answer]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM each component's process group, wait, then SIGKILL what is left of the
        components' own process trees (task processes included). Redis goes last, once
        nothing uses it."""
        procs = sorted(self.procs.items(), key=lambda item: item[0] == "redis")
        trees: list[psutil.Process] = []
        for _name, proc in procs:
            try:
                parent = psutil.Process(proc.pid)
                trees.extend([parent, *parent.children(recursive=True)])
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + timeout
        for group in ([p for n, p in procs if n != "redis"], [p for n, p in procs if n == "redis"]):
            for proc in group:
                # The group, even when its leader is gone: its task processes may not be.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        _gone, alive = psutil.wait_procs(trees, timeout=max(0.1, deadline - time.monotonic()))
        for leftover in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        psutil.wait_procs(alive, timeout=5)
        self.procs.clear()
        self._session.close()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AirflowServerError(
                    f"{name} exited with {proc.returncode}\n{self.log_tails(names=[name])}"
                )

    def log_tails(self, lines: int = 40, names: Iterable[str] = ("scheduler",)) -> str:
        parts = []
        for name in names:
            path = self.component_log(name)
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"--- last {lines} lines of {name} ---\n" + _tail(text, lines))
        return "\n".join(parts)

    # ----- CLI -------------------------------------------------------------------------
    def cli(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002 (subprocess's name)
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """``airflow <args>`` with the components' environment."""
        done = subprocess.run(
            [str(AIRFLOW_BIN), *args],
            env=self.env,
            cwd=self.home,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AirflowServerError(
                f"airflow {shlex.join(args)} exited with {done.returncode}\n"
                f"stdout: {_tail(done.stdout, 30)}\nstderr: {_tail(done.stderr, 30)}"
            )
        return done

    def shell(self, command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """A command line as a person types it (``airflow ...``), run with this Airflow."""
        argv = shlex.split(command)
        if not argv or argv[0] != "airflow":
            raise ValueError(f"not an airflow command: {command!r}")
        return self.cli(*argv[1:], **kwargs)

    # ----- REST API --------------------------------------------------------------------
    def _auth_header(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.token("admin")
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        # A busy api-server (2 cores, the whole suite beside it) has been seen to hold every
        # request for up to ~50 s while it starts a task: wait longer than that, and ask a
        # read once more when even that is not enough.
        kwargs.setdefault("timeout", 90)
        headers = {**self._auth_header(), **kwargs.pop("headers", {})}
        try:
            answer = self._session.request(
                method, f"{self.base_url}{path}", headers=headers, **kwargs
            )
        except requests.ReadTimeout:
            if method.upper() != "GET":
                raise
            answer = self._session.request(
                method, f"{self.base_url}{path}", headers=headers, **kwargs
            )
        if answer.status_code == 401:  # token expired: once more with a new one
            self._token = None
            headers.update(self._auth_header())
            answer = self._session.request(
                method, f"{self.base_url}{path}", headers=headers, **kwargs
            )
        return answer

    def api(self, method: str, path: str, ok: Sequence[int] = (200,), **kwargs: Any) -> Any:
        answer = self.request(method, path, **kwargs)
        if answer.status_code not in ok:
            raise AirflowServerError(
                f"{method} {path} answered {answer.status_code}: {answer.text[:2000]}"
            )
        return answer.json() if answer.content else None

    def _dag_ready(self, dag_id: str) -> bool:
        self.check_alive()
        try:
            answer = self.request("GET", f"/api/v2/dags/{dag_id}", timeout=5)
        except (requests.RequestException, AirflowServerError):  # not up / no token yet
            return False
        if answer.status_code == 200:
            return True
        errors = self.request("GET", "/api/v2/importErrors", timeout=5)
        if errors.status_code == 200 and errors.json().get("total_entries"):
            raise AirflowServerError(f"DAG import errors: {errors.json()}")
        return False

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(
        self,
        dag_id: str,
        logical_date: datetime | None,
        conf: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /dagRuns``: a manual run; returns the new run as the API shows it."""
        body: dict[str, Any] = {
            "logical_date": None if logical_date is None else iso(logical_date),
            "conf": dict(conf or {}),
        }
        if run_id is not None:
            body["dag_run_id"] = run_id
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str, **filters: Any) -> list[dict[str, Any]]:
        params = {"limit": 100, "order_by": "logical_date", **filters}
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 120, states: set[str] = FINAL_RUN_STATES
    ) -> dict[str, Any]:
        """Poll the REST API until the run is in one of ``states``; fail with the
        scheduler's log tail and the run's task states when it does not get there."""
        found: dict[str, Any] = {}

        def done() -> bool:
            self.check_alive()
            try:
                found.update(self.dag_run(dag_id, run_id))
            except requests.RequestException:  # a busy api-server: ask again until timeout
                return False
            return found["state"] in states

        self._wait(
            done,
            timeout,
            f"run {run_id} in {sorted(states)}",
            detail=lambda: f"run: {found.get('state')}; tasks: {self.ti_summary(dag_id, run_id)}",
        )
        return found

    def wait_for_runs(
        self, dag_id: str, run_ids: Iterable[str], timeout: float = 120
    ) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        return {
            run_id: self.wait_for_run(dag_id, run_id, max(1.0, deadline - time.monotonic()))
            for run_id in run_ids
        }

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (mapped ones one row per map index)."""
        answer = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            params={"limit": 1000},
        )
        return sorted(answer["task_instances"], key=lambda t: (t["task_id"], t["map_index"]))

    def task_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], str | None]:
        return {
            (t["task_id"], t["map_index"]): t["state"] for t in self.task_instances(dag_id, run_id)
        }

    def task_instance(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> dict[str, Any]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        if map_index >= 0:
            path += f"/{map_index}"
        return self.api("GET", path)

    def tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """The task's try history (earlier tries and the current one), oldest first."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        answer = self.api("GET", path)
        return sorted(answer["task_instances"], key=lambda t: t["try_number"])

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index=-1
    ) -> Any:
        answer = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index},
        )
        return answer["value"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """The structured log of one try: a list of events (``event``, ``logger``, ...)."""
        answer = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},
        )
        content = answer["content"]
        return [line if isinstance(line, dict) else {"event": str(line)} for line in content]

    # ----- backfills -------------------------------------------------------------------
    def backfills(self, dag_id: str) -> list[dict[str, Any]]:
        answer = self.api("GET", "/api/v2/backfills", params={"dag_id": dag_id, "limit": 100})
        return sorted(answer["backfills"], key=lambda b: b["id"])

    def latest_backfill(self, dag_id: str) -> dict[str, Any] | None:
        found = self.backfills(dag_id)
        return found[-1] if found else None

    def cancel_backfill(self, backfill_id: int) -> None:
        self.api("PUT", f"/api/v2/backfills/{backfill_id}/cancel", ok=(200, 409))

    def backfill_runs(self, backfill_id: int) -> list[dict[str, Any]]:
        """The runs a backfill made or took over (``reprocess-behavior``), from the
        metadata DB: the REST API does not tell which backfill a run belongs to."""
        return self.metadata_rows(
            "SELECT dr.run_id, dr.logical_date, dr.run_type, dr.state"
            " FROM backfill_dag_run bdr JOIN dag_run dr ON dr.id = bdr.dag_run_id"
            " WHERE bdr.backfill_id = :backfill_id ORDER BY dr.logical_date",
            backfill_id=backfill_id,
        )

    def try_labels(
        self, dag_id: str, run_id: str, task_id: str, map_index: int
    ) -> dict[int, str | None]:
        """``rendered_map_index`` as stored for each try (earlier tries live in
        task_instance_history; the REST API's try list leaves the label out)."""
        where = (
            " WHERE dag_id = :dag_id AND run_id = :run_id AND task_id = :task_id"
            " AND map_index = :map_index"
        )
        params = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}
        rows = self.metadata_rows(
            "SELECT try_number, rendered_map_index FROM task_instance_history" + where, **params
        ) + self.metadata_rows(
            "SELECT try_number, rendered_map_index FROM task_instance" + where, **params
        )
        return {row["try_number"]: row["rendered_map_index"] for row in rows}

    def metadata_rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        engine = sa.create_engine(self.metadata_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return [dict(row) for row in conn.execute(sa.text(sql), params).mappings()]
        finally:
            engine.dispose()

    def wait_for_backfill_done(self, dag_id: str, timeout: float = 60) -> None:
        """Until no backfill of the DAG is active (Airflow allows one at a time)."""

        def done() -> bool:
            self.check_alive()
            return all(b["completed_at"] is not None for b in self.backfills(dag_id))

        self._wait(done, timeout, f"the backfills of {dag_id} to complete")

    def clear_task_instances(self, dag_id: str, **body: Any) -> dict[str, Any]:
        body.setdefault("dry_run", False)
        return self.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json=body)

    def ti_summary(self, dag_id: str, run_id: str) -> str:
        try:
            states = self.task_states(dag_id, run_id)
        except Exception as exc:  # the summary is only there to explain a timeout
            return f"(cannot list task instances: {exc})"
        return ", ".join(
            f"{task}{'' if index < 0 else f'[{index}]'}={state}"
            for (task, index), state in states.items()
        )

    # ----- waiting ---------------------------------------------------------------------
    def _wait(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        interval: float = 0.5,
        detail: Callable[[], str] | None = None,
    ) -> None:
        # A wait guards against a hang, never against slowness: whatever the caller expects,
        # it allows at least HANG_SECONDS (a busy 2-core machine may be many times slower
        # than a quiet one). How long things take is for `make bench`, not for a test.
        timeout = max(timeout, HANG_SECONDS)
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return
            if time.monotonic() > deadline:
                extra = f"\n{detail()}" if detail else ""
                raise AirflowServerError(
                    f"timed out after {timeout:.0f} s waiting for {what}{extra}\n"
                    + self.log_tails(
                        names=self.component_names
                        if "ready" in what or "parsed" in what
                        else ("scheduler",)
                    )
                )
            time.sleep(interval)

    def wait_until(
        self, condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.5
    ) -> None:
        self._wait(condition, timeout, what, interval)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
