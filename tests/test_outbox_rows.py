"""An event's outbox rows are written in one statement (drp.notify.insert_rows): the ids go to
`drp.mail.queued_ids`, so a command delivers what it queued, and a key queued twice is refused
by the outbox's unique key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from drp import db, mail
from drp.notify import insert_rows
from notifications.models import OutboxMessage
from notifications.outbox import row_values
from tests.conftest import backends

WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _rows(*keys: str) -> list[dict[str, object]]:
    return [row_values(key=k, message="escalated", alert_id=None, recipient=f"r{i}",
                       to_addr=f"r{i}@example.org" if i else None, now=WHEN,
                       context='{"a":1}') for i, k in enumerate(keys)]


@backends
def test_rows_in_one_statement_their_ids_queued(engine: Engine) -> None:
    inserts: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with db.transaction(engine) as s:
            queued = mail.queued_ids(s)
            insert_rows(s, _rows("7:ann", "7:bob", "7:cat"))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    with db.transaction(engine) as s:
        got = {r.key: r for r in s.exec(select(OutboxMessage))}
    assert sorted(got) == ["7:ann", "7:bob", "7:cat"]
    assert sorted(queued) == sorted(r.id for r in got.values())
    # No address: failed at once, never pending (as the rows made one at a time were).
    assert (got["7:ann"].status, got["7:bob"].status) == ("failed", "pending")
    assert got["7:cat"].context == '{"a":1}' and got["7:cat"].attempts == 0


@backends
def test_a_key_queued_twice_is_refused(engine: Engine) -> None:
    with db.transaction(engine) as s:
        insert_rows(s, _rows("8:ann"))
    with pytest.raises(IntegrityError), db.transaction(engine) as s:
        queued = mail.queued_ids(s)
        insert_rows(s, _rows("8:bob", "8:ann"))
    assert queued == []
    with db.transaction(engine) as s:
        assert [r.key for r in s.exec(select(OutboxMessage))] == ["8:ann"]
