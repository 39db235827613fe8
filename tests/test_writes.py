"""A command's own writes without the ORM's flush (drp/alerts/writes.py): the rows are those
the flush wrote, and the common commands take that path."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from drp import db
from drp.alerts import ActionIn, AlertService, unit
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol
from drp.models import Alert, Event, new_row

from .conftest import LONDON, Run, backends


def story(run: Run, engine: Engine, ref: str, iro: str) -> list[Any]:
    """Raise, respond, escalate, respond with an agreed action (the flush's path: an action is
    new), escalate with the action open (its day read), hold, resume, resolve: the rows after
    each."""
    aid = int(run("2027-03-22T09:00", lambda s: s.raise_alert(iro, ref, "No care plan")).id)
    seen = [rows(engine, aid, iro)]
    for when, command in (
        ("2027-03-23T10:00", lambda s: s.respond(aid, "sw.dan", "Report being written")),
        ("2027-03-24T10:00", lambda s: s.escalate(aid, iro, "Report still not shared")),
        ("2027-03-25T10:00", lambda s: s.respond(
            aid, "tm.fay", "Will share", [ActionIn("Share report", date(2027, 4, 9))])),
        ("2027-03-30T10:00", lambda s: s.escalate(aid, iro, "Not shared")),
        ("2027-03-31T10:00", lambda s: s.hold(aid, iro, "Court hearing", date(2027, 4, 14))),
        ("2027-04-15T10:00", lambda s: s.resume(aid, iro, "Hearing over")),
        ("2027-04-16T10:00", lambda s: s.resolve(aid, iro, "Report shared")),
    ):
        run(when, command)
        seen.append(rows(engine, aid, iro))
    return seen


def rows(engine: Engine, aid: int, iro: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The alert's row and its events' rows, without what differs between two children."""
    with engine.connect() as conn:
        alert = dict(conn.execute(text("SELECT * FROM alert WHERE id = :a"), {"a": aid})
                     .one()._mapping)
        events = [dict(r._mapping) for r in conn.execute(
            text("SELECT * FROM event WHERE alert_id = :a ORDER BY seq"), {"a": aid})]
    for name in ("id", "child_id", "iro_id"):
        alert.pop(name)
    for e in events:
        e.pop("id"), e.pop("alert_id")
        for name in ("actor", "iro"):
            e[name] = "IRO" if e[name] == iro else e[name]
    return alert, events


@backends
def test_the_direct_writes_are_the_rows_the_flush_writes(
    run: Run, org: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct = story(run, org, "R100", "iro.ada")
    # The same story for a child like R100, every write through the ORM's flush.
    monkeypatch.setattr(unit, "write_directly", lambda session: False)
    monkeypatch.setattr(unit, "insert_directly", lambda session, alert: False)
    flushed = story(run, org, "R101", "iro.ben")
    assert len(direct[-1][1]) == 9 and direct[-1][0]["status"] == "resolved"
    for step, (mine, theirs) in enumerate(zip(direct, flushed, strict=True)):
        assert mine == theirs, f"after step {step}"


@backends
def test_raise_respond_and_escalate_write_without_the_flush(run: Run) -> None:
    """The ORM's flush (a fifth of a command, bench/README.md) writes none of the alert's
    or events' rows of the commands people make most."""
    flushed: list[str] = []

    def spy(session: Any, _context: Any, _instances: Any) -> None:
        flushed.extend(type(o).__name__ for o in (*session.new, *session.dirty)
                       if isinstance(o, (Alert, Event)))

    event.listen(Session, "before_flush", spy)
    try:
        aid = int(run("2027-03-22T09:00",
                      lambda s: s.raise_alert("iro.ada", "R100", "No care plan")).id)
        run("2027-03-23T10:00", lambda s: s.respond(aid, "sw.dan", "Report being written"))
        run("2027-03-24T10:00", lambda s: s.escalate(aid, "iro.ada", "Not shared"))
    finally:
        event.remove(Session, "before_flush", spy)
    assert flushed == []


def _service(session: Any, protocol: Protocol, calendar: WorkingCalendar,
             when: str) -> AlertService:
    return AlertService(session, protocol=protocol, calendar=calendar, tz=LONDON,
                        clock=FixedClock(parse_instant(when, LONDON)))


@backends
def test_commands_after_direct_writes_in_one_session_see_them(
    org: Engine, protocol: Protocol, calendar: WorkingCalendar,
) -> None:
    """Raise, respond and escalate in one session (as a script or a flow might): each later
    command starts from the alert as written (its version, its events), not as first read."""
    with db.transaction(org) as session:
        aid = int(_service(session, protocol, calendar, "2027-03-22T09:00").raise_alert(
            "iro.ada", "R100", "No care plan").id)
        _service(session, protocol, calendar, "2027-03-23T10:00").respond(
            aid, "sw.dan", "Report being written")
        _service(session, protocol, calendar, "2027-03-24T10:00").escalate(
            aid, "iro.ada", "Not shared")
        # The events are in the session as a flush leaves them (the case notes' webhook reads
        # each by its id, without a query).
        kept = [o for o in session.identity_map.values() if isinstance(o, Event)]
        assert sorted(e.seq for e in kept) == [1, 2, 3]
    alert, events = rows(org, aid, "iro.ada")
    assert (alert["stage"], alert["version"], alert["last_seq"]) == ("stage1", 3, 3)
    assert [(e["seq"], e["kind"]) for e in events] == [
        (1, "raised"), (2, "responded"), (3, "escalated")]


@backends
def test_a_rolled_back_direct_write_leaves_nothing_in_the_session(
    org: Engine, protocol: Protocol, calendar: WorkingCalendar,
) -> None:
    """A raise rolled back (a later step refused) is gone from the session as from the
    database: the same session raises again, as it could after the ORM's flush."""
    with Session(org) as session:
        first = _service(session, protocol, calendar, "2027-03-22T09:00").raise_alert(
            "iro.ada", "R100", "No care plan")
        session.rollback()
        assert first not in session
        again = _service(session, protocol, calendar, "2027-03-22T09:05").raise_alert(
            "iro.ada", "R100", "No care plan again")
        session.commit()
        aid = int(again.id)
    with org.connect() as conn:
        assert conn.execute(text("SELECT id, summary FROM alert")).all() == [
            (aid, "No care plan again")]


@backends
def test_a_new_row_is_what_its_constructor_makes(org: Engine) -> None:
    """`models.new_row` (a command's Alert and Event, without the constructor's instrumented
    sets) makes the object `Alert(...)` makes: the same fields, defaults and pydantic
    bookkeeping, and the same row when the ORM's flush writes it."""
    at = parse_instant("2027-03-22T09:00", LONDON)
    values = {"child_id": 1, "iro_id": 1, "stage": "informal", "summary": "No care plan",
              "detail": None, "theme": "care_planning", "raised_at": at,
              "stage_entered_at": at, "stage_due": date(2027, 3, 29)}
    made, built = Alert(**values), new_row(Alert, **values)

    def fields(obj: Any) -> dict[str, Any]:
        return {k: v for k, v in vars(obj).items() if k != "_sa_instance_state"}

    assert fields(built) == fields(made) and len(fields(made)) == len(Alert.model_fields)
    assert built.__pydantic_fields_set__ == made.__pydantic_fields_set__
    assert built.model_dump() == made.model_dump()
    with pytest.raises(TypeError, match="Alert has no field stagee"):
        new_row(Alert, **values, stagee="x")
    ids = []
    with Session(org) as session:
        for alert in (made, built):
            session.add(alert)
            session.flush()
            ids.append(alert.id)
            event_values = {"alert_id": alert.id, "seq": 1, "at": at, "actor": "iro.ada",
                            "kind": "raised", "to_stage": "informal", "data": {"a": 1}}
            session.add(Event(**event_values) if alert is made
                        else new_row(Event, **event_values))
            session.flush()
        session.commit()
    with org.connect() as conn:
        alerts = [dict(conn.execute(text("SELECT * FROM alert WHERE id = :a"), {"a": i})
                       .one()._mapping) for i in ids]
        events = [dict(conn.execute(text("SELECT * FROM event WHERE alert_id = :a"), {"a": i})
                       .one()._mapping) for i in ids]
    for row in (*alerts, *events):
        row.pop("id"), row.pop("alert_id", None)
    assert alerts[0] == alerts[1] and events[0] == events[1]
