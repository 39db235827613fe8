"""What a process reads of the organisation (a person acting, the line's people, today's cover
periods) is kept under the organisation's token (drp.orgtoken, migration 0018): any change to
what it was read from, by any writer, in any process, is seen by the next command; a change
rolled back, or not yet committed, is never taken for the organisation as it stands."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from drp import db, orgtoken
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.directory import Directory
from drp.errors import NotFound
from drp.ladder import access
from drp.ladder.protocol import Protocol
from drp.models import Cover, Person
from drp.notify import Notifier
from notifications.render import Renderer

from .conftest import LONDON, Run, backends

DAY = date(2027, 3, 22)
# What the token guards (migration 0018's triggers).
WATCHED = ("person", "person_role", "team_member", "cover", "team", "service", "council")
# A write to each table a person acting is read from (the statement and its parameters).
WRITES = [
    ("person", "UPDATE person SET name = name WHERE username = 'tm.fay'"),
    ("person_role", "DELETE FROM person_role WHERE role = 'admin'"),
    ("person_role", "INSERT INTO person_role (person_id, role) SELECT id, 'admin' FROM person"
     " WHERE username = 'sw.dan'"),
    ("team_member", "UPDATE team_member SET team_id = team_id"),
    ("cover", "INSERT INTO cover (person_id, deputy_id, starts, ends, source, created_by,"
     " created_at) SELECT a.id, b.id, '2027-03-22', '2027-03-26', 'command', 'admin',"
     " '2027-03-21 09:00:00' FROM person a, person b WHERE a.username = 'iro.ada'"
     " AND b.username = 'iro.ben'"),
    ("team", "UPDATE team SET name = name"),
    ("service", "UPDATE service SET name = name"),
    ("council", "UPDATE council SET name = name"),
]


def token(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT token FROM org_version")).scalar_one())


def named(engine: Engine, username: str, day: date = DAY) -> Any:
    with Session(engine) as session:
        return access.actor_named(session, username, day)


@backends
@pytest.mark.parametrize(("table", "statement"), WRITES, ids=[f"{t}-{s.split()[0].lower()}"
                                                              for t, s in WRITES])
def test_every_write_to_what_an_actor_is_read_from_changes_the_token(
    org: Engine, table: str, statement: str,
) -> None:
    before = token(org)
    with org.begin() as conn:
        conn.execute(text(statement))
    assert token(org) != before, table


@backends
def test_a_change_in_another_process_is_seen_by_the_next_command(org: Engine, run: Run
                                                                 ) -> None:
    aid = int(run("2027-03-22T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x")).id)
    assert named(org, "tm.fay", date(2027, 3, 23)) is not None  # kept under the token
    # Another process (its own engine) takes tm.fay out of the organisation.
    other = db.make_engine(org.url.render_as_string(hide_password=False))
    try:
        with other.begin() as conn:
            conn.execute(text("UPDATE person SET active = false WHERE username = 'tm.fay'"))
    finally:
        other.dispose()
    with pytest.raises(NotFound, match="no active person 'tm.fay'"):
        run("2027-03-23T09:00", lambda s: s.respond(aid, "tm.fay", "on it"))


@backends
def test_what_a_rolled_back_change_showed_is_not_kept(org: Engine) -> None:
    """Not once a different change commits either (a token that counted changes would come
    back to the rolled-back one's); just after the rollback: the next test."""
    assert named(org, "tm.fay") is not None
    with Session(org) as session:
        session.connection().execute(
            text("UPDATE person SET name = 'Fay Renamed' WHERE username = 'tm.fay'"))
        _, actor, _ = access.actor_named(session, "tm.fay", DAY) or (None, None, None)
        assert actor is not None and actor.name == "Fay Renamed"  # its own change, unsaved
        session.rollback()
    with org.begin() as conn:
        conn.execute(text("UPDATE person SET name = 'Ben Renamed' WHERE username = 'iro.ben'"))
    found = named(org, "tm.fay")
    assert found is not None and found[1].name != "Fay Renamed"


@backends
def test_a_change_the_session_has_not_written_yet_is_read_and_not_kept(org: Engine) -> None:
    assert named(org, "tm.fay") is not None
    with Session(org) as session:
        person = session.exec(select(Person).where(Person.username == "tm.fay")).one()
        person.name = "Fay Renamed"  # pending: the read writes it first (`people_rows`)
        _, actor, _ = access.actor_named(session, "tm.fay", DAY) or (None, None, None)
        assert actor is not None and actor.name == "Fay Renamed"
        session.rollback()
    found = named(org, "tm.fay")
    assert found is not None and found[1].name != "Fay Renamed"


@backends
def test_the_organisation_changed_under_an_older_schema_is_not_taken_for_what_was_kept(
    org: Engine,
) -> None:
    """Migrated down past the token, changed, migrated up: a process that kept a person
    acting under the token the upgrade first set does not take the change for that."""
    db.downgrade(org, "0017")
    db.upgrade(org)
    kept = named(org, "hos.ivy")
    assert kept is not None and "head_of_service" in kept[1].roles
    db.downgrade(org, "0017")
    with org.begin() as conn:
        conn.execute(text("DELETE FROM person_role WHERE role = 'head_of_service'"))
    db.upgrade(org)
    found = named(org, "hos.ivy")
    assert found is not None and "head_of_service" not in found[1].roles


@backends
def test_every_table_has_its_triggers_for_every_kind_of_write(org: Engine) -> None:
    """What the writes above cannot each reach: every table, every verb (a migration that
    rebuilds a table on SQLite drops its triggers); and the tables the token guards are those
    the code takes for the organisation (a model added to it needs its triggers)."""
    assert set(WATCHED) == orgtoken.WATCHED
    with org.connect() as conn:
        if org.dialect.name == "postgresql":
            # This schema's triggers only (other tests' schemas have the same names); tgtype's
            # bits: 1 for each row, 4 INSERT, 8 DELETE, 16 UPDATE, 32 TRUNCATE.
            found = set(map(tuple, conn.execute(text(
                "SELECT c.relname, t.tgname, t.tgdeferrable, t.tgtype & 61 FROM pg_trigger t"
                " JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname LIKE '%\\_org\\_%'"
                " AND c.relnamespace = current_schema()::regnamespace")).all()))
            wanted = {(table, f"{table}_{name}", deferrable, kinds) for table in WATCHED
                      for name, deferrable, kinds in (
                          ("org_changing", False, 4 | 8 | 16 | 32),  # each statement
                          ("org_changed", True, 1 | 4 | 8 | 16),  # each row, at commit
                          ("org_truncated", False, 32))}
            assert found == wanted, (found - wanted, wanted - found)
        else:
            names = set(conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
            assert {f"{t}_org_changed_{v}" for t in WATCHED
                    for v in ("insert", "update", "delete")} <= names


@backends
def test_a_person_acting_read_again_costs_only_the_token(org: Engine) -> None:
    first = named(org, "iro.ada")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(org, "before_cursor_execute", seen)
    try:
        again = named(org, "iro.ada")
    finally:
        event.remove(org, "before_cursor_execute", seen)
    assert first is not None and again is not None and again[1] == first[1]
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == 1 and reads[0].startswith("SELECT org_version.token, ")
    assert " FROM org_version WHERE " in reads[0] and "person" not in reads[0], reads


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_writers_of_different_people_do_not_wait_for_each_other(org: Engine) -> None:
    """The token's row is changed at each writer's commit, not at its first write: a
    transaction changing one person does not hold up another changing someone else (held
    from the first write, the row made writers of different people deadlock)."""
    before = token(org)
    with org.connect() as one, org.connect() as two:
        one.execute(text("UPDATE person SET name = 'Fay R' WHERE username = 'tm.fay'"))
        two.execute(text("SET LOCAL lock_timeout = '2s'"))
        two.execute(text("UPDATE person SET name = 'Ben R' WHERE username = 'iro.ben'"))
        two.commit()
        after_two = token(org)
        one.commit()
    assert before != after_two != token(org)


def _raise_with_mail(engine: Engine, protocol: Protocol, when: str) -> dict[str, str]:
    """Raise a concern for R100 (iro.ada) with e-mail: its outbox rows' addresses by reader."""
    with db.transaction(engine) as session:
        alert = AlertService(session, protocol=protocol, calendar=WorkingCalendar(), tz=LONDON,
                             clock=FixedClock(parse_instant(when, LONDON)),
                             notifier=Notifier(renderer=Renderer(), base_url="https://x/")
                             ).raise_alert("iro.ada", "R100", "x", separate=True)
        aid = alert.id
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT recipient, to_addr FROM outbox WHERE alert_id = :a"),
                                 {"a": aid}).all())


@backends
def test_an_address_changed_in_another_process_is_where_the_next_mail_goes(
    org: Engine, protocol: Protocol,
) -> None:
    """The line's people a command names and e-mails are kept under the token too."""
    first = _raise_with_mail(org, protocol, "2027-03-22T09:00")
    assert first["tm.fay"] == _raise_with_mail(org, protocol, "2027-03-22T09:05")["tm.fay"]
    other = db.make_engine(org.url.render_as_string(hide_password=False))
    try:
        with other.begin() as conn:
            conn.execute(text("UPDATE person SET email = 'fay.new@riverside.example'"
                              " WHERE username = 'tm.fay'"))
    finally:
        other.dispose()
    assert _raise_with_mail(org, protocol, "2027-03-22T09:10")["tm.fay"] == (
        "fay.new@riverside.example")


@backends
def test_a_transaction_that_writes_to_the_organisation_lets_its_token_go(org: Engine
                                                                         ) -> None:
    """Its later reads of people are read (they see its change) and not kept (the change is
    not, or not yet, anyone else's)."""
    with Session(org) as session:
        fay = session.exec(select(Person).where(Person.username == "tm.fay")).one()
        assert fay.id is not None
        token = orgtoken.current(session)
        assert token is not None and orgtoken.held(session) == token
        Directory(session).load([fay.id])  # kept under the token
        session.connection().execute(text(
            "UPDATE person SET email = 'fay.new@riverside.example' WHERE username = 'tm.fay'"))
        assert orgtoken.held(session) is None
        directory = Directory(session)
        directory.load([fay.id])
        assert directory.people[fay.id].email == "fay.new@riverside.example"
        assert orgtoken.kept(session).people[fay.id][1].email != "fay.new@riverside.example"
        session.rollback()


@backends
def test_the_token_held_is_let_go_when_the_transaction_ends(org: Engine) -> None:
    """Whether the connection goes back to the pool or stays with its owner (a session bound
    to a connection, as the flows' and the tests' are)."""
    for end in ("commit", "rollback"):
        with Session(org) as session:
            assert orgtoken.current(session) is not None
            getattr(session, end)()
            assert orgtoken.held(session) is None  # (the same pooled connection, a new one)
        with org.connect() as conn, Session(bind=conn) as session:
            assert orgtoken.current(session) is not None
            getattr(conn, end)()
            assert orgtoken.held(session) is None


def test_what_may_write_what_the_token_guards() -> None:
    from sqlalchemy import insert, update
    from sqlalchemy import select as sa_select

    def may(statement: Any) -> bool:
        engine = db.make_engine("sqlite://")
        seen: list[bool] = []

        def check(_c: Any, _cur: Any, sql: str, _p: Any, context: Any, _m: bool) -> None:
            seen.append(orgtoken._may_write(sql, context))

        event.listen(engine, "before_cursor_execute", check)
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE alert (id INTEGER PRIMARY KEY, summary TEXT)")
            conn.exec_driver_sql("CREATE TABLE cover (id INTEGER PRIMARY KEY, reason TEXT)")
            seen.clear()
            conn.execute(statement)
        engine.dispose()
        return seen == [True]

    alert = sa.table("alert", sa.column("id"), sa.column("summary"))
    cover = sa.table("cover", sa.column("id"), sa.column("reason"))
    assert not may(sa_select(alert.c.id))
    assert not may(text("SELECT id FROM cover"))
    assert not may(insert(alert).values(id=1, summary="x"))
    assert not may(update(alert).values(summary="y"))
    assert may(update(cover).values(reason="y"))
    assert may(insert(cover).values(id=1, reason="x"))
    assert may(text("UPDATE alert SET summary = 'z'"))  # text: anything but a read might


# The session's own changes not yet written, while it holds a token (a review found them
# skipped: what was kept was taken without the statement that would have written them).
@backends
def test_a_pending_change_to_a_person_is_seen_while_the_token_is_held(org: Engine) -> None:
    named(org, "tm.fay")
    with Session(org) as s:
        assert orgtoken.current(s) is not None  # held, as a command's first read holds it
        fay = s.exec(select(Person).where(Person.username == "tm.fay")).one()
        fay.active = False  # pending, not written
        found = access.actor_named(s, "tm.fay", DAY)
        assert found is not None and not found[0].active
        s.rollback()


@backends
def test_a_pending_address_is_the_directorys_while_the_token_is_held(org: Engine) -> None:
    with Session(org) as s:
        fay = s.exec(select(Person).where(Person.username == "tm.fay")).one()
        fid = fay.id
    with Session(org) as s:
        orgtoken.current(s)
        Directory(s).load([fid])
    with Session(org) as s:
        orgtoken.current(s)
        fay = s.get(Person, fid)
        fay.email = "new@x.example"
        d = Directory(s)
        d.load([fid])
        assert d.people[fid].email == "new@x.example", d.people[fid].email
        s.rollback()


@backends
def test_a_pending_end_of_cover_is_seen_while_the_token_is_held(org: Engine) -> None:
    with Session(org) as s:
        ids = dict(s.execute(sa.select(Person.username, Person.id)).all())
        s.add(Cover(person_id=ids["iro.ada"], deputy_id=ids["iro.ben"], starts=DAY, ends=DAY,
                    source="command", created_by="admin",
                    created_at=datetime(2027, 3, 21, tzinfo=UTC)))
        s.commit()
    key = ("deputies", DAY)
    with Session(org) as s:
        orgtoken.current(s)
        assert orgtoken.kept_or_read(s, key, lambda: access.deputies_on(s, DAY))
    with Session(org) as s:
        orgtoken.current(s)
        row = s.exec(select(Cover)).one()
        row.ended_at = datetime(2027, 3, 22, 8, tzinfo=UTC)   # pending: cover ended
        found = orgtoken.kept_or_read(s, key, lambda: access.deputies_on(s, DAY))
        assert found == {}, found
        s.rollback()
