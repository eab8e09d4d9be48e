"""Reading a source tree's imports without importing it (AST), for the tests that hold
the layout (tests/unit/test_layout.py) and the layering (tests/unit/test_layering.py)."""

from __future__ import annotations

import ast
from pathlib import Path

_IMPORT_CALLS = {"import_module", "__import__"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (its ``__init__`` and subpackages included) by name."""
    folder = root.joinpath(*package.split("."))
    return {module_name(path, root): path for path in sorted(folder.rglob("*.py"))}


def imports_in(path: Path, root: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every import in the file. ``from X import name`` is ``X.name`` when
    that is a module in ``known``, else ``X``; relative imports are made absolute."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else base))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in _IMPORT_CALLS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found
