"""What text every database the sync writes can store: the rule "a text is storable".

OneFile sends JSON, and JSON text may hold code points that no column of ours can take:

- ``U+0000`` (NUL, ``"Ann\\u0000e"``): PostgreSQL's ``text`` refuses it (``0x00`` is not
  allowed in UTF-8 text there), pymssql sends SQL Server its statements as C strings,
  which end at the first NUL, and SQLite keeps it but its SQL sees the text end there
  (``length()`` of ``Ann`` NUL ``e`` is 3);
- a lone surrogate, ``U+D800`` to ``U+DFFF`` (``"\\ud83d"``, a name cut in the middle of an
  emoji): half of a UTF-16 pair, not a Unicode character, so it has no UTF-8 form; SQLite
  and PostgreSQL's drivers raise ``UnicodeEncodeError``, and so does pymssql's UTF-8.

Every other code point is stored as sent: other control characters, ``U+FFFF``, characters
beyond the BMP (a whole emoji, which JSON spells as a valid pair ``"\\ud83d\\ude00"`` and
Python decodes to one code point), empty and whitespace-only text, text of any length (a
column's size is a separate check). tests/data/test_storable_staging.py proves the rule
against SQLite and PostgreSQL; SQL Server's ``NVARCHAR`` (UTF-16) holds every other code
point too (reasoned, not tested: no SQL Server here).

Where such text arrives, the row it is in is a reject whose reason names the character and
where it is (:func:`text_problem`); the reject itself is always storable, since its reason
quotes values as ASCII JSON and its ``raw`` is the row as ASCII JSON (``\\u0000``,
``\\ud83d``: ``json.loads`` gives back the exact row). :func:`storable` is the last guard for
a text a reject must keep whatever it holds: each unstorable code point written as its
``\\uXXXX`` escape, the rest unchanged.

Plain functions of strings (and pandas Series of them), no database: the parsers
(:mod:`picsweb_sync.onefile.fields`) and the rejects table
(:mod:`picsweb_sync.storage.project_tables.rejects`) both apply this one rule.
"""

from __future__ import annotations

import re

import pandas as pd

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""The code points no database of the sync can store: NUL and every surrogate (in a Python
string a surrogate is always a lone one: a valid pair is decoded to one code point)."""


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (the first unstorable code point, its 1-based position
    in characters, and what refuses it), or ``None`` when every database can store it."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    char, position = found.group(), found.start() + 1
    if char == "\x00":
        return (
            f"U+0000 (NUL) at character {position}, which PostgreSQL text cannot store "
            "and pymssql cannot send to SQL Server"
        )
    half = "high" if char < "\udc00" else "low"
    return (
        f"U+{ord(char):04X} at character {position} is a lone {half} surrogate (half of a "
        "UTF-16 pair, e.g. a character cut in two): not Unicode text, no database can "
        "store it"
    )


def is_storable(text: str) -> bool:
    """True when every database of the sync can store ``text`` as it is."""
    return UNSTORABLE.search(text) is None


def text_problems(values: pd.Series) -> pd.Series:
    """:func:`text_problem` of each string of ``values`` (a ``string`` Series with NA for
    the values that are not text or are storable); one scan of all the text first, so a
    clean extract costs one regular-expression search."""
    problems = pd.Series(pd.NA, index=values.index, dtype="string")
    is_text = values.map(type, na_action="ignore").eq(str).fillna(False).astype(bool)
    texts = values[is_text]
    if texts.empty or UNSTORABLE.search("".join(texts.tolist())) is None:
        return problems
    problems[is_text] = texts.map(text_problem).astype("string")
    return problems


def _escape(found: re.Match) -> str:
    return f"\\u{ord(found.group()):04x}"


def storable(text: str) -> str:
    """``text`` with each unstorable code point written as its ``\\uXXXX`` escape (JSON's
    spelling), everything else unchanged: storable text stays exactly as it was."""
    return UNSTORABLE.sub(_escape, text)


def storable_texts(values: pd.Series) -> pd.Series:
    """:func:`storable` of each string of ``values``; anything else (NA, numbers) as it is."""
    problems = text_problems(values)
    if problems.isna().all():
        return values
    escaped = values.astype(object).copy()
    bad = problems.notna()
    escaped[bad] = values[bad].map(storable)
    return escaped.astype(values.dtype)
