"""A page answered again from what this process kept, while nothing it was made from has
changed (issue 19: a page within a few times a bare endpoint's cost).

A page is kept under what it was made from: its address (path and query), the session it was
made for (the person, their CSRF token), the organisation's token (drp.orgtoken: people,
roles, teams, cover, posts), the data's token (`DataVersion`, migration 0019: alerts, their
events, actions, referrals, links and corrections, children, closure days, case-note
exports) and the day. Both tokens are moved by triggers in the database on every write to
what they guard, by any writer in any process, in the writer's transaction (PostgreSQL: at its
commit), so one statement reading them says whether a kept page still stands. They are read
in the statement that checks the session (drp.web.auth's `_LIVE`), with the person and roles
the page's frame shows: what the page is made from is never older than the tokens it is kept
under (a change committed after that statement moves them for every later request).

What may be kept is decided as the page is first made, not by a list of pages: every
statement the page runs is watched (`_Making`), and the page is kept only if it read no table
the tokens do not guard, wrote nothing but the access log, and ran nothing drp cannot read the
tables of (text SQL, a `table()` without metadata). A page reading the sessions, the sign-ins
or the outbox is made anew every time, as before. What is sent to the driver's own cursor
(drp/rowsets.py's writes) passes SQLAlchemy's events unseen: pages read through SQLAlchemy,
never through the driver.

Each time a kept page is answered, its access-log rows (the view, the list and each alert it
listed) are written again, as the page made them but stamped with this request's time and
origin, and committed before the page is answered, as a page made anew: every view recorded.
A form's one-time key (drp.idempotency) is new in every answer: the page is kept with a
placeholder for each. A request carrying a kept form or a lost-form notice (cookies) is never
answered from, nor kept in, the cache; nor is an answer that sets a cookie or is not a 200.
`DRP_PAGE_CACHE_MB=0` turns it off."""

from __future__ import annotations

import re
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine, Table, event
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.util import find_tables

from .. import audit
from ..dataversion import WATCHED as DATA_WATCHED
from ..orgtoken import WATCHED as ORG_WATCHED
from .kept import KEPT_COOKIE, LOST_COOKIE

# What a kept page may have read (the tokens themselves too: the organisation's is read with
# the people it guards).
GUARDED = DATA_WATCHED | ORG_WATCHED | {"org_version", "data_version"}
WRITTEN_ANYWAY = frozenset({"access_log"})  # what a page may write and still be kept
_KEY_MARK = "drp-form-key-" + secrets.token_hex(8)  # (this process's: no page can carry it)
_KEY_SPLIT = re.compile(re.escape(_KEY_MARK).encode() + rb"-[0-9]+")


@dataclass(frozen=True)
class KeptPage:
    parts: list[bytes]  # the page's bytes, split where each form key goes
    headers: list[tuple[str, str]]  # the answer's own headers (but its length)
    reads: list[dict[str, Any]]  # its access-log rows, as first written

    @property
    def size(self) -> int:
        return sum(map(len, self.parts)) + 200 * len(self.reads) + 512


@dataclass
class _Making:
    """What a page being made ran and recorded (see the module's docstring)."""

    read: set[str] = field(default_factory=set)
    wrote: set[str] = field(default_factory=set)
    unknown: bool = False  # a statement whose tables drp cannot tell
    reads: list[dict[str, Any]] = field(default_factory=list)  # its access-log rows
    keys: int = 0

    def form_key(self) -> str:
        self.keys += 1
        return f"{_KEY_MARK}-{self.keys}"

    @property
    def keepable(self) -> bool:
        return not self.unknown and self.read <= GUARDED and self.wrote <= WRITTEN_ANYWAY


_making: ContextVar[_Making | None] = ContextVar("drp_page_making", default=None)
_WATCHING: weakref.WeakSet[Engine] = weakref.WeakSet()
_TABLES: weakref.WeakKeyDictionary[Any, tuple[frozenset[str], bool]] = \
    weakref.WeakKeyDictionary()


def _tables_of(compiled: Any) -> tuple[frozenset[str], bool]:
    """The tables a compiled statement names, and whether it holds text SQL (tables unknown);
    worked out once a compiled statement (SQLAlchemy caches those)."""
    found = _TABLES.get(compiled)
    if found is None:
        statement = compiled.statement
        tables = find_tables(statement, include_crud=True)
        names = frozenset(t.name for t in tables if isinstance(t, Table))
        # (a `table()` without metadata, or text SQL: drp cannot tell what it reads)
        text = any(not isinstance(t, Table) for t in tables) or any(
            isinstance(e, TextClause) for e in visitors.iterate(statement))
        found = _TABLES[compiled] = (names, text)
    return found


def _seen(_conn: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any,
          _executemany: bool) -> None:
    making = _making.get()
    if making is None:
        return
    compiled = getattr(context, "compiled", None)
    if compiled is None or getattr(compiled, "statement", None) is None:
        making.unknown = True  # (a driver-level statement)
        return
    names, text = _tables_of(compiled)
    making.unknown |= text
    if context.isinsert or context.isupdate or context.isdelete:
        making.wrote |= names
    else:
        making.read |= names


def watch(engine: Engine) -> None:
    """Watch `engine`'s statements for pages being made (once an engine)."""
    if engine not in _WATCHING:
        event.listen(engine, "before_cursor_execute", _seen)
        _WATCHING.add(engine)


def recorded(reads: list[dict[str, Any]]) -> None:
    """A unit of work's access-log rows, written for the page being made (if one is)."""
    making = _making.get()
    if making is not None:
        making.reads.extend(dict(row) for row in reads)


def form_key() -> Callable[[], str] | None:
    """The placeholder-maker for the form keys of the page being made, or None."""
    making = _making.get()
    return making.form_key if making is not None else None


class PageCache:
    """The pages this process keeps (least recently used go first, past `most_bytes`)."""

    def __init__(self, most_bytes: int) -> None:
        self.most_bytes = most_bytes
        self._pages: OrderedDict[tuple[Any, ...], KeptPage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> KeptPage | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: tuple[Any, ...], page: KeptPage) -> None:
        if page.size > self.most_bytes // 4:
            return
        with self._lock:
            old = self._pages.pop(key, None)
            self._bytes -= old.size if old else 0
            self._pages[key] = page
            self._bytes += page.size
            while self._bytes > self.most_bytes:
                _key, gone = self._pages.popitem(last=False)
                self._bytes -= gone.size

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._pages)


def _answer(page: KeptPage, status: int = 200) -> Response:
    keys = [secrets.token_urlsafe(18).encode() for _ in page.parts[1:]]
    body = page.parts[0] + b"".join(k + part for k, part in zip(keys, page.parts[1:],
                                                                   strict=True))
    response = HTMLResponse(body, status_code=status)
    for name, value in page.headers:
        response.headers.append(name, value)
    return response


@contextmanager
def _made() -> Iterator[_Making]:
    making = _Making()
    token = _making.set(making)
    try:
        yield making
    finally:
        _making.reset(token)


def cached(request: Request, cache: PageCache | None, who: tuple[Any, ...],
           tokens: tuple[int, int] | None, day: date, origin: audit.Origin, now: Any,
           write: Callable[[list[dict[str, Any]]], None],
           make: Callable[[], Response]) -> Response:
    """The page `make()` makes for `who` (the person and their session) on `day`: kept from an
    earlier answer while the tokens stand (its access-log rows written again by `write`, as of
    `now` from `origin`), or made and, where it may be, kept. `tokens`: as read with the
    session and the person and roles the page shows, before any of the page's own reads (None:
    not read so; the page is made, and not kept: read later, a change committed between would
    be kept under the newer token)."""
    if cache is None or tokens is None or request.method != "GET" \
            or KEPT_COOKIE in request.cookies or LOST_COOKIE in request.cookies \
            or _making.get() is not None:
        return make()
    key = (request.url.path, request.url.query, *who, *tokens, day)
    page = cache.get(key)
    if page is not None:
        stamp = {"at": now, **audit.columns(origin)}
        write([{**row, **stamp} for row in page.reads])
        return _answer(page)
    with _made() as making:
        response = make()
    body = getattr(response, "body", None)
    if response.status_code != 200 or not isinstance(body, bytes) \
            or "set-cookie" in response.headers or not making.keepable:
        return _fresh(response, making)
    kept = KeptPage(_KEY_SPLIT.split(body),
                    _own_headers(response),
                    making.reads)
    cache.put(key, kept)
    return _answer(kept)


def _fresh(response: Response, making: _Making) -> Response:
    """An answer not kept, with real form keys where its placeholders are."""
    body = getattr(response, "body", None)
    if not making.keys or not isinstance(body, bytes):
        return response
    parts = _KEY_SPLIT.split(body)
    return _answer(KeptPage(parts, _own_headers(response), []), response.status_code)


def _own_headers(response: Response) -> list[tuple[str, str]]:
    """An answer's headers but those of its body (an answer made again sets them)."""
    return [(k, v) for k, v in response.headers.items()
            if k not in ("content-length", "content-type")]
