"""The deployment brought up for real (tests/deploy/test_compose_up.py, `make test-compose`).

A Docker engine of the project's own (scripts/docker-engine.sh), the stand-in base images
(scripts/docker-test-images.sh, deploy/test-images), the project image built from the
Dockerfile, and docker-compose.yaml brought up as docs/deployment.md says, with the
``demo-postgres`` profile: PICSWeb on a PostgreSQL container, the OneFile simulator in a
container, two Celery workers.

The build context is a copy of the working tree's files (git's tracked and untracked ones,
without what .gitignore ignores: what a fresh clone holds, with the edits not committed yet),
so that other work in the tree during the run cannot change what is tested, with the host's
CA bundle as build-ca.pem (pip's certificate check, see the Dockerfile) and a .env that
deploy/new_env.py wrote there before the build (so the test proves .dockerignore keeps it
out of the image).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.deploy.scripts import REPO, load

ENGINE_ROOT = Path(os.environ.get("PICSWEB_DOCKER_ROOT", "/var/cache/picsweb-sync-docker"))
DOCKER_HOST = f"unix://{ENGINE_ROOT}/docker.sock"
PROJECT = "picsweb-compose-test"
IMAGE = "picsweb-onefile-sync-airflow:3.3.2"  # AIRFLOW_IMAGE_NAME's default
PROFILE = "demo-postgres"
WORKERS = 2
DAG_ID = "onefile_picsweb_sync"
# The test stack's own settings (.env; production keeps the compose file's defaults): a
# killed worker's task is failed after 90 s without a heartbeat and retried 15-30 s later
# (Airflow's 300 s each would make the test wait 10 minutes), and every review create waits
# 2 s in the simulator, so that a push is caught in the middle of its creates.
TEST_SETTINGS = {
    "AIRFLOW_TASK_HEARTBEAT_TIMEOUT": "90",
    "AIRFLOW_TASK_RETRY_DELAY": "15",
    "ONEFILE_SIMULATOR_REVIEW_DELAY": "2",
}


def log(message: str) -> None:
    print(f"[compose-up {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) where the plugin is installed, else Debian's v1."""
    env = {**os.environ, "DOCKER_HOST": DOCKER_HOST}
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, env=env
    )
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError(
        "neither `docker compose` nor docker-compose: run deploy/ensure-docker-compose.sh"
    )


def staged_context(target: Path) -> None:
    """The working tree's files (a fresh clone's, with uncommitted edits) copied to target."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = REPO / os.fsdecode(name)
        if not source.is_file():  # deleted in the tree, not yet in git
            continue
        dest = target / os.fsdecode(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


def env_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match[1]] = match[2]
    return values


class Stack:
    """The compose project: commands run as the data team runs them, in its folder."""

    def __init__(self, folder: Path, compose: list[str]):
        self.folder = folder
        self.compose = compose
        self.api_port = free_port()
        self.env: dict[str, str] = {}
        self.secrets: dict[str, str] = {}

    # ----- running commands ---------------------------------------------------------------
    def environ(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": DOCKER_HOST, "COMPOSE_PROJECT_NAME": PROJECT}

    def run(
        self, argv: Sequence[str], *, timeout: float = 600, check: bool = True, quiet=False
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            list(argv),
            cwd=self.folder,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if not quiet:
            log(f"{' '.join(argv)[:160]} -> {done.returncode}")
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}\n"
                f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
            )
        return done

    def dc(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """docker compose ARGS (with the demo-postgres profile, as the project is run)."""
        return self.run([*self.compose, "--profile", PROFILE, *args], **kwargs)

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(["docker", *args], **kwargs)

    def shell(self, command: str, **kwargs) -> subprocess.CompletedProcess:
        """A documented command line: `docker compose ...` run with this machine's compose."""
        assert command.startswith("docker compose "), command
        rest = command[len("docker compose ") :]
        line = " ".join([*self.compose, "--profile", PROFILE]) + " " + rest
        # exec without a terminal (-T), as a script would
        line = re.sub(r"\b(exec|run)\b (?!-T)", r"\1 -T ", line, count=1)
        return self.run(["bash", "-c", line], **kwargs)

    def sql(self, query: str, *, database: str = "airflow") -> list[list[str]]:
        """Rows of a query on the metadata database (or, database='picsweb', PICSWeb)."""
        if database == "picsweb":
            argv = ["exec", "-T", "picsweb-postgres", "psql", "-U", "postgres", "-d", "picsweb"]
        else:
            argv = ["exec", "-T", "postgres", "psql", "-U", "airflow", "-d", database]
        done = self.dc(*argv, "-At", "-F", "\t", "-c", query, quiet=True, timeout=120)
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    # ----- state --------------------------------------------------------------------------
    def containers(self) -> list[dict]:
        ids = self.dc("ps", "-a", "-q", quiet=True).stdout.split()
        if not ids:
            return []
        return json.loads(self.docker("inspect", *ids, quiet=True).stdout)

    def wait_healthy(self, timeout: float = 900) -> list[dict]:
        """Until every long-running container is healthy and every one-shot exited 0."""
        deadline = time.monotonic() + timeout
        while True:
            pending, failed = [], []
            containers = self.containers()
            for c in containers:
                name = c["Name"].lstrip("/")
                state = c["State"]
                restart = c["HostConfig"]["RestartPolicy"]["Name"]
                if restart in ("", "no"):
                    if state["Status"] == "exited" and state["ExitCode"] != 0:
                        failed.append(f"{name} exited {state['ExitCode']}")
                    elif state["Status"] != "exited":
                        pending.append(f"{name} {state['Status']}")
                elif state.get("Health", {}).get("Status") != "healthy":
                    pending.append(
                        f"{name} {state.get('Health', {}).get('Status', state['Status'])}"
                    )
            if failed:
                raise AssertionError(f"one-shot services failed: {failed}")
            if not pending:
                return containers
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy after {timeout:.0f} s: {pending}")
            time.sleep(5)

    def run_state(self, run_id: str) -> str | None:
        rows = self.sql(f"SELECT state FROM dag_run WHERE run_id = '{run_id}'")
        return rows[0][0] if rows else None

    def wait_run(self, run_id: str, timeout: float = 1200) -> None:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.run_state(run_id)
            if state == "success":
                log(f"run {run_id}: success")
                return
            if state == "failed":
                break
            time.sleep(5)
        tasks = self.sql(
            "SELECT task_id, state, try_number, hostname FROM task_instance "
            f"WHERE run_id = '{run_id}' ORDER BY start_date NULLS LAST"
        )
        raise AssertionError(f"run {run_id} is {state}; its tasks: {tasks}")

    def wait_task_state(self, run_id: str, task_id: str, states: set[str], timeout=900) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.sql(
                "SELECT state FROM task_instance "
                f"WHERE run_id = '{run_id}' AND task_id = '{task_id}'"
            )
            if rows and rows[0][0] in states:
                return rows[0][0]
            time.sleep(2)
        raise AssertionError(f"{task_id} of {run_id} never reached {states}")

    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def token(self, username: str, password: str) -> str:
        import requests

        answer = requests.post(
            f"{self.base_url()}/auth/token",
            json={"username": username, "password": password},
            timeout=120,
        )
        assert answer.status_code in (200, 201), answer.text[:300]
        return answer.json()["access_token"]


@contextmanager
def engine_lock() -> Iterator[None]:
    """One `make test-compose` at a time on this machine (one engine, fixed ports)."""
    ENGINE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(ENGINE_ROOT / "test-compose.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT: raised so that the clean-up below runs before the process ends."""


def _stop(signum, frame):
    raise Stopped(signal.Signals(signum).name)


@contextmanager
def running_stack() -> Iterator[Stack]:
    """Engine, images, project image, the stack up and healthy; everything it started stops
    afterwards (containers, networks, volumes, the engine), also on failure, and when the
    process is told to stop (SIGTERM, or SIGINT even where a background job ignores it)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)

    with engine_lock(), tempfile.TemporaryDirectory(prefix="picsweb-compose-") as tmp:
        engine_env = {**os.environ, "PICSWEB_DOCKER_ROOT": str(ENGINE_ROOT)}
        subprocess.run(
            [str(REPO / "scripts/docker-engine.sh"), "start"], check=True, env=engine_env
        )
        log("engine: done")
        folder = Path(tmp) / "picsweb-onefile-sync"
        folder.mkdir()
        stack = Stack(folder, compose_command())
        try:
            staged_context(folder)
            ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
            if Path(ca).is_file():
                shutil.copy(ca, folder / "build-ca.pem")
            env_text = stack.run(
                ["python3", "deploy/new_env.py", "--picsweb", "postgres"], quiet=True
            ).stdout
            env_text += f"AIRFLOW_API_PORT={stack.api_port}\n"
            env_text += f"ONEFILE_SIMULATOR_HOST_PORT={free_port()}\n"
            env_text += "".join(f"{k}={v}\n" for k, v in TEST_SETTINGS.items())
            (folder / ".env").write_text(env_text)
            (folder / ".env").chmod(0o600)
            stack.env = env_values(env_text)
            generated = load("new_env").GENERATORS
            stack.secrets = {k: v for k, v in stack.env.items() if k in generated and v}

            # Left over from a run that was killed: its containers and volumes go first.
            stack.dc("down", "-v", "--remove-orphans", check=False, timeout=300)
            subprocess.run(
                [str(REPO / "scripts/docker-test-images.sh")],
                check=True,
                env={**engine_env, "DOCKER_HOST": DOCKER_HOST},
            )
            log("stand-in base images: done")

            # `docker compose build`: the same build (context ., the Dockerfile, the compose
            # file's image name), with the host's network: this engine gives containers none.
            stack.docker("build", "--network", "host", "-q", "-t", IMAGE, ".", timeout=1800)
            stack.docker("image", "prune", "-f", quiet=True)
            log("project image: done")

            stack.dc("up", "-d", "--no-build", "--scale", f"airflow-worker={WORKERS}", timeout=1800)
            stack.wait_healthy()
            log("up and healthy: done")
            yield stack
        finally:
            try:
                logs = stack.dc("logs", "--no-color", check=False, quiet=True, timeout=300)
                keep = Path(
                    os.environ.get("PICSWEB_COMPOSE_LOGS", "/var/tmp/picsweb-compose-test.log")
                )
                keep.write_text(logs.stdout + logs.stderr)
                log(f"the services' logs: {keep}")
            except Exception as exc:  # the logs are for reading; never hide the real failure
                log(f"could not save the logs: {exc}")
            stack.dc("down", "-v", "--remove-orphans", check=False, timeout=600)
            subprocess.run([str(REPO / "scripts/docker-engine.sh"), "stop"], env=engine_env)
