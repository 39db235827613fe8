"""The schema comes from Alembic: upgrade, downgrade, upgrade again; no drift from the models;
the event log is append-only in the database itself."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
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


# -- upgrading a database that holds alerts of the old kind (0006 -> 0007) ------------------------
ORG_TABLES = ("person", "person_role", "council", "service", "team", "team_member", "child")


def at_0006(engine: Engine, name: str) -> sa.Table:
    """Table `name` as revision 0006 has it: its columns, typed as the models type them."""
    columns = {c["name"] for c in sa.inspect(engine).get_columns(name)}
    model = SQLModel.metadata.tables[name]
    return sa.Table(name, sa.MetaData(),
                    *[sa.Column(c.name, c.type) for c in model.columns if c.name in columns])


def old_alert(aid: int, child_id: int, iro_id: int, status: str, stage: str, raised: datetime,
              stage_due: date, resolution_due: date, closed: datetime | None,
              last_seq: int) -> dict[str, Any]:
    return {"id": aid, "child_id": child_id, "iro_id": iro_id, "status": status,
            "stage": stage, "summary": f"alert {aid}", "raised_at": raised,
            "stage_entered_at": raised, "stage_due": stage_due,
            "resolution_due": resolution_due, "on_hold": False, "closed_at": closed,
            "last_seq": last_seq, "version": last_seq + 1, "theme_confirmed": False}


def old_events(aid: int, first_id: int, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [{"id": first_id + i, "alert_id": aid, "seq": i + 1, "at": at, "actor": actor,
             "kind": kind, "from_stage": src, "to_stage": dst, "comment": kind, "data": data}
            for i, (at, actor, kind, src, dst, data) in enumerate(rows)]


@backends
def test_upgrading_turns_referred_alerts_open_and_starts_the_formal_clock_at_the_first_formal_stage(
        db_url: str, tmp_path: Path, protocol: Protocol) -> None:
    # The organisation, loaded by today's code into a scratch database, copied into one at 0006.
    source = db.make_engine(f"sqlite:///{tmp_path / 'org.db'}")
    db.upgrade(source)
    with db.transaction(source) as s:
        load_org(s, DATA / "org.yaml", protocol)
    engine = db.make_engine(db_url)
    db.upgrade(engine, "0006")
    with source.connect() as src, engine.begin() as dst:
        for name in ORG_TABLES:
            table = at_0006(engine, name)
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            if rows:
                dst.execute(sa.insert(table), rows)
        person = {u: i for i, u in src.execute(sa.text("SELECT id, username FROM person"))}
        child = {r: i for i, r in src.execute(sa.text("SELECT id, ref FROM child"))}
    source.dispose()
    ada = person["iro.ada"]

    def t(text_: str) -> datetime:
        return datetime.fromisoformat(text_).replace(tzinfo=UTC)

    def clocks(stage_due: str, resolution_due: str) -> dict[str, Any]:
        return {"stage_due": stage_due, "resolution_due": resolution_due, "on_hold": False}

    alerts = [
        # 1: referred to Cafcass from stage 2 (then an end), with the legal advice recorded.
        old_alert(1, child["R100"], ada, "referred", "cafcass", t("2027-03-01T09:00"),
                  date(2027, 3, 18), date(2027, 3, 29), t("2027-03-15T10:00"), 4),
        # 2: only ever informal.
        old_alert(2, child["R101"], person["iro.ben"], "open", "informal",
                  t("2027-03-02T09:00"), date(2027, 3, 9), date(2027, 3, 30), None, 1),
        # 3: escalated to stage 1 at 00:30 on Tuesday 6 April 2027 in London (23:30 on the 5th
        # in UTC), then held for two working days.
        old_alert(3, child["R200"], person["iro.ben"], "open", "stage1",
                  t("2027-04-01T09:00"), date(2027, 4, 15), date(2027, 4, 29), None, 4),
    ]
    events = [
        *old_events(1, 1, [
            (t("2027-03-01T09:00"), "iro.ada", "raised", None, "informal",
             clocks("2027-03-08", "2027-03-29")),
            (t("2027-03-04T10:00"), "iro.ada", "escalated", "informal", "stage1",
             clocks("2027-03-11", "2027-03-29")),
            (t("2027-03-11T10:00"), "iro.ada", "escalated", "stage1", "stage2",
             clocks("2027-03-18", "2027-03-29")),
            (t("2027-03-15T10:00"), "iro.ada", "referred", "stage2", "cafcass",
             {**clocks("2027-03-18", "2027-03-29"), "legal_advice": "Ms Okafor, legal services",
              "advised_on": "2027-03-12"}),
        ]),
        *old_events(2, 5, [(t("2027-03-02T09:00"), "iro.ben", "raised", None, "informal",
                            clocks("2027-03-09", "2027-03-30"))]),
        *old_events(3, 6, [
            (t("2027-04-01T09:00"), "iro.ben", "raised", None, "informal",
             clocks("2027-04-09", "2027-04-29")),
            (t("2027-04-05T23:30"), "iro.ben", "escalated", "informal", "stage1",
             clocks("2027-04-13", "2027-04-29")),
            (t("2027-04-07T09:00"), "iro.ben", "held", "stage1", "stage1",
             {**clocks("2027-04-13", "2027-04-29"), "on_hold": True, "until": "2027-04-20"}),
            (t("2027-04-09T09:00"), "iro.ben", "resumed", "stage1", "stage1",
             {**clocks("2027-04-15", "2027-05-03"), "held_working_days": 2}),
        ]),
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(at_0006(engine, "alert")), alerts)
        conn.execute(sa.insert(at_0006(engine, "event")), events)

    def log(conn: sa.Connection) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT id, alert_id, seq, kind, from_stage, to_stage, comment FROM event"
            " ORDER BY id"))]

    with engine.connect() as conn:
        before = log(conn)
    assert len(before) == 9

    db.upgrade(engine)
    with engine.connect() as conn:
        assert log(conn) == before  # no event lost or changed
        rows = {r.id: r for r in conn.execute(sa.text(
            "SELECT id, status, stage, closed_at, formal_since, resolution_due, stage_due"
            " FROM alert"))}
        referral = conn.execute(sa.text(
            "SELECT alert_id, referred_on, referred_by_id, legal_advice, advised_on, response"
            " FROM referral")).all()

    def day(value: Any) -> date | None:
        return None if value is None else date.fromisoformat(str(value)[:10])

    # 1: open again at stage 2, its referral on record. The formal clock from Thursday
    # 4 March: 5 (1), 8-12 (6), 15-19 (11), 22-25 (15), 30, 31 March, 1, 2 April (19), Monday
    # 5 April (20); stage 2's due date already within it.
    one = rows[1]
    assert (one.status, one.stage, one.closed_at) == ("open", "stage2", None)
    assert (day(one.formal_since), day(one.resolution_due), day(one.stage_due)) == (
        date(2027, 3, 4), date(2027, 4, 5), date(2027, 3, 18))
    assert [(a, day(on), by, advice, day(advised), response)
            for a, on, by, advice, advised, response in referral] == [
        (1, date(2027, 3, 15), ada, "Ms Okafor, legal services", date(2027, 3, 12), None)]
    # 2: informal only: no formal clock.
    assert (rows[2].status, rows[2].formal_since, rows[2].resolution_due) == (
        "open", None, None)
    # 3: formal since Tuesday 6 April (London): 7-9 (3), 12-16 (8), 19-23 (13), 26-30 (18),
    # 4 May (19; 3 May is a bank holiday), 5 May (20); and the two working days held: 6, 7 May.
    assert (day(rows[3].formal_since), day(rows[3].resolution_due)) == (
        date(2027, 4, 6), date(2027, 5, 7))

    # The first timescale run after the upgrade: the referral's old stage is not escalated
    # or chased, and no manager is asked to acknowledge a stage entered before acknowledging
    # existed. (Alert 3's due-date reminder, on the 14th, is as before.)
    from sqlmodel import Session

    from drp.calendar import WorkingCalendar
    from drp.timescales import find_due
    with Session(engine) as session:
        found = find_due(session, protocol, WorkingCalendar(), date(2027, 4, 14),
                         ack_before=t("2027-04-14T00:00"))
    assert 1 not in found.overdue and found.ack_remind == [] and found.remind == [3]

    # Down to 0006 and up again: the referral is an end again there, and comes back.
    db.downgrade(engine, "0006")
    with engine.connect() as conn:
        assert log(conn) == before
        assert conn.execute(sa.text("SELECT status, stage FROM alert WHERE id = 1")).one() == (
            "referred", protocol.cafcass.key)
        assert conn.execute(sa.text(
            "SELECT count(*) FROM alert WHERE resolution_due IS NULL")).scalar_one() == 0
    db.upgrade(engine)
    with engine.connect() as conn:
        assert log(conn) == before
        again = {r.id: (r.status, r.stage, day(r.formal_since), day(r.resolution_due))
                 for r in conn.execute(sa.text(
                     "SELECT id, status, stage, formal_since, resolution_due FROM alert"))}
        assert conn.execute(sa.text("SELECT count(*) FROM referral")).scalar_one() == 1
    assert again == {1: ("open", "stage2", date(2027, 3, 4), date(2027, 4, 5)),
                     2: ("open", "informal", None, None),
                     3: ("open", "stage1", date(2027, 4, 6), date(2027, 5, 7))}
    engine.dispose()


@backends
def test_upgrading_records_the_fortnights_whose_digest_is_already_queued(db_url: str) -> None:
    """0008: a fortnight with a digest in the outbox has run (the scheduled run says so)."""
    engine = db.make_engine(db_url)
    db.upgrade(engine, "0007")
    with engine.begin() as conn:
        for key, at in (("digest:2027-03-08:sm.hal", "2027-03-09 08:00:01"),
                        ("digest:2027-03-08:irom.cat", "2027-03-09 08:00:00"),
                        ("digest:2027-03-22:sm.hal", "2027-03-22 08:00:00"),
                        ("1:reminder:sm.hal", "2027-03-23 08:00:00")):
            conn.execute(text(
                "INSERT INTO outbox (key, message, recipient, subject, text_body, html_body,"
                " context, status, attempts, created_at, next_attempt_at) VALUES (:key,"
                " 'digest', 'x', '', '', '', '{}', 'sent', 0, :at, :at)"), {"key": key, "at": at})
    db.upgrade(engine)
    from sqlmodel import Session, select

    from drp.models import DigestRun
    with Session(engine) as s:
        runs = {r.fortnight: r.ran_at for r in s.exec(select(DigestRun))}
    assert runs == {date(2027, 3, 8): datetime(2027, 3, 9, 8, 0, tzinfo=UTC),
                    date(2027, 3, 22): datetime(2027, 3, 22, 8, 0, tzinfo=UTC)}
    db.downgrade(engine, "0007")
    db.upgrade(engine)
    engine.dispose()


def _catalogue(conn: Any) -> dict[str, Any]:
    """What a schema is made of, without its name: columns, indexes, constraints, triggers,
    functions, sequences and the migration it is at."""
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(str(v).replace(schema + ".", "") for v in row)
                      for row in conn.execute(text(sql), {"s": schema}))

    return {
        "columns": rows("SELECT table_name, column_name, data_type, is_nullable,"
                        " column_default FROM information_schema.columns"
                        " WHERE table_schema = :s"),
        "indexes": rows("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s"),
        "constraints": rows(
            "SELECT c.conname, c.conrelid::regclass, pg_get_constraintdef(c.oid)"
            " FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
            " WHERE n.nspname = :s"),
        "triggers": rows(
            "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t"
            " JOIN pg_class r ON r.oid = t.tgrelid JOIN pg_namespace n"
            " ON n.oid = r.relnamespace WHERE n.nspname = :s AND NOT t.tgisinternal"),
        "functions": rows("SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n"
                          " ON n.oid = p.pronamespace WHERE n.nspname = :s"),
        "sequences": rows("SELECT sequence_name, start_value FROM information_schema.sequences"
                          " WHERE sequence_schema = :s"),
        "version": rows("SELECT version_num FROM alembic_version"),
    }


@pytest.mark.postgres
def test_a_replayed_test_schema_is_the_one_the_migrations_make(protocol: Protocol) -> None:
    """tests/support/databases.pg_fill (each PostgreSQL test's schema, replayed from statements
    recorded once a process) makes what the migrations, the organisation's load and the test
    passwords make: the same catalogue and the same rows."""
    from sqlmodel import select

    from drp.models import Person

    from .conftest import TEST_PASSWORD, pg_schema
    from .support import databases

    found = []
    for replayed in (False, True):
        with pg_schema() as url:
            engine = db.make_engine(url)
            try:
                if replayed:
                    databases.pg_fill(engine, "people")
                else:
                    db.upgrade(engine)
                    with db.transaction(engine) as s:
                        load_org(s, DATA / "org.yaml", protocol)
                with engine.connect() as conn:
                    shape = _catalogue(conn)
                    counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                              for t in sorted({c[0] for c in shape["columns"]})}
                    people = sorted(conn.execute(text(
                        "SELECT username, name, email FROM person")).all())
                with db.transaction(engine) as s:
                    hashes = {p.password_hash for p in s.exec(select(Person))}
            finally:
                engine.dispose()
        found.append((shape, counts, people, hashes))
    (migrated, migrated_counts, migrated_people, _), (replay, counts, people, hashes) = found
    assert replay == migrated
    assert counts == migrated_counts and sum(counts.values()) > 20
    assert people == migrated_people
    from argon2 import PasswordHasher

    assert len(hashes) == 1 and PasswordHasher().verify(hashes.pop(), TEST_PASSWORD)


@pytest.mark.postgres
def test_a_pooled_schema_comes_back_as_the_migrations_leave_it(protocol: Protocol) -> None:
    """tests/support/pgpool.py: a PostgreSQL test's schema, used again by the next test, comes
    back with the rows and sequences a new one has (whatever the test before wrote); one whose
    catalogue a test changed is dropped, not used again."""
    from .conftest import pg_schema
    from .support import databases, pgpool

    def state(url: str) -> tuple[Any, ...]:
        engine = db.make_engine(url)
        try:
            databases.migrate(engine, "org")
            with engine.connect() as conn:
                shape = _catalogue(conn)
                tables = sorted({c[0] for c in shape["columns"]})
                # (each fill draws new random tokens in org_version and data_version: their
                # rows are counted, not compared)
                rows = {t: sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{t}"'))))
                        if t not in ("org_version", "data_version") else conn.execute(text(
                            f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
                conn.commit()
                with conn.begin():
                    next_ids = {t: conn.execute(text(
                        f"SELECT nextval(pg_get_serial_sequence('{t}', 'id'))")).scalar_one()
                        for t in ("alert", "event", "outbox", "person")}
                    conn.execute(text("UPDATE person SET name = 'Changed' WHERE id = 1"))
                    conn.execute(text("DELETE FROM team_member"))
                    conn.execute(text("INSERT INTO council (id, name) VALUES (999, 'Left')"))
        finally:
            engine.dispose()
        return shape, rows, next_ids

    with pg_schema() as url:  # a new schema, never pooled
        fresh = state(url)
    names = []
    for _ in range(2):
        with pg_schema(pooled=True) as url:
            names.append(pgpool.schema_of(url))
            assert state(url) == fresh
    assert names[0] == names[1]  # the second was the first, used again

    with pg_schema(pooled=True) as url:
        engine = db.make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE extra (id integer)"))
        engine.dispose()
        changed = pgpool.schema_of(url)
    assert changed not in pgpool._free
    with pgpool._engine(url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname = :n"),
                            {"n": changed}).scalar_one() == 0
