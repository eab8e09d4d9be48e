"""What the sync's rooms may import (issue 11).

- Nothing in ``picsweb_sync`` imports ``onefile_simulator`` (nor the demo, ``sync_demo``,
  which drives it): a deployment that ships the sync ships neither the simulator nor its
  data generator.
- Nothing in ``picsweb_sync.rules`` imports SQLAlchemy or Airflow, by itself or through the
  ``picsweb_sync`` modules it imports: the rules are pandas, DataFrames in and change sets
  out; reading their inputs and storing their decisions is ``merge_stage``'s.

Each is checked twice. From the source (AST): every import statement, function-level and
``TYPE_CHECKING`` ones included, and ``importlib.import_module`` / ``__import__`` of a literal
name, so nothing needs importing to be checked. And in a fresh interpreter that imports the
modules and reads ``sys.modules``, which also sees what third-party code imports on the
package's behalf. The source checker is itself tested on small source trees below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

from tests.support.imports import imports_in, modules_of

REPO = Path(__file__).resolve().parents[2]
INCLUDE = REPO / "include"
SYNC = "picsweb_sync"
MERGE = "picsweb_sync.rules"
NOT_IN_THE_SYNC = frozenset({"onefile_simulator", "sync_demo"})
NOT_IN_THE_RULES = frozenset({"sqlalchemy", "airflow"})


def _parents(module: str) -> list[str]:
    """The packages Python imports before ``module`` (``a``, ``a.b`` for ``a.b.c``)."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def forbidden_imports(
    root: Path, package: str, forbidden: frozenset[str], *, within: str = SYNC
) -> list[str]:
    """Every import of a ``forbidden`` top-level package by a module of ``package`` or by a
    module of ``within`` that one imports (transitively, parent packages included), each said
    with the chain that reaches it."""
    known = modules_of(root, within)
    start = modules_of(root, package)
    chains = {name: name for name in start}
    for name in start:  # importing a package's module runs the packages above it first
        for parent in _parents(name):
            chains.setdefault(parent, f"{name} -> {parent}")
    queue = deque(name for name in chains if name in known)
    found = []
    while queue:
        module = queue.popleft()
        path = known[module]
        for line, target in imports_in(path, root, set(known)):
            if target.split(".")[0] in forbidden:
                where = f"{path.relative_to(root)}:{line}"
                found.append(f"{where} imports {target} ({chains[module]})")
            for reached in (*_parents(target), target):
                if reached in known and reached not in chains:
                    chains[reached] = f"{chains[module]} -> {reached}"
                    queue.append(reached)
    return found


# ----- importing in a fresh interpreter -----------------------------------------------------
_IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, sys
imported = []
for package in sys.argv[1:]:
    imported.append(importlib.import_module(package).__name__)
    for info in pkgutil.walk_packages(sys.modules[package].__path__, package + "."):
        if info.name.rpartition(".")[2] != "__main__":  # that one runs a command
            imported.append(importlib.import_module(info.name).__name__)
print(json.dumps({"imported": imported, "loaded": sorted(sys.modules)}))
"""


def import_in_fresh_interpreter(*packages: str) -> tuple[set[str], set[str]]:
    """(the modules of ``packages`` imported, every top-level package then in sys.modules)."""
    path = os.pathsep.join([str(INCLUDE), str(REPO / "plugins")])
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERY_MODULE, *packages],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return set(result["imported"]), {name.split(".")[0] for name in result["loaded"]}


def _runnable(modules: dict[str, Path]) -> set[str]:
    return {name for name in modules if name.rpartition(".")[2] != "__main__"}


# ----- the checks ---------------------------------------------------------------------------
def test_the_sync_imports_neither_the_simulator_nor_the_demo():
    assert forbidden_imports(INCLUDE, SYNC, NOT_IN_THE_SYNC) == []


def test_importing_every_module_of_the_sync_loads_no_simulator():
    imported, loaded = import_in_fresh_interpreter(SYNC)
    assert imported == _runnable(modules_of(INCLUDE, SYNC))  # every module was imported
    assert "picsweb_sync" in loaded and "sqlalchemy" in loaded
    assert loaded & NOT_IN_THE_SYNC == set()


def test_the_rules_import_neither_sqlalchemy_nor_airflow():
    assert forbidden_imports(INCLUDE, MERGE, NOT_IN_THE_RULES) == []


def test_importing_the_rules_loads_neither_sqlalchemy_nor_airflow():
    imported, loaded = import_in_fresh_interpreter(MERGE)
    assert imported == _runnable(modules_of(INCLUDE, MERGE))
    assert {"qualifications", "reviews"} <= {name.rpartition(".")[2] for name in imported}
    assert "pandas" in loaded
    assert loaded & NOT_IN_THE_RULES == set()


def test_the_rules_do_reach_other_modules_of_the_sync():
    """The transitive walk has something to walk: the rules use the UK dates and the OneFile
    names (a walk that followed nothing would pass the checks above)."""
    known = modules_of(INCLUDE, SYNC)
    reached = {
        target
        for path in modules_of(INCLUDE, MERGE).values()
        for _, target in imports_in(path, INCLUDE, set(known))
    }
    assert {"picsweb_sync.onefile.ukdates", "picsweb_sync.onefile.names"} <= reached


# ----- the source checker, on small trees: (check, files, what it must report) -------------
TREE = {
    "picsweb_sync/__init__.py": "",
    "picsweb_sync/run/window.py": "import datetime\n",
    "picsweb_sync/db.py": "import sqlalchemy as sa\n",
    "picsweb_sync/onefile/ukdates.py": "import pandas as pd\n",
    "picsweb_sync/rules/__init__.py": "",
    "picsweb_sync/rules/blank.py": "import pandas as pd\n",
    "picsweb_sync/rules/rules.py": "import pandas as pd\n",
}
SIM, RULES = (SYNC, NOT_IN_THE_SYNC), (MERGE, NOT_IN_THE_RULES)
CASES = [
    (SIM, {"picsweb_sync/run/window.py": "import onefile_simulator\n"},
     "picsweb_sync/run/window.py:1 imports onefile_simulator"),
    (SIM, {"picsweb_sync/rules/rules.py": "from onefile_simulator.generator import x\n"},
     "picsweb_sync/rules/rules.py:1 imports onefile_simulator.generator"),
    (SIM, {"picsweb_sync/db.py": "def f():\n    import onefile_simulator.server\n"},
     "picsweb_sync/db.py:2 imports onefile_simulator.server"),
    (SIM, {"picsweb_sync/run/window.py": "import importlib\nimportlib.import_module('onefile_simulator')\n"},
     "picsweb_sync/run/window.py:2 imports onefile_simulator"),
    (SIM, {"picsweb_sync/__init__.py": "from sync_demo import cli\n"},
     "picsweb_sync/__init__.py:1 imports sync_demo"),
    (SIM, {"picsweb_sync/run/window.py": "from onefile.hook import OneFileHook\nimport onefile_simulatorish\n"},
     None),
    (RULES, {"picsweb_sync/rules/rules.py": "import sqlalchemy as sa\n"},
     "picsweb_sync/rules/rules.py:1 imports sqlalchemy (picsweb_sync.rules.rules)"),
    (RULES, {"picsweb_sync/rules/blank.py": "from airflow.sdk import task\n"},
     "picsweb_sync/rules/blank.py:1 imports airflow.sdk"),
    (RULES, {"picsweb_sync/rules/rules.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlalchemy import Engine\n"},
     "picsweb_sync/rules/rules.py:3 imports sqlalchemy"),
    (RULES, {"picsweb_sync/rules/rules.py": "from picsweb_sync import db\n"},
     "picsweb_sync/db.py:1 imports sqlalchemy (picsweb_sync.rules.rules -> picsweb_sync.db)"),
    (RULES, {"picsweb_sync/rules/rules.py": "from ..db import x\n"},
     "picsweb_sync/db.py:1 imports sqlalchemy (picsweb_sync.rules.rules -> picsweb_sync.db)"),
    (RULES, {"picsweb_sync/rules/rules.py": "from picsweb_sync.onefile.ukdates import x\n",
             "picsweb_sync/onefile/ukdates.py": "from picsweb_sync.run.window import y\n",
             "picsweb_sync/run/window.py": "def f():\n    from airflow.sdk import Variable\n"},
     "picsweb_sync/run/window.py:2 imports airflow.sdk (picsweb_sync.rules.rules -> "
     "picsweb_sync.onefile.ukdates -> picsweb_sync.run.window)"),
    (RULES, {"picsweb_sync/__init__.py": "import sqlalchemy\n"},  # run by every import of it
     "picsweb_sync/__init__.py:1 imports sqlalchemy (picsweb_sync.rules -> picsweb_sync)"),
    (RULES, {"picsweb_sync/rules/rules.py": "from . import blank\nfrom .. import ukdates\nimport pandas\n"},
     None),
    (RULES, {"picsweb_sync/run/window.py": "import sqlalchemy\n"}, None),  # never reached from merge
]  # fmt: skip


@pytest.mark.parametrize(("check", "files", "expected"), CASES)
def test_the_source_checker_finds_a_forbidden_import(tmp_path, check, files, expected):
    for name, source in {**TREE, **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    package, forbidden = check
    found = forbidden_imports(tmp_path, package, forbidden)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found
