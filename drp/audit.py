"""Who did it, from where: the origin of every event and access-log row, and the one function
that writes an access-log (audit) row.

An `Origin` is made once per entry point (the command line's shared set-up, the web app's and
the API's unit of work, each flow's task) and the service layer writes it on every row:

- `channel`: `cli`, `web`, `api` or `flow`;
- `os_user`: on the command line (and a flow), the operating-system account running drp, from
  the process's effective user id through the password database (`pwd`), never from `$USER` or
  `$LOGNAME`, which the caller sets at will; the uid itself where the account has no name;
- `client`: on the web and the API, the client's address as the server sees it
  (`request.client.host`). Behind a TLS-terminating proxy this is the proxy, unless uvicorn is
  told to trust its X-Forwarded-For (`--forwarded-allow-ips`, opt-in, uvicorn's own setting);
- `via`: what was asked (`GET /alerts.csv`, `alert show`), written into the detail of list
  and refusal rows, not a column of its own.

Entry points set the origin with `coming_from(origin)`; a unit of work takes the one in force
when it is made (or one given to it), so no call site repeats it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session

from .models import AccessLog

CHANNELS = ("cli", "web", "api", "flow")
DETAIL_MAX = 500  # the access log's detail column


def os_user() -> str:
    """The operating-system account this process runs as (effective uid), by name."""
    uid = os.geteuid()
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):  # no password database, or an unnamed uid (a container)
        return f"uid {uid}"


@dataclass(frozen=True)
class Origin:
    channel: str
    os_user: str | None = None
    client: str | None = None
    via: str | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"channel {self.channel!r} is not one of {', '.join(CHANNELS)}")

    @classmethod
    def cli(cls, via: str | None = None) -> Origin:
        return cls("cli", os_user=os_user(), via=via)

    @classmethod
    def flow(cls, via: str | None = None) -> Origin:
        return cls("flow", os_user=os_user(), via=via)

    @classmethod
    def request(cls, channel: str, client: str | None, method: str, path: str) -> Origin:
        """A web page's or an API call's (`client`: request.client.host)."""
        return cls(channel, client=(client or None) and client[:64], via=f"{method} {path}"[:200])

    def columns(self) -> dict[str, Any]:
        """The three columns an event or access-log row records."""
        return {"channel": self.channel, "os_user": self.os_user, "client": self.client}


NO_ORIGIN: dict[str, Any] = {"channel": None, "os_user": None, "client": None}

_current: ContextVar[Origin | None] = ContextVar("drp_origin", default=None)
# The access-log rows of reading, collected for the entry point to write (`collecting`).
READS = frozenset({"view", "list", "listed", "search", "print"})
_collected: ContextVar[list[dict[str, Any]] | None] = ContextVar("drp_reads", default=None)


def current() -> Origin | None:
    """The origin the entry point set (None where none did: a test or a tool's own script)."""
    return _current.get()


@contextmanager
def coming_from(origin: Origin) -> Iterator[Origin]:
    """Everything done inside, in this thread or task, comes from `origin`."""
    token = _current.set(origin)
    try:
        yield origin
    finally:
        _current.reset(token)


def columns(origin: Origin | None) -> dict[str, Any]:
    return origin.columns() if origin is not None else dict(NO_ORIGIN)


def record(session: Session, origin: Origin | None, *, at: datetime, actor: str, action: str,
           alert_id: int | None = None, detail: str | None = None,
           shown: Sequence[int] = ()) -> None:
    """Write an access-log (audit) row in `session`'s transaction: who (`actor`, a username or
    `system`), what (`action`, e.g. view, list, refused, org_load, token_issued), on which
    alert if any, when (`at`), and from where (`origin`; None takes the one in force). The
    detail is cut to the column's 500 characters; it must hold no personal data beyond
    usernames and references. `shown`: the alerts a list showed, one `listed` row each besides
    (so "who has seen alert N" is one indexed query, whether they opened it or saw it listed)."""
    origin = origin if origin is not None else current()
    where = columns(origin)
    reads = _collected.get()
    if reads is not None and action in READS:  # the entry point writes them (`collecting`)
        reads.append({"at": at, "actor": actor[:80], "action": action[:32], "alert_id": alert_id,
                      "detail": None if detail is None else detail[:DETAIL_MAX], **where})
        reads.extend({"at": at, "actor": actor[:80], "action": "listed", "alert_id": aid,
                      "detail": None, **where} for aid in shown)
        return
    session.add(AccessLog(at=at, actor=actor[:80], action=action[:32], alert_id=alert_id,
                          detail=None if detail is None else detail[:DETAIL_MAX], **where))
    if shown:
        session.execute(insert(AccessLog), [
            {"at": at, "actor": actor[:80], "action": "listed", "alert_id": aid,
             "detail": None, **where} for aid in shown])


def keep_refused(engine: Engine, refused: list[dict[str, Any]]) -> None:
    """Write the refusals a unit of work met (`UnitOfWork.refused`) in a transaction of their
    own, after the unit's (which its refusal rolled back), and forget them."""
    if not refused:
        return
    with Session(engine) as session:
        for row in refused:
            record(session, **row)
        session.commit()
    refused.clear()


@contextmanager
def collecting() -> Iterator[list[dict[str, Any]]]:
    """Inside, in this thread or task, the access-log rows of reading (a view, a list and the
    alerts it showed, a search, a print: `READS`) are not written in the unit of work's session
    but collected in the list given, for the entry point to write once the unit has committed
    (`AccessLogWriter.write`), before it answers; a unit that fails writes none, as its
    rollback would have. Rows of anything that changes data stay in that change's
    transaction."""
    rows: list[dict[str, Any]] = []
    token = _collected.set(rows)
    try:
        yield rows
    finally:
        _collected.reset(token)


class AccessLogWriter:
    """Writes the access-log rows of the requests being answered, many requests' rows in one
    transaction (group commit): each caller hands its rows over and returns once they are
    committed, so no page is answered before its row is kept. Whoever finds the writer free
    writes every row waiting (its own and those handed over while the last batch was being
    written); the others wait for that batch. One writer at a time: on SQLite, page views never
    queue for the database's write lock behind each other, and each batch is one commit.

    A batch with a row that cannot be written (one naming an alert that retention removed a
    moment before: its foreign key) is written again, each request's rows in a transaction of
    their own, so that it fails only its own request: that page is not shown and its rows are
    not kept, as when the row was written in the page's own transaction. A batch the database
    fails otherwise (its lock, its disk) fails every request in it at once. A page is shown if
    and only if its rows are committed; no row waits to fail every later batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()  # the waiting rows and the counters
        self._turn = threading.Lock()  # one batch at a time
        self._waiting: list[tuple[int, list[dict[str, Any]]]] = []  # (call, its rows)
        self._handed = 0  # calls whose rows were handed over
        self._kept = 0  # of those, the calls whose rows are written or failed (in order)
        self._failed: dict[int, Exception] = {}  # calls whose rows failed, until they learn it

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self._lock:
            self._handed += 1
            mine = self._handed
            self._waiting.append((mine, rows))
        with self._turn:
            if self._kept < mine:  # no earlier batch took them: write every row waiting
                with self._lock:
                    batch, self._waiting = self._waiting, []
                    upto = self._handed
                try:
                    self._write(batch, mine)
                except BaseException:  # (interrupted: this call's page is not shown)
                    self._failed.pop(mine, None)
                    raise
                self._kept = upto
            failed = self._failed.pop(mine, None)
        if failed is not None:
            raise failed

    def _write(self, batch: list[tuple[int, list[dict[str, Any]]]], mine: int) -> None:
        """Write `batch` in one transaction; where a row of it cannot be written, each call's
        rows in one of their own; where the database fails otherwise, every call fails.
        Interrupted, the calls not yet written wait for the next writer (but call `mine`,
        whose page will not be shown)."""
        left = batch  # (the calls whose rows are neither written nor failed)
        try:
            try:
                if batch:  # (empty: an interrupted writer wrote this call's rows)
                    self._insert([row for _call, some in batch for row in some])
                return
            except (IntegrityError, DataError):  # a row that cannot be written: whose?
                pass
            except Exception as exc:  # (the database, not a row: none of them is kept)
                self._failed.update((call, exc) for call, _some in batch)
                return
            while left:  # (outside the handler: no call's error carries the batch's)
                call, some = left[0]
                try:
                    self._insert(some)
                except Exception as exc:
                    self._failed[call] = exc
                left = left[1:]
        except BaseException:
            with self._lock:
                self._waiting[:0] = [(call, some) for call, some in left if call != mine]
            raise

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(AccessLog), rows)

    def pending(self) -> int:
        """Rows handed over and not yet committed."""
        with self._lock:
            return sum(len(some) for _call, some in self._waiting)
