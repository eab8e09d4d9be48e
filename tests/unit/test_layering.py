"""The data layer is layered: a write goes down through tables to frames, never back up.

Bottom to top: frames <-> SQL and engines (``sqlframes``, ``engines``: no project
knowledge), the table definitions and their queries (``picsweb_tables``,
``project_tables.*``), the set-based PICSWeb writes (``picsweb_writes``), then everything
else (the stages: extract, merge_stage, load, push, report, dry_run...). A module may
import its own layer or lower ones, never a higher one. Imports are read from the source
(AST), function-level and ``TYPE_CHECKING`` ones included, so nothing is imported to check.
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
    "picsweb_sync.sqlframes": 0,
    "picsweb_sync.engines": 0,
    "picsweb_sync.picsweb_tables": 1,
    "picsweb_sync.project_tables": 1,
    "picsweb_sync.picsweb_writes": 2,
}
TOP = max(LAYERS.values()) + 1
NAMES = {0: "frames/engines", 1: "tables", 2: "PICSWeb writes", TOP: "stages"}


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
        path = INCLUDE.joinpath(*module.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), module


def test_the_layers_are_in_use():
    """The stage modules do reach the data layer through the writes and the tables (a map
    that matched nothing would pass every check above)."""
    load = imported_modules(INCLUDE / PACKAGE / "load.py", INCLUDE)
    assert {layer_of(target) for _, target in load} >= {1, 2}


# The checker itself, on a small source tree: (file, source, the violation it must report).
CASES = [
    ("sqlframes.py", "from picsweb_sync import picsweb_tables\n", "imports picsweb_sync.picsweb_tables (tables)"),
    ("sqlframes.py", "import picsweb_sync.load\n", "imports picsweb_sync.load (stages)"),
    ("engines.py", "from sync_demo import cli\n", "imports sync_demo (stages)"),
    ("project_tables/outbox.py", "from picsweb_sync.picsweb_writes import apply_updates\n",
     "imports picsweb_sync.picsweb_writes (PICSWeb writes)"),
    ("project_tables/outbox.py", "from .. import load\n", "imports picsweb_sync.load (stages)"),
    ("project_tables/__init__.py", "from ..push import x\n", "imports picsweb_sync.push (stages)"),
    ("picsweb_writes.py", "def f():\n    from picsweb_sync import push\n",
     "picsweb_writes.py:2 (PICSWeb writes) imports picsweb_sync.push (stages)"),
    ("picsweb_writes.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from picsweb_sync.runtime import RunContext\n",
     "imports picsweb_sync.runtime (stages)"),
    ("sqlframes.py", "import pandas\nfrom sqlalchemy import select\n", None),
    ("project_tables/outbox.py", "from . import common\nfrom picsweb_sync.sqlframes import plain\n", None),
    ("project_tables/retention.py", "from picsweb_sync.project_tables import outbox\n", None),
    ("picsweb_writes.py", "from picsweb_sync.project_tables.audit_log import audit\n", None),
    ("load.py", "from picsweb_sync import picsweb_writes, sqlframes\n", None),
]  # fmt: skip


@pytest.mark.parametrize(("file", "source", "expected"), CASES)
def test_the_checker_finds_an_upward_import(tmp_path, file, source, expected):
    package = tmp_path / PACKAGE
    for name in ("sqlframes", "engines", "picsweb_tables", "picsweb_writes", "load", "push"):
        package.mkdir(exist_ok=True)
        (package / f"{name}.py").write_text("")
    for name in ("__init__", "common", "outbox", "audit_log", "retention"):
        (package / "project_tables").mkdir(exist_ok=True)
        (package / "project_tables" / f"{name}.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / file).write_text(source)
    found = violations(tmp_path)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(f"{PACKAGE}/{file}:"), found
        assert expected in found[0], found
