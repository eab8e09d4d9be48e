"""The house's shape (issue 21): a package a reader maps onto a run, rooms a reader holds.

- ``picsweb_sync`` holds role folders only, no loose modules: the task bodies
  (``stages``), the pure rules (``rules``), storage (``storage``), OneFile's names and
  fields (``onefile``), the run's machinery (``run``) and the read-only checks
  (``preflight``). A module added at the top, beside the folders, fails here: it belongs
  to one of them.
- No module of the sync, the OneFile hook or the sync page is much over 400 lines: past
  that, a file holds more than one concern and a reader cannot keep it in mind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYNC = REPO / "include" / "picsweb_sync"
ROOMS = (SYNC, REPO / "plugins" / "onefile", REPO / "plugins" / "sync_page")
FOLDERS = {"stages", "rules", "storage", "onefile", "run", "preflight", "drift"}
MOST_LINES = 420  # "about 400": a docstring's worth of slack, not a second concern


def too_big(roots: tuple[Path, ...], most: int) -> list[str]:
    """Every Python module under ``roots`` with more than ``most`` lines, with its count."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > most:
                found.append(f"{path.relative_to(root.parent)}: {lines} lines")
    return found


def loose_in(package: Path) -> tuple[list[str], set[str]]:
    """The package's top: modules other than ``__init__.py``, and its sub-packages."""
    modules = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py")
    folders = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    return modules, folders


def test_no_room_of_the_sync_the_hook_or_the_page_is_over_about_400_lines():
    assert too_big(ROOMS, MOST_LINES) == []


def test_the_sync_is_role_folders_only():
    modules, folders = loose_in(SYNC)
    assert modules == []
    assert folders == FOLDERS


def test_each_role_folder_says_what_it_holds():
    """Each folder's ``__init__`` has a docstring: the tree draws the run only if a reader
    can read what each part is for."""
    import ast

    for folder in sorted(FOLDERS):
        source = (SYNC / folder / "__init__.py").read_text(encoding="utf-8")
        assert ast.get_docstring(ast.parse(source)), folder


# The checkers themselves, on small trees.
@pytest.mark.parametrize(
    ("files", "most", "expected"),
    [
        ({"a.py": 3, "b.py": 5}, 4, ["pkg/b.py: 5 lines"]),
        ({"a.py": 4, "sub/c.py": 4}, 4, []),
        ({"sub/c.py": 9}, 4, ["pkg/sub/c.py: 9 lines"]),
    ],
)
def test_the_size_check_names_each_big_room(tmp_path, files, most, expected):
    root = tmp_path / "pkg"
    for name, count in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n" * count)
    assert too_big((root,), most) == expected


def test_the_folder_check_sees_a_loose_module(tmp_path):
    package = tmp_path / "pkg"
    (package / "stages").mkdir(parents=True)
    (package / "stages" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "loose.py").write_text("")
    (package / "data").mkdir()  # not a package: no __init__.py
    assert loose_in(package) == (["loose.py"], {"stages"})
