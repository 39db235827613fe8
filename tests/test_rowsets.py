"""drp.rowsets on SQLite writes rows exactly as SQLAlchemy's own executemany would: the same
text in every column (instants in UTC in SQLAlchemy's format, whatever zone or fold they were
given in; days; JSON; NULLs), RETURNING every row's columns however many statements the
parameters' limit takes, and the version-guarded UPDATE of alerts with its constant
`version + 1`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from drp import db, rowsets
from drp.alerts import AlertService
from drp.batch import ALERT, EVENT, OUTBOX
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock
from drp.ladder.protocol import Protocol
from drp.rowsets import insert_rows, update_alerts

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2027, 3, 9, 8, 0, tzinfo=UTC)
AUTUMN = datetime(2027, 10, 31, 1, 30, tzinfo=LONDON)  # the hour that comes twice


def two_alerts(engine: Engine, protocol: Protocol) -> None:
    with db.transaction(engine) as s:
        svc = AlertService(s, protocol=protocol, calendar=WorkingCalendar(),
                           clock=FixedClock(datetime(2027, 3, 1, 10, tzinfo=UTC)), tz=LONDON)
        for ref in ("R100", "R101"):
            svc.raise_alert("iro.ada" if ref == "R100" else "iro.ben", ref, f"Drift {ref}")


def raw(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows as SQLite stores them (no type of SQLAlchemy's reads them back)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def events(alert_id: int) -> list[dict[str, Any]]:
    shared = NOW  # one object on every row, as a run's instant
    return [
        {"alert_id": alert_id, "seq": 10, "at": shared, "actor": "system",
         "kind": "reminder", "data": {"stage_due": "2027-03-12", "n": [1, None, True]}},
        {"alert_id": alert_id, "seq": 11, "at": AUTUMN, "actor": "système ✓",
         "kind": "reminder", "data": None},
        {"alert_id": alert_id, "seq": 12, "at": AUTUMN.replace(fold=1), "actor": "x",
         "kind": "reminder", "data": {}},
        {"alert_id": alert_id, "seq": 13, "at": shared.astimezone(LONDON), "actor": "'; --",
         "kind": "reminder", "data": {"quote": "\"'"}},
    ]


def outbox(alert_id: int, prefix: str) -> list[dict[str, Any]]:
    return [{"key": f"{prefix}:{i}", "message": "reminder", "alert_id": alert_id,
             "recipient": "tm.fay", "to_addr": None if i else "fay@example.org",
             "subject": "", "text_body": "", "html_body": "", "context": '{"a":1}',
             "status": "pending", "attempts": 0, "created_at": NOW,
             "next_attempt_at": AUTUMN if i else NOW, "last_error": None} for i in range(3)]


def test_sqlite_rows_are_written_as_sqlalchemy_writes_them(org: Engine,
                                                           protocol: Protocol) -> None:
    two_alerts(org, protocol)
    with org.begin() as conn:
        returned = insert_rows(conn, EVENT, events(1), "id", "alert_id", "seq")
        conn.execute(insert(EVENT), events(2))  # SQLAlchemy's own executemany
        insert_rows(conn, OUTBOX, outbox(1, "fast"))
        conn.execute(insert(OUTBOX), outbox(2, "core"))
    columns = "seq, at, actor, kind, data, typeof(at), typeof(data)"
    fast = raw(org, f"SELECT {columns} FROM event WHERE alert_id = 1 AND seq >= 10 ORDER BY seq")
    core = raw(org, f"SELECT {columns} FROM event WHERE alert_id = 2 AND seq >= 10 ORDER BY seq")
    assert fast == core and len(fast) == 4
    assert fast[1][1] == "2027-10-31 00:30:00.000000"  # BST's 01:30, in UTC
    assert fast[2][1] == "2027-10-31 01:30:00.000000"  # GMT's 01:30
    ids = raw(org, "SELECT id, alert_id, seq FROM event WHERE alert_id = 1 AND seq >= 10")
    assert sorted(tuple(r) for r in returned) == sorted(ids)
    columns = ("message, recipient, to_addr, subject, context, status, attempts, created_at,"
               " next_attempt_at, claimed_at, sent_at, last_error")
    fast = raw(org, f"SELECT {columns} FROM outbox WHERE key LIKE 'fast:%' ORDER BY key")
    core = raw(org, f"SELECT {columns} FROM outbox WHERE key LIKE 'core:%' ORDER BY key")
    assert fast == core and len(fast) == 3


def test_returning_gives_every_row_when_the_parameters_need_several_statements(
    org: Engine, protocol: Protocol, monkeypatch: pytest.MonkeyPatch,
) -> None:
    two_alerts(org, protocol)
    monkeypatch.setattr(rowsets, "SQLITE_PARAMETERS", 13)  # two rows of six a statement
    sent: list[str] = []
    with org.begin() as conn:
        # (SQLite's trace names the statement again for each row a trigger runs for: the
        # data's token, migration 0019, is not what this counts)
        conn.exec_driver_sql("DROP TRIGGER event_data_changed_insert")
        conn.connection.set_trace_callback(sent.append)
        rows = [{**e, "seq": 20 + i} for i, e in enumerate(events(1) + events(1)[:1])]
        returned = insert_rows(conn, EVENT, rows, "alert_id", "seq")
        conn.connection.set_trace_callback(None)
    assert sorted(returned) == [(1, s) for s in range(20, 25)]
    assert sum(s.startswith("INSERT INTO event") for s in sent) == 3


def test_sqlite_update_is_guarded_by_the_version_and_moves_it_on(
    org: Engine, protocol: Protocol,
) -> None:
    two_alerts(org, protocol)
    with org.connect() as conn:
        before = {r.id: r for r in conn.execute(select(ALERT))}
    change = {"stage_due": date(2027, 4, 1), "stage_entered_at": AUTUMN, "last_seq": 5}
    with org.begin() as conn:
        written = update_alerts(conn, [
            {"id": 1, "version": before[1].version, **change},
            {"id": 2, "version": before[2].version + 7, **change}])  # changed meanwhile
    assert written == 1
    with org.connect() as conn:
        after = {r.id: r for r in conn.execute(select(ALERT))}
    assert after[1].version == before[1].version + 1 and after[2] == before[2]
    assert raw(org, "SELECT stage_due, stage_entered_at, last_seq FROM alert WHERE id = 1") == [
        ("2027-04-01", "2027-10-31 00:30:00.000000", 5)]


def test_a_row_without_a_column_the_database_does_not_fill_is_refused(
    org: Engine, protocol: Protocol,
) -> None:
    """A column with a default SQLAlchemy would compute is not silently left NULL."""
    two_alerts(org, protocol)
    rows = [{k: v for k, v in r.items() if k != "status"} for r in outbox(1, "short")]
    with org.begin() as conn, pytest.raises(TypeError, match="must give 'status'"):
        insert_rows(conn, OUTBOX, rows)


def test_returning_on_sqlite_is_for_integer_columns_only(org: Engine,
                                                         protocol: Protocol) -> None:
    """The driver's values come back unconverted (an instant as its text): refused, not
    handed back as if SQLAlchemy had read them."""
    two_alerts(org, protocol)
    with org.begin() as conn, pytest.raises(TypeError, match="integer columns only"):
        insert_rows(conn, EVENT, events(1), "id", "at")


def test_each_table_and_engine_has_its_own_compiled_statement(tmp_path: Any) -> None:
    """Two tables of one name (other metadata, another default) and two engines (another
    JSON serializer) each write as SQLAlchemy would for them."""
    import json

    from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine

    def table(default: str | None) -> Table:
        return Table("t", MetaData(), Column("id", Integer, primary_key=True),
                     Column("s", String), Column("j", JSON),
                     Column("d", String, default=default))

    plain = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    wide = create_engine(f"sqlite:///{tmp_path / 'b.db'}",
                         json_serializer=lambda v: json.dumps(v, ensure_ascii=False))
    first, second = table(None), table("given")
    for engine in (plain, wide):
        first.metadata.create_all(engine)
        with engine.begin() as conn:
            insert_rows(conn, first, [{"s": "x", "j": {"é": 1}}])
            with pytest.raises(TypeError, match="must give 'd'"):
                insert_rows(conn, second, [{"s": "x", "j": {"é": 1}}])  # d: SQLAlchemy's
    assert raw(plain, "SELECT s, j FROM t") == [("x", '{"\\u00e9": 1}')]
    assert raw(wide, "SELECT s, j FROM t") == [("x", '{"é": 1}')]
    plain.dispose()
    wide.dispose()


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_postgres_copy_writes_rows_as_sqlalchemy_writes_them(org: Engine,
                                                             protocol: Protocol) -> None:
    """Without RETURNING, PostgreSQL's rows go by COPY: each column as SQLAlchemy's own
    executemany stores it (read back as text: instants, days, JSON, NULLs, quotes, tabs and
    new lines), in the caller's transaction (rolled back with it)."""
    two_alerts(org, protocol)
    odd = "tab\there\nnew line \\ back'slash \"quote\" ✓"
    with org.begin() as conn:
        insert_rows(conn, EVENT, events(1))  # (no RETURNING: COPY)
        conn.execute(insert(EVENT), events(2))  # SQLAlchemy's own executemany
        insert_rows(conn, OUTBOX, [{**o, "subject": odd} for o in outbox(1, "fast")])
        conn.execute(insert(OUTBOX), [{**o, "subject": odd} for o in outbox(2, "core")])
    columns = "seq, at::text, actor, kind, data::text"
    fast = raw(org, f"SELECT {columns} FROM event WHERE alert_id = 1 AND seq >= 10 ORDER BY seq")
    core = raw(org, f"SELECT {columns} FROM event WHERE alert_id = 2 AND seq >= 10 ORDER BY seq")
    assert fast == core and len(fast) == 4
    assert fast[1][4] == "null"  # a JSON column's None is JSON's null, as SQLAlchemy writes it
    columns = ("message, recipient, to_addr, subject, context, status, attempts,"
               " created_at::text, next_attempt_at::text, claimed_at, sent_at, last_error")
    fast = raw(org, f"SELECT {columns} FROM outbox WHERE left(key, 5) = 'fast:' ORDER BY key")
    core = raw(org, f"SELECT {columns} FROM outbox WHERE left(key, 5) = 'core:' ORDER BY key")
    assert fast == core and len(fast) == 3 and fast[0][3] == odd
    with pytest.raises(RuntimeError), org.begin() as conn:  # one transaction with the caller's
        assert rowsets._copyable(conn, OUTBOX, tuple(outbox(1, "gone")[0]))  # (by COPY)
        insert_rows(conn, OUTBOX, outbox(1, "gone"))
        raise RuntimeError("the unit of work fails")
    assert raw(org, "SELECT count(*) FROM outbox WHERE left(key, 5) = 'gone:'") == [(0,)]
    with org.connect() as conn:  # a connection not yet in a transaction begins one
        insert_rows(conn, OUTBOX, outbox(1, "kept"))
        conn.commit()
    assert raw(org, "SELECT count(*) FROM outbox WHERE left(key, 5) = 'kept:'") == [(3,)]
    # A key queued twice: SQLAlchemy's IntegrityError, as an INSERT's, and nothing kept.
    with pytest.raises(IntegrityError), org.begin() as conn:
        insert_rows(conn, OUTBOX, outbox(1, "twice") + outbox(1, "twice"))
    assert raw(org, "SELECT count(*) FROM outbox WHERE left(key, 6) = 'twice:'") == [(0,)]
    # Rows that leave out a column with SQLAlchemy's default go as an INSERT (COPY would store
    # NULL): the default is stored.
    short = [{k: v for k, v in o.items() if k != "status"} for o in outbox(1, "short")]
    with org.begin() as conn:
        assert not rowsets._copyable(conn, OUTBOX, tuple(short[0]))
        insert_rows(conn, OUTBOX, short)
    assert raw(org, "SELECT DISTINCT status FROM outbox WHERE left(key, 6) = 'short:'") == [
        ("pending",)]


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_rows_copy_would_store_otherwise_go_as_an_insert(org: Engine) -> None:
    """No drp table has such columns yet: a column without a time zone (an instant's offset in
    COPY's text would be ignored) or whose key is not its name goes as an INSERT."""
    from sqlalchemy import Column, DateTime, Integer, MetaData, Table

    naive = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", DateTime(timezone=False)))
    renamed = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                    Column("at_column", DateTime(timezone=True), key="at"))
    zoned = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", DateTime(timezone=True)))
    with org.connect() as conn:
        assert rowsets._copyable(conn, zoned, ("id", "at"))
        assert not rowsets._copyable(conn, naive, ("id", "at"))
        assert not rowsets._copyable(conn, renamed, ("id", "at"))
