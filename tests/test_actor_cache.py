"""A person acting is read once a process and kept under the organisation's token
(drp.ladder.actors.actor_named, migration 0018): any change to what it was read from, by any
writer, in any process, is seen by the next command; a change rolled back is never taken for
the organisation as it stands."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from drp import db
from drp.errors import NotFound
from drp.ladder import access
from drp.models import Person

from .conftest import Run, backends

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
    rebuilds a table on SQLite drops its triggers)."""
    with org.connect() as conn:
        if org.dialect.name == "postgresql":
            found = {(table, name.rsplit("_", 1)[-1], bool(deferred), events) for table, name,
                     deferred, events in conn.execute(text(
                         "SELECT event_object_table, trigger_name, t.tgdeferrable,"
                         " string_agg(event_manipulation, ',' ORDER BY event_manipulation)"
                         " FROM information_schema.triggers JOIN pg_trigger t"
                         " ON t.tgname = trigger_name WHERE trigger_name LIKE '%org_%'"
                         " AND trigger_schema = current_schema()"
                         " GROUP BY 1, 2, 3"))}
            wanted = {(table, "changing", False, "DELETE,INSERT,UPDATE") for table in WATCHED}
            wanted |= {(table, "changed", True, "DELETE,INSERT,UPDATE") for table in WATCHED}
            assert wanted <= found, wanted - found
            truncate = set(conn.execute(text(
                "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE t.tgname LIKE '%_org_truncated' AND c.relnamespace ="
                " current_schema()::regnamespace")).scalars())
            assert truncate == set(WATCHED)
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
    assert reads[0].split(" FROM ")[1:] == ["org_version WHERE org_version.id = " + (
        "%(id_1)s::INTEGER" if org.dialect.name == "postgresql" else "?")], reads


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
