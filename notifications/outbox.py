"""The transactional outbox: rows written with the event that causes them; delivery claims,
sends and marks each row, so a message is never lost and never queued twice.

Claim: one UPDATE ... WHERE id IN (the next batch of claimable rows) RETURNING id, attempts,
committed before sending; the claim is stamped, and a lease judged, by the database's clock
(two deliverers, or a flow running "as of" another instant, never take a live claim). A
crash between sending and marking leaves the row `sending`; after the lease it is claimed
again and resent with the same Message-ID, so a duplicate is recognisable (SMTP has no
de-duplication). A row is marked only by the claim that holds it (its attempts as a token)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, and_, bindparam, func, literal, or_, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.orm import instrumentation
from sqlalchemy.orm.attributes import set_attribute
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from .models import OutboxMessage
from .render import Rendered, Renderer, load_context
from .transports import Outgoing, PermanentError, TransientError, Transport

MAX_ATTEMPTS = 10
LEASE = timedelta(minutes=10)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=4)
BATCH = 50  # rows claimed in one statement (a deliverer killed holds at most these)


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, ... minutes after each failed attempt, at most four hours."""
    wait: timedelta = FIRST_RETRY * (2 ** max(attempts - 1, 0))
    return min(wait, LONGEST_WAIT)


@dataclass(frozen=True)
class NewMessage:
    key: str
    message: str
    alert_id: int | None
    recipient: str
    to_addr: str | None
    rendered: Rendered


def row_values(*, key: str, message: str, alert_id: int | None, recipient: str,
               to_addr: str | None, now: datetime, rendered: Rendered | None = None,
               context: str | None = None) -> dict[str, Any]:
    """A new outbox row's columns, whichever path queues it: rendered now (`rendered`), or
    carrying its context (JSON) to be rendered once, at delivery."""
    return {
        "key": key, "message": message, "alert_id": alert_id, "recipient": recipient,
        "to_addr": to_addr, "subject": rendered.subject if rendered else "",
        "text_body": rendered.text if rendered else "",
        "html_body": rendered.html if rendered else "", "context": context,
        "status": "pending" if to_addr else "failed", "attempts": 0,
        "created_at": now, "next_attempt_at": now,
        "last_error": None if to_addr else (
            f"{recipient} has no e-mail address; add one in the organisation file"),
    }


_NEW = instrumentation.manager_of_class(OutboxMessage)


def new_row(values: dict[str, Any]) -> OutboxMessage:
    """An outbox row to add to a session, from `row_values`' columns, made as the ORM makes a
    row it loads (no model validation: the values are already the columns')."""
    row: OutboxMessage = _NEW.new_instance()
    for name, value in values.items():
        set_attribute(row, name, value)
    return row


def enqueue_many(session: Session, messages: list[NewMessage], now: datetime
                 ) -> list[OutboxMessage | None]:
    """Queue messages in the caller's transaction, one query to skip keys already queued;
    returns the new row for each message, or None where its key was queued before."""
    keys = [m.key for m in messages]
    with session.no_autoflush:
        seen = set(session.exec(
            select(OutboxMessage.key).where(col(OutboxMessage.key).in_(keys)))) if keys else set()
    # ...and rows queued earlier in this unit of work, not yet flushed.
    seen |= {o.key for o in session.new if isinstance(o, OutboxMessage)}
    out: list[OutboxMessage | None] = []
    for m in messages:
        if m.key in seen:
            out.append(None)
            continue
        seen.add(m.key)
        row = OutboxMessage(**row_values(
            key=m.key, message=m.message, alert_id=m.alert_id, recipient=m.recipient,
            to_addr=m.to_addr, now=now, rendered=m.rendered))
        session.add(row)
        out.append(row)
    return out


def enqueue(
    session: Session, *, key: str, message: str, alert_id: int | None, recipient: str,
    to_addr: str | None, rendered: Rendered, now: datetime,
) -> OutboxMessage | None:
    """Queue one message in the caller's transaction; a key already queued is left alone."""
    return enqueue_many(
        session, [NewMessage(key, message, alert_id, recipient, to_addr, rendered)], now)[0]


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.sent} sent"]
        if self.retrying:
            parts.append(f"{self.retrying} waiting to retry")
        if self.failed:
            parts.append(f"{self.failed} failed (drp outbox list --failed)")
        return ", ".join(parts)


def db_now(engine: Engine, ago: timedelta = timedelta(0)) -> ColumnElement[Any]:
    """The database's own clock (less `ago`), as SQL, in the form the outbox's instants are
    stored in: PostgreSQL's timestamptz; on SQLite, UTCDateTime's UTC text with six decimals
    ('YYYY-MM-DD HH:MM:SS.ffffff', so text comparison orders instants). Leases are stamped and
    judged by it, never by a caller's logical clock (a flow's "as of" may be hours away)."""
    seconds = ago.total_seconds()
    if engine.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"-{seconds:.6f} seconds").concat(
            "000")
    return func.now() - literal(ago, Interval()) if seconds else func.now()


@dataclass(frozen=True, order=True)
class _Claim:
    row_id: int
    token: int  # the row's attempts when claimed: only this claim may mark it


OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
# A row is marked only by the claim that holds it (one statement, compiled once).
_MINE = OUTBOX.update().where(
    OUTBOX.c.id == bindparam("row_id"), OUTBOX.c.status == "sending",
    OUTBOX.c.attempts == bindparam("token"))
_SENT = _MINE.values(status="sent", sent_at=bindparam("at"), last_error=None)
_SENT_RENDERED = _MINE.values(status="sent", sent_at=bindparam("at"), last_error=None,
                              subject=bindparam("b_subject"), text_body=bindparam("b_text"),
                              html_body=bindparam("b_html"))


class _Delivery:
    """One delivery run on one database connection: claims rows in batches, sends each over
    one transport, and marks each in a transaction of its own as soon as it is sent (a
    crash can leave at most the message in hand to be sent again)."""

    def __init__(self, conn: Connection, transport: Transport, now: Callable[[], datetime],
                 report: DeliveryReport, renderer: Renderer | None, max_attempts: int) -> None:
        self.conn, self.transport, self.now, self.report = conn, transport, now, report
        self.templates, self.max_attempts = renderer, max_attempts

    def claim(self, claimable: ColumnElement[bool], batch: int, after: int,
              extra: list[ColumnElement[bool]]) -> list[_Claim]:
        """Claim up to `batch` rows after id `after` in one statement, stamped with the
        database's clock; PostgreSQL skips rows another claimer has locked."""
        pick = (select(OUTBOX.c.id).where(claimable, OUTBOX.c.id > after, *extra)
                .order_by(OUTBOX.c.id).limit(batch))
        if self.conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        # A CTE, materialised: PostgreSQL may otherwise run a LIMIT ... SKIP LOCKED subquery
        # again for each row it updates, and claim far more than a batch.
        picked = pick.cte("picked").prefix_with("MATERIALIZED", dialect="postgresql")
        rows = self.conn.execute(
            OUTBOX.update().add_cte(picked)
            .where(OUTBOX.c.id.in_(select(picked.c.id)), claimable)
            .values(status="sending", claimed_at=db_now(self.conn.engine),
                    attempts=OUTBOX.c.attempts + 1)
            .returning(OUTBOX.c.id, OUTBOX.c.attempts)
        ).all()
        return sorted(_Claim(int(i), int(a)) for i, a in rows)

    def release(self, claims: list[_Claim]) -> None:
        """Give back claimed rows not tried (the run stopped): pending, the attempt undone."""
        if claims:
            self.conn.execute(_MINE.values(status="pending", claimed_at=None,
                                           attempts=OUTBOX.c.attempts - 1),
                              [{"row_id": c.row_id, "token": c.token} for c in claims])

    def _mark(self, c: _Claim, **values: Any) -> None:
        self.conn.execute(_MINE.values(**values), {"row_id": c.row_id, "token": c.token})

    def send_batch(self, claims: list[_Claim]) -> bool:
        """Send each claimed row; False when the connection is lost (the rest released)."""
        rows = {r.id: r for r in self.conn.execute(
            select(OUTBOX).where(OUTBOX.c.id.in_([c.row_id for c in claims])))}
        for i, c in enumerate(claims):
            try:
                if not self.send_one(c, rows[c.row_id]):
                    self.release(claims[i + 1:])
                    self.report.retrying += len(claims) - i - 1
                    return False
            except BaseException:
                with contextlib.suppress(Exception):
                    self.release(claims[i + 1:])  # the one in hand waits for its lease
                raise
        return True

    def _fail(self, c: _Claim, row: Row[Any], error: str) -> None:
        self._mark(c, status="failed", last_error=error[:500])
        self.report.failed += 1
        self.report.errors.append(f"message {c.row_id} to {row.recipient}: {error}")

    def send_one(self, c: _Claim, row: Row[Any]) -> bool:
        assert row.to_addr is not None
        body: dict[str, str] = {}
        if row.context is not None and not row.text_body:
            self.templates = self.templates or Renderer()
            try:
                done = self.templates.render(row.message, load_context(row.context))
            except Exception as exc:  # a council's template broken since queueing
                self._fail(c, row, f"the message could not be rendered: {exc}")
                return True
            body = {"subject": done.subject, "text_body": done.text, "html_body": done.html}
        out = Outgoing(row_id=c.row_id, key=row.key, to_addr=row.to_addr,
                       subject=body.get("subject", row.subject),
                       text=body.get("text_body", row.text_body),
                       html=body.get("html_body", row.html_body),
                       created_at=row.created_at, message=row.message)
        try:
            self.transport.send(out)
        except PermanentError as exc:
            self._fail(c, row, str(exc))
            return True
        except TransientError as exc:
            if c.token >= self.max_attempts:
                self._fail(c, row, f"{exc} (gave up after {c.token} attempts)")
            else:
                self._mark(c, status="pending", last_error=str(exc)[:500],
                           next_attempt_at=self.now() + backoff(c.token))
                self.report.retrying += 1
            if exc.connection:
                self.report.errors.append(str(exc))
                return False
            return True
        mine = {"row_id": c.row_id, "token": c.token, "at": self.now()}
        if body:  # rendered here: the row keeps what was sent
            self.conn.execute(_SENT_RENDERED, {**mine, "b_subject": out.subject,
                                               "b_text": out.text, "b_html": out.html})
        else:
            self.conn.execute(_SENT, mine)
        self.report.sent += 1
        return True


@contextlib.contextmanager
def _asynchronous_commits(conn: Connection) -> Iterator[None]:
    """This connection's commits do not wait for the disk (a mark a message, not a flush of
    the log each: 8-12 ms here): PostgreSQL's synchronous_commit off, SQLite's WAL with
    synchronous NORMAL. Visibility and atomicity are unchanged; only a crash of the database
    server (or the machine, for SQLite) may forget the last moments of marks, and those
    messages are then sent again, with the same Message-ID."""
    name = conn.dialect.name
    if name not in ("postgresql", "sqlite"):
        yield
        return
    if name == "postgresql":
        conn.exec_driver_sql("SET synchronous_commit = off")
        restore = "RESET synchronous_commit"
    else:
        level = int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
        conn.exec_driver_sql("PRAGMA synchronous = NORMAL")
        restore = f"PRAGMA synchronous = {level}"
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            conn.exec_driver_sql(restore)


def deliver(
    engine: Engine, transport: Transport, now: Callable[[], datetime], *,
    due_only: bool = True, batch: int = BATCH, max_attempts: int = MAX_ATTEMPTS,
    renderer: Renderer | None = None, lease: timedelta = LEASE,
    ids: Collection[int] | None = None, stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send what is waiting, in batches until none is left: rows whose retry time has come by
    the logical clock `now` (or every pending row when `due_only` is false; only `ids` when
    given), and rows whose sender crashed more than a `lease` ago by the database's clock.
    One pass in id order: a row that fails waits for the next run. Rows queued in bulk are
    rendered here, from the context stored with them, and keep what was sent. `stop` is
    asked between batches (a deliverer shutting down)."""
    report = DeliveryReport()
    start = now()
    claimable = or_(
        OUTBOX.c.status == "pending",
        and_(OUTBOX.c.status == "sending", OUTBOX.c.claimed_at < db_now(engine, lease)),
    )
    extra: list[ColumnElement[bool]] = []
    if due_only:
        extra.append(OUTBOX.c.next_attempt_at <= start)
    if ids is not None:
        if not ids:
            return report
        extra.append(OUTBOX.c.id.in_(sorted(ids)))
    after = 0
    try:
        # Each statement its own transaction: a claim, a mark, one round trip each.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, \
                _asynchronous_commits(conn):
            run = _Delivery(conn, transport, now, report, renderer, max_attempts)
            while not (stop and stop()):
                claims = run.claim(claimable, batch, after, extra)
                if not claims:
                    break
                after = claims[-1].row_id
                if not run.send_batch(claims):
                    break  # the server is down: leave the rest for the next run
    finally:
        transport.close()
    return report


def retry(engine: Engine, now: datetime, row_id: int | None = None) -> int:
    """Put failed messages back in the queue (one, or all); returns how many."""
    with Session(engine) as session:
        query = update(OutboxMessage).where(
            col(OutboxMessage.status) == "failed", col(OutboxMessage.to_addr).is_not(None)
        )
        if row_id is not None:
            query = query.where(col(OutboxMessage.id) == row_id)
        result = session.execute(
            query.values(status="pending", attempts=0, next_attempt_at=now, last_error=None)
        )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]
