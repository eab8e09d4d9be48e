"""Search paging: reading every row of a OneFile search, page by page, without losing one.

``POST /{entity}/Search/{page}/{size}`` answers one page; :func:`paged_rows` walks the
pages and decides where a search ends, including when OneFile caps the page size below the
one asked for (:class:`PageSizeCapped`) and when its pages contradict each other
(:class:`OneFilePagingError`). :class:`SearchPage` is one page as OneFile answered it, for
the preflight. The calls themselves (limiter, retries, tokens) are the hook's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from onefile.errors import OneFilePagingError


@dataclass(frozen=True)
class SearchPage:
    """One search page as OneFile answered it (:meth:`OneFileHook.search_page`): its rows
    as sent (objects or not), the page number and size asked for, the HTTP status and the
    answer's headers."""

    rows: list[Any]
    page: int
    size: int
    status: int
    headers: dict[str, str]


@dataclass(frozen=True)
class PageSizeCapped:
    """OneFile served fewer rows a page than asked for, and more rows followed: it caps
    the page size at ``cap``. ``advice`` is the warning :meth:`OneFileHook.search` logs."""

    entity: str
    asked: int
    cap: int
    conn_id: str

    @property
    def advice(self) -> str:
        return (
            f"OneFile caps search pages at {self.cap} rows: the {self.entity} search asked "
            f"for pages of {self.asked} and got {self.cap} on page 1, yet page 2 of "
            f"{self.cap} still held rows. Paging by {self.cap} instead (no row lost); set "
            f"page_size to {self.cap} in the extras of the {self.conn_id!r} connection "
            f'({{"page_size": {self.cap}}}, OneFileSettings.page_size) so the searches ask '
            "for what OneFile serves"
        )


def paged_rows(
    entity: str,
    page_size: int,
    conn_id: str,
    fetch: Callable[[str], list[dict[str, Any]]],
    warn: Callable[[PageSizeCapped], None],
) -> Iterator[dict[str, Any]]:
    """Rows of ``POST /{entity}/Search/{page}/{size}``, page 1 on, lazily, each row once.

    ``fetch`` sends one page's path and returns its rows (none for a 204); ``warn`` is
    told when OneFile caps the page size.

    A search ends at an empty page or a 204. A short page (fewer rows than asked for)
    is the last only once the page after it confirms it (contract: Paging [risk]): a
    OneFile that caps the page size below ``page_size`` answers every page short, and
    taking the first for the last would silently drop the rest. So after a short,
    non-empty page the search asks once more (at most one extra call per search):

    - after a short page 1 of ``n`` rows, page 2 **of ``n`` rows**: it starts right
      after the rows read whichever size a capping OneFile counts its offsets by (the
      size asked for or the capped one), since a size of ``n`` is never capped. Empty
      or 204: the end. Rows: OneFile caps pages at ``n`` (:class:`PageSizeCapped` is
      logged as a warning naming the setting to change); they are the search's next
      rows, and the search pages on by ``n``, from page 3, so no row is lost or read
      twice;
    - after a short page ``p > 1`` (pages before it full, so no cap below this size),
      page ``p + 1`` of the same size: empty or 204 is the end; rows there mean the
      pages contradict each other, and :class:`OneFilePagingError` is raised rather
      than return part of the search.

    Rows are not de-duplicated here: the parser keeps one row per ID by its own rule
    (``picsweb_sync.onefile.fields``: the newest by ``LastModified``), which a first-seen
    rule here would contradict.
    """
    asked = size = page_size
    page = 1
    short: tuple[int, int, int] | None = None  # a short page to confirm: page, size, rows
    while True:
        path = f"/{entity}/Search/{page}/{size}"
        rows = fetch(path)
        if short is not None:
            if not rows:
                return  # the page after a short page is empty: the end, confirmed
            short_page, short_size, short_rows = short
            if short_page != 1:
                raise OneFilePagingError(
                    entity,
                    f"page {short_page} of {short_size} held {short_rows} rows, a short "
                    f"page, so the last, but {path} still holds {len(rows)}: OneFile's "
                    "pages contradict each other (rows added while paging, or a page "
                    "size cap that changes); the search is abandoned rather than return "
                    "part of its rows, so a retry reads it again",
                    path,
                )
            # Page 1 came short, yet rows follow it: OneFile caps pages at its size.
            warn(PageSizeCapped(entity, asked, size, conn_id))
        short = None
        yield from rows
        if not rows:
            return  # an empty page or a 204 after a full page (or no rows at all)
        if len(rows) >= size:
            page += 1
            continue
        short = (page, size, len(rows))
        if page == 1:
            size = len(rows)  # page 2 of this size starts right after these rows
        page += 1
