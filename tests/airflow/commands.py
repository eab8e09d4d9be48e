"""Every ``airflow ...`` command the documentation tells the data team to type.

Commands are taken from fenced code blocks (a line ending in ``\\`` continues on the
next) and from inline code spans of README.md and of the DAG's ``doc_md``, each with the
paragraph around it, so a test can run each one and check it does what that text says.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = "…"
# What a reader is to fill in: an ellipsis, or a name in angle brackets (`<logical date>`).
_PLACEHOLDERS = re.compile(r"…|\.\.\.|<[^<>\n]+>")

_FENCE = re.compile(r"^(\s*)(```|~~~)")
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass(frozen=True)
class DocCommand:
    source: str  # "README.md" or "doc_md"
    text: str  # the command as written (continuation lines joined)
    context: str  # the paragraph (or code block) it stands in, for messages and checks

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text, comments=True)

    @property
    def subcommand(self) -> tuple[str, str]:
        """``("tasks", "clear")``, ``("pools", "set")``, ..."""
        argv = self.argv
        return (argv[1], argv[2]) if len(argv) > 2 else (argv[1], "")

    @property
    def has_placeholders(self) -> bool:
        return bool(_PLACEHOLDERS.search(self.text))

    @property
    def placeholders(self) -> list[str]:
        """The placeholders as written, in order: ``…``, ``...`` or ``<logical date>``."""
        return _PLACEHOLDERS.findall(self.text)

    def with_values(self, *values: str) -> str:
        """The command with its placeholders replaced by ``values``, in order."""
        found = self.placeholders
        if len(values) > len(found):
            raise ValueError(f"more values than placeholders in {self.text!r}")
        if len(values) < len(found):
            raise ValueError(f"placeholders left in {self.text!r}: {found[len(values) :]}")
        given = iter(values)
        return _PLACEHOLDERS.sub(lambda _match: next(given), self.text)

    def option(self, *flags: str) -> str | None:
        """The value given to one of ``flags`` (``-e`` / ``--end-date``), if any."""
        argv = self.argv
        for i, arg in enumerate(argv):
            for flag in flags:
                if arg == flag and i + 1 < len(argv):
                    return argv[i + 1]
                if flag.startswith("--") and arg.startswith(flag + "="):
                    return arg.split("=", 1)[1]
        return None

    def __str__(self) -> str:
        return f"{self.source}: {self.text}"


def airflow_commands(markdown: str, source: str) -> list[DocCommand]:
    """Every command starting with ``airflow `` in ``markdown``, in document order."""
    found: list[DocCommand] = []
    blocks = list(_blocks(markdown))
    for index, (block, is_code) in enumerate(blocks):
        if is_code:
            # A code block is explained by the paragraphs just before and after it.
            before = blocks[index - 1] if index > 0 else ("", True)
            after = blocks[index + 1] if index + 1 < len(blocks) else ("", True)
            context = "\n".join(
                [
                    *([] if before[1] else [" ".join(before[0].split())]),
                    block.strip(),
                    *([] if after[1] else [" ".join(after[0].split())]),
                ]
            )
            for line in _logical_lines(block):
                command = line.strip().removeprefix("$ ").strip()
                if command.startswith("airflow "):
                    found.append(DocCommand(source, _strip_comment(command), context))
        else:
            paragraph = " ".join(block.split())
            for match in _INLINE.finditer(block):
                command = match.group(1).strip()
                if command.startswith("airflow "):
                    found.append(DocCommand(source, command, paragraph))
    return found


def readme_commands(readme: Path = REPO / "README.md") -> list[DocCommand]:
    return airflow_commands(readme.read_text(encoding="utf-8"), "README.md")


def own_airflow_commands(page: Path = REPO / "docs" / "own-airflow.md") -> list[DocCommand]:
    """The commands of docs/own-airflow.md a person types once (the pool); its component
    commands and ``db migrate`` are what the tests' Airflow itself runs (see
    tests/airflow/test_own_airflow_doc.py)."""
    found = airflow_commands(page.read_text(encoding="utf-8"), "docs/own-airflow.md")
    return [c for c in found if c.subcommand == ("pools", "set")]


def doc_md_commands(doc_md: str | None = None) -> list[DocCommand]:
    """The commands of the DAG's ``doc_md`` (by default ``DOC_MD`` of the DAG file)."""
    return airflow_commands(dag_doc_md() if doc_md is None else doc_md, "doc_md")


def dag_doc_md(dag_file: Path = REPO / "dags" / "onefile_picsweb_sync.py") -> str:
    """``DOC_MD`` of the DAG file, read without importing Airflow (collection stays fast).

    A ``DOC_MD`` that is not a plain string literal is taken by importing the file.
    """
    tree = ast.parse(dag_file.read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "DOC_MD" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    spec = importlib.util.spec_from_file_location("_dag_for_doc_md", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DOC_MD


def unique(commands: Iterable[DocCommand]) -> list[DocCommand]:
    """The commands without repeats of the same text (the first occurrence is kept)."""
    seen: set[str] = set()
    kept = []
    for command in commands:
        if command.text not in seen:
            seen.add(command.text)
            kept.append(command)
    return kept


def _blocks(markdown: str) -> Iterator[tuple[str, bool]]:
    """Paragraphs (text between blank lines) and fenced code blocks, in order."""
    lines = markdown.splitlines()
    i = 0
    paragraph: list[str] = []
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            if paragraph:
                yield "\n".join(paragraph), False
                paragraph = []
            marker = fence.group(2)
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            yield "\n".join(body), True
        elif not line.strip():
            if paragraph:
                yield "\n".join(paragraph), False
                paragraph = []
        else:
            paragraph.append(line)
        i += 1
    if paragraph:
        yield "\n".join(paragraph), False


def _logical_lines(block: str) -> Iterator[str]:
    pending = ""
    for line in block.splitlines():
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        yield pending + stripped.strip()
        pending = ""
    if pending:
        yield pending.strip()


def _strip_comment(command: str) -> str:
    """``airflow ... # what it does`` -> the command (a ``#`` inside quotes is kept)."""
    quote = ""
    for i, char in enumerate(command):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command
