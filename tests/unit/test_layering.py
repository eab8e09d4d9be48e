"""The package is layered: each floor imports its own floor or lower ones, never a higher one.

Bottom to top:
- storage: frames <-> SQL and engines (``storage.sqlframes``, ``storage.engines``: no
  project knowledge), then the table definitions and their queries
  (``storage.picsweb_tables``, ``storage.project_tables.*``), then the set-based PICSWeb
  writes (``storage.picsweb_writes``);
- ``onefile``: OneFile's names, its JSON rows parsed to frames, UK dates;
- ``rules``: the sync rules, pure pandas (tests/unit/test_layout.py keeps SQL and Airflow
  out of them);
- ``run``: a run's machinery (context, window, settings, locks, freshness, call budget,
  dry run, summary, note, alerts);
- ``stages``: the DAG's task bodies (extract, merge, load, push, start/finish);
- ``preflight`` and ``drift``: the read-only commands (the checks before a first run, the
  drift report on demand), on top; the preflight never through a stage.

So a write goes down through tables to frames, and a rule never reaches storage. Imports
are read from the source (AST), function-level and ``TYPE_CHECKING`` ones included, so
nothing is imported to check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import imports_in, module_name, modules_of

INCLUDE = Path(__file__).resolve().parents[2] / "include"
PACKAGE = "picsweb_sync"
# First-party packages outside the layer map: always the top (they know the project).
FIRST_PARTY = (PACKAGE, "sync_demo", "onefile", "onefile_simulator")

LAYERS: dict[str, int] = {
    "picsweb_sync.storage": 0,
    "picsweb_sync.storage.sqlframes": 0,
    "picsweb_sync.storage.engines": 0,
    "picsweb_sync.storage.picsweb_tables": 1,
    "picsweb_sync.storage.project_tables": 1,
    "picsweb_sync.storage.picsweb_writes": 2,
    "picsweb_sync.onefile": 3,
    "picsweb_sync.rules": 4,
    "onefile": 5,  # the Airflow hook (plugins/onefile): I/O at the edge, for run and stages
    "picsweb_sync.run": 6,
    "picsweb_sync.stages": 7,
    "picsweb_sync.preflight": 8,
    "picsweb_sync.drift": 8,  # the drift report on demand: read-only, like the preflight
}
TOP = max(LAYERS.values()) + 1
NAMES = {
    0: "frames/engines",
    1: "tables",
    2: "PICSWeb writes",
    3: "OneFile",
    4: "rules",
    5: "OneFile hook",
    6: "run machinery",
    7: "stages",
    8: "read-only commands",
    TOP: "outside the sync",
}


def layer_of(module: str) -> int | None:
    """The layer of a module (by its longest listed prefix), ``TOP`` for any other
    first-party module, ``None`` for third-party ones."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return TOP if parts[0] in FIRST_PARTY else None


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file; ``from X import name`` counts as
    ``X.name`` when that is a module of ``root/picsweb_sync``, else as ``X``."""
    return imports_in(path, root, set(modules_of(root, PACKAGE)))


def violations(root: Path) -> list[str]:
    """Every import of a higher layer by a lower one, under ``root/picsweb_sync``."""
    found = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        own = layer_of(module_name(path, root))
        for line, target in imported_modules(path, root):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                where = f"{path.relative_to(root)}:{line}"
                found.append(f"{where} ({NAMES[own]}) imports {target} ({NAMES[theirs]})")
    return found


def test_no_lower_layer_imports_a_higher_one():
    assert violations(INCLUDE) == []


def test_every_listed_module_exists():
    for module in LAYERS:
        root = INCLUDE if module.startswith(PACKAGE) else INCLUDE.parent / "plugins"
        path = root.joinpath(*module.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), module


def test_every_module_of_the_sync_has_a_floor():
    """A module added beside the floors (``picsweb_sync/new.py``) would sit outside the map
    and pass every check: each one must be under a listed floor."""
    unplaced = [
        name for name in modules_of(INCLUDE, PACKAGE) if name != PACKAGE and layer_of(name) == TOP
    ]
    assert unplaced == []


def test_the_layers_are_in_use():
    """The stages do reach the data layer through the writes and the tables, the run
    machinery and the rules (a map that matched nothing would pass every check above)."""
    load = imported_modules(INCLUDE / PACKAGE / "stages" / "load.py", INCLUDE)
    assert {layer_of(target) for _, target in load} >= {1, 2, 6}
    merge = imported_modules(INCLUDE / PACKAGE / "stages" / "merge.py", INCLUDE)
    assert 4 in {layer_of(target) for _, target in merge}


def test_the_preflight_never_goes_through_a_stage():
    """The preflight counts what a first run would touch with the rules and OneFile's
    names where they live, not by importing a task body (which would run its imports,
    and tie a read-only check to a writing stage)."""
    found = []
    for path in sorted((INCLUDE / PACKAGE / "preflight").rglob("*.py")):
        for line, target in imported_modules(path, INCLUDE):
            if target.startswith(f"{PACKAGE}.stages"):
                found.append(f"{path.relative_to(INCLUDE)}:{line} imports {target}")
    assert found == []


# The checker itself, on a small source tree: (file, source, the violation it must report).
CASES = [
    ("storage/sqlframes.py", "from picsweb_sync.storage import picsweb_tables\n",
     "imports picsweb_sync.storage.picsweb_tables (tables)"),
    ("storage/sqlframes.py", "import picsweb_sync.stages.load\n", "imports picsweb_sync.stages.load (stages)"),
    ("storage/engines.py", "from sync_demo import cli\n", "imports sync_demo (outside the sync)"),
    ("storage/project_tables/outbox.py", "from picsweb_sync.storage.picsweb_writes import apply_updates\n",
     "imports picsweb_sync.storage.picsweb_writes (PICSWeb writes)"),
    ("storage/project_tables/outbox.py", "from ...stages import load\n", "imports picsweb_sync.stages.load (stages)"),
    ("storage/project_tables/__init__.py", "from ...stages.push import x\n", "imports picsweb_sync.stages.push (stages)"),
    ("storage/picsweb_writes.py", "def f():\n    from picsweb_sync.stages import push\n",
     "storage/picsweb_writes.py:2 (PICSWeb writes) imports picsweb_sync.stages.push (stages)"),
    ("storage/picsweb_writes.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from picsweb_sync.run.runtime import RunContext\n",
     "imports picsweb_sync.run.runtime (run machinery)"),
    ("rules/reviews.py", "from picsweb_sync.storage import sqlframes\n", None),
    ("rules/reviews.py", "from picsweb_sync.run.window import plan_run\n", "imports picsweb_sync.run.window (run machinery)"),
    ("onefile/fields.py", "from picsweb_sync.rules import blank\n", "imports picsweb_sync.rules.blank (rules)"),
    ("run/locks.py", "from picsweb_sync.stages import load\n", "imports picsweb_sync.stages.load (stages)"),
    ("stages/load.py", "from picsweb_sync.preflight import cli\n", "imports picsweb_sync.preflight.cli (read-only commands)"),
    ("storage/picsweb_writes.py", "from onefile.hook import OneFileHook\n", "imports onefile.hook (OneFile hook)"),
    ("run/runtime.py", "from onefile.hook import OneFileHook\n", None),
    ("storage/sqlframes.py", "import pandas\nfrom sqlalchemy import select\n", None),
    ("storage/project_tables/outbox.py", "from . import common\nfrom picsweb_sync.storage.sqlframes import plain\n", None),
    ("storage/project_tables/retention.py", "from picsweb_sync.storage.project_tables import outbox\n", None),
    ("storage/picsweb_writes.py", "from picsweb_sync.storage.project_tables.audit_log import audit\n", None),
    ("stages/load.py", "from picsweb_sync.storage import picsweb_writes, sqlframes\n", None),
    ("stages/push.py", "from picsweb_sync.stages import merge\nfrom picsweb_sync.run import locks\n", None),
]  # fmt: skip

TREE = {
    "storage": ("sqlframes", "engines", "picsweb_tables", "picsweb_writes"),
    "storage/project_tables": ("common", "outbox", "audit_log", "retention"),
    "onefile": ("fields",),
    "rules": ("blank", "reviews"),
    "run": ("locks", "window", "runtime"),
    "stages": ("load", "push", "merge"),
    "preflight": ("cli",),
}


@pytest.mark.parametrize(("file", "source", "expected"), CASES)
def test_the_checker_finds_an_upward_import(tmp_path, file, source, expected):
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    for folder, names in TREE.items():
        (package / folder).mkdir(parents=True, exist_ok=True)
        for name in ("__init__", *names):
            (package / folder / f"{name}.py").write_text("")
    (package / file).write_text(source)
    found = violations(tmp_path)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(f"{PACKAGE}/{file}:"), found
        assert expected in found[0], found
