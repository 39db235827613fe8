"""The schema comes from Alembic: upgrade, downgrade, upgrade again; no drift from the models;
the event log is append-only in the database itself."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from sqlmodel import SQLModel

from drp import db
from drp.ladder.protocol import Protocol
from drp.org import load_org

from .conftest import DATA, backends


@backends
def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    db.upgrade(engine)  # twice is safe
    db.downgrade(engine, "base")
    with engine.connect() as conn:
        tables = {t for t in engine.dialect.get_table_names(conn)} - {"alembic_version"}
    assert tables == set()
    db.upgrade(engine)
    engine.dispose()


@backends
def test_models_and_the_newest_migration_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


@backends
def test_the_event_log_cannot_be_altered(engine: Engine, protocol: Protocol) -> None:
    from drp.alerts import AlertService
    from drp.calendar import WorkingCalendar
    from drp.clock import FixedClock, parse_instant

    from .conftest import LONDON

    with db.transaction(engine) as s:
        load_org(s, DATA / "org.yaml", protocol)
    with db.transaction(engine) as s:
        AlertService(s, protocol=protocol, calendar=WorkingCalendar(),
                     clock=FixedClock(parse_instant("2027-03-01T09:00", LONDON)),
                     tz=LONDON).raise_alert("iro.ada", "R100", "x")
    for statement in ("UPDATE event SET comment = 'changed'", "DELETE FROM event"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT comment FROM event")).scalar_one() == "x"


def test_downgrading_below_bulk_rendering_waits_for_its_mail(engine: Engine) -> None:
    """Rows queued in bulk are rendered when sent: a downgrade that would drop their context
    is refused while any wait."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outbox (key, message, recipient, subject, text_body, html_body,"
            " context, status, attempts, created_at, next_attempt_at) VALUES ('1:x',"
            " 'reminder', 'x', '', '', '', '{}', 'pending', 0, '2027-03-01', '2027-03-01')"))
    with pytest.raises(RuntimeError, match="drp outbox send"):
        db.downgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'sent'"))
    db.downgrade(engine, "0005")
    db.upgrade(engine)
