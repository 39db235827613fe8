"""The transactional outbox: rows written with the event that causes them; delivery claims,
sends and marks each row, so a message is never lost and never queued twice.

Claim: UPDATE ... WHERE status is claimable (rowcount 1), committed before sending. A crash
between sending and marking leaves the row `sending`; after the lease it is claimed again and
resent with the same Message-ID, so a duplicate is recognisable (SMTP has no de-duplication)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from .models import OutboxMessage
from .render import Rendered, Renderer, load_context
from .transports import Outgoing, PermanentError, TransientError, Transport

MAX_ATTEMPTS = 10
LEASE = timedelta(minutes=10)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=4)


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


def deliver(
    engine: Engine, transport: Transport, now: Callable[[], datetime], *,
    due_only: bool = True, limit: int = 1000, max_attempts: int = MAX_ATTEMPTS,
    renderer: Renderer | None = None,
) -> DeliveryReport:
    """Send what is waiting: rows whose retry time has come (or every pending row when
    `due_only` is false), and rows whose sender crashed more than a lease ago. Rows queued in
    bulk are rendered here, from the context stored with them, and keep what was sent."""
    report = DeliveryReport()
    templates = renderer
    start = now()
    claimable = or_(
        col(OutboxMessage.status) == "pending",
        and_(col(OutboxMessage.status) == "sending",
             col(OutboxMessage.claimed_at) < start - LEASE),
    )
    with Session(engine) as session:
        query = select(OutboxMessage.id).where(claimable)
        if due_only:
            query = query.where(col(OutboxMessage.next_attempt_at) <= start)
        ids = list(session.exec(query.order_by(col(OutboxMessage.id)).limit(limit)))
    try:
        for row_id in ids:
            if row_id is None:
                continue
            with Session(engine) as session:
                claimed = session.execute(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id) == row_id, claimable)
                    .values(status="sending", claimed_at=now(),
                            attempts=OutboxMessage.attempts + 1)
                )
                session.commit()
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another sender has it
                row = session.get(OutboxMessage, row_id)
                assert row is not None and row.to_addr is not None
                if row.context is not None and not row.text_body:
                    templates = templates or Renderer()
                    try:
                        done = templates.render(row.message, load_context(row.context))
                    except Exception as exc:  # a council's template broken since queueing
                        row.status = "failed"
                        row.last_error = f"the message could not be rendered: {exc}"[:500]
                        report.failed += 1
                        report.errors.append(f"message {row_id} to {row.recipient}:"
                                             f" {row.last_error}")
                        session.add(row)
                        session.commit()
                        continue
                    row.subject, row.text_body, row.html_body = done.subject, done.text, done.html
                out = Outgoing(row_id=row_id, key=row.key, to_addr=row.to_addr,
                               subject=row.subject, text=row.text_body, html=row.html_body,
                               created_at=row.created_at, message=row.message)
                try:
                    transport.send(out)
                except PermanentError as exc:
                    row.status, row.last_error = "failed", str(exc)[:500]
                    report.failed += 1
                    report.errors.append(f"message {row_id} to {row.recipient}: {exc}")
                except TransientError as exc:
                    row.last_error = str(exc)[:500]
                    if row.attempts >= max_attempts:
                        row.status = "failed"
                        report.failed += 1
                    else:
                        row.status = "pending"
                        row.next_attempt_at = now() + backoff(row.attempts)
                        report.retrying += 1
                    session.add(row)
                    session.commit()
                    if exc.connection:
                        report.errors.append(str(exc))
                        report.retrying += _remaining(ids, row_id)
                        break  # the server is down: leave the rest for the next run
                    continue
                else:
                    row.status, row.sent_at, row.last_error = "sent", now(), None
                    report.sent += 1
                session.add(row)
                session.commit()
    finally:
        transport.close()
    return report


def _remaining(ids: list[int | None], current: int) -> int:
    return len(ids) - ids.index(current) - 1


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
