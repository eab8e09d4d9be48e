"""docs/own-airflow.md, read and run: the settings and commands the tests' Airflow starts
from, so that page cannot drift from what works.

The page's fenced blocks tagged ``own-airflow:<step>`` (```` ```sh own-airflow:settings ````)
are bash. Each is run as written by bash, after the ``site`` block's variables are set to
the test's own values (its Airflow home, free ports, the Redis of the test): the
environment a block leaves is the environment the tests give that step. A block's lines
that start with ``airflow `` are not run by bash: they are the step's commands, which the
harness runs itself (the components under its launcher, ``db migrate`` through its CLI).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "own-airflow.md"
TAG = "own-airflow:"
_OPEN = re.compile(r"^```(\w+)\s+own-airflow:([\w-]+)\s*$")
_ASSIGN = re.compile(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)=")


@dataclass(frozen=True)
class Block:
    """One tagged block: its shell lines (run by bash) and its ``airflow`` commands."""

    step: str
    text: str

    @property
    def commands(self) -> list[list[str]]:
        return [shlex.split(line, comments=True) for line in self._lines() if _is_airflow(line)]

    @property
    def script(self) -> str:
        """The block without its ``airflow`` command lines (what bash runs)."""
        return "\n".join(line for line in self.text.splitlines() if not _is_airflow(line))

    @property
    def assigned(self) -> list[str]:
        """The variable names the block assigns at the start of a line (``site``)."""
        return [m.group(1) for line in self._lines() if (m := _ASSIGN.match(line))]

    def _lines(self) -> list[str]:
        return [line.strip() for line in self.text.splitlines() if line.strip()]


def _is_airflow(line: str) -> bool:
    return line.strip().startswith("airflow ")


def blocks(doc: Path = DOC) -> dict[str, Block]:
    """Every tagged block of the page by step, in the page's order."""
    found: dict[str, Block] = {}
    lines = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opened = _OPEN.match(lines[i].strip())
        i += 1
        if not opened:
            continue
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        step = opened.group(2)
        if step in found:
            raise ValueError(f"{doc.name}: two blocks tagged {TAG}{step}")
        found[step] = Block(step, "\n".join(body))
    return found


def block(step: str) -> Block:
    try:
        return blocks()[step]
    except KeyError:
        raise KeyError(f"{DOC.name} has no block tagged {TAG}{step}") from None


def command(step: str) -> list[str]:
    """The one ``airflow ...`` command of ``step``'s block, as argv (without ``airflow``)."""
    (argv,) = block(step).commands
    return argv[1:]


def run_steps(
    steps: list[str], site: Mapping[str, str], base_env: Mapping[str, str]
) -> dict[str, str]:
    """Run the blocks of ``steps`` in order in one bash, with ``site`` as the site values
    (in place of the ``site`` block) over ``base_env``; returns the variables the blocks
    set or changed. bash stops at the first failing line (``set -eu``) and the error names
    the block."""
    missing = set(block("site").assigned) - set(site)
    if missing:
        raise ValueError(f"site values the page asks for and the tests do not give: {missing}")
    exported = {k: v for k, v in site.items() if k in {"AIRFLOW_HOME"}}
    prelude = "".join(f"{k}={shlex.quote(v)}\n" for k, v in site.items() if k not in exported)
    scripts = "\n".join(f"# --- {TAG}{step}\n{block(step).script}" for step in steps)
    env = {**base_env, **exported}
    # The doc's `python` is the Python Airflow is installed in (here the test's venv).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    dump = f'"{sys.executable}" -c "import json, os; print(json.dumps(dict(os.environ)))"'
    done = subprocess.run(
        ["bash", "-c", f"set -eu\n{prelude}{scripts}\n{dump}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{DOC.name} blocks {steps} failed: {done.stderr[-2000:]}")
    after = json.loads(done.stdout.splitlines()[-1])
    return {
        k: v
        for k, v in after.items()
        if (k not in env or env[k] != v) and k not in {"PWD", "SHLVL", "OLDPWD", "_"}
    } | {k: v for k, v in exported.items()}
