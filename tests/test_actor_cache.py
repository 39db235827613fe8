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
from sqlmodel import Session

from drp import db
from drp.errors import NotFound
from drp.ladder import access

from .conftest import Run, backends

DAY = date(2027, 3, 22)
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
    with Session(org) as session:
        session.connection().execute(
            text("UPDATE person SET name = 'Fay Renamed' WHERE username = 'tm.fay'"))
        _, actor, _ = access.actor_named(session, "tm.fay", DAY) or (None, None, None)
        assert actor is not None and actor.name == "Fay Renamed"  # its own change, unsaved
        session.rollback()
    found = named(org, "tm.fay")
    assert found is not None and found[1].name != "Fay Renamed"


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
    assert len(reads) == 1 and reads[0].startswith(
        "SELECT org_version.token FROM org_version WHERE"), reads
