"""Casework beside the ladder, through the service layer on SQLite and PostgreSQL: good
practice (no ladder, no clock, the team manager and head of service told), moving a misfiled
alert to the right child, linking related alerts, repeat concerns and acknowledgement."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import db
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.errors import BadValue, InvalidTransition, NotFound, NotPermitted
from drp.ladder.protocol import Protocol
from drp.models import Alert, AlertLink, Cover, Event, Person
from drp.notify import Notifier
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy
from notifications.models import OutboxMessage
from notifications.render import Renderer

from .conftest import LONDON, Run, backends


@pytest.fixture
def act(org: Engine, protocol: Protocol, calendar: WorkingCalendar) -> Run:
    """One unit of work as of an instant, with e-mails queued in the outbox."""
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
    taxonomy = load_taxonomy(CONFIG_DIR / "themes.yaml")

    def _run(when: str, fn: Callable[[AlertService], Any]) -> Any:
        with db.transaction(org) as session:
            return fn(AlertService(session, protocol=protocol, calendar=calendar,
                                   clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON,
                                   taxonomy=taxonomy, notifier=notifier))

    return _run


def mails(org: Engine, alert_id: int) -> set[tuple[str, str]]:
    """(message, recipient) of every e-mail queued for the alert."""
    with Session(org) as s:
        return {(m.message, m.recipient) for m in s.exec(
            select(OutboxMessage).where(OutboxMessage.alert_id == alert_id))}


def snapshot(org: Engine) -> tuple[Any, ...]:
    """Every alert's child, IRO, status and version, and the counts of events, links and
    e-mails: what a refusal must leave as it was."""
    with Session(org) as s:
        alerts = [(a.id, a.child_id, a.iro_id, a.status, a.version, a.acknowledged_at)
                  for a in s.exec(select(Alert).order_by(col(Alert.id)))]
        counts = [s.exec(select(func.count()).select_from(m)).one()
                  for m in (Event, AlertLink, OutboxMessage)]
    return (alerts, counts)


def refused(act: Run, org: Engine, cases: list[tuple[type[Exception], str, Any]],
            when: str = "2027-03-03T09:00") -> None:
    before = snapshot(org)
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            act(when, call)
        assert snapshot(org) == before, match


def raise_on(act: Run, iro: str, child: str, when: str = "2027-03-01T09:00", **kw: Any
             ) -> int:
    return int(act(when, lambda s: s.raise_alert(iro, child, f"Concern for {child}",
                                                 **kw)).id)


def cover(org: Engine, absent: str, deputy: str) -> None:
    with db.transaction(org) as s:
        ids = {p.username: p.id for p in s.exec(select(Person)) if p.id is not None}
        s.add(Cover(person_id=ids[absent], deputy_id=ids[deputy], starts=date(2027, 3, 1),
                    ends=date(2027, 3, 31), created_by="admin.max",
                    created_at=parse_instant("2027-02-26T09:00", LONDON)))


@backends
def test_good_practice_is_a_closed_record_with_no_clock_told_to_the_managers(
    act: Run, org: Engine,
) -> None:
    gid = int(act("2027-03-01T09:00", lambda s: s.record_good_practice(
        "iro.ada", "R100", "Thorough life-story work", detail="Dan's work with the carers",
        theme="funding")).id)
    view = act("2027-03-01T09:01", lambda s: s.show(gid, "iro.ada"))
    assert (view.kind, view.status, view.stage, view.stage_title) == (
        "good_practice", "closed", "good_practice", "Good practice")
    assert (view.stage_due, view.resolution_due, view.responsible, view.overdue) == (
        None, None, None, False)
    assert view.detail == "Dan's work with the carers" and view.theme == "funding"
    assert [(e.kind, e.actor, e.team, e.iro) for e in view.events] == [
        ("good_practice", "iro.ada", "east-a", "iro.ada")]
    assert mails(org, gid) == {("good_practice", "tm.fay"), ("good_practice", "hos.ivy")}
    # No ladder: nothing to respond to, escalate or acknowledge; no open list or inbox.
    assert act("2027-03-01T09:02", lambda s: s.allowed(gid, "iro.ada")) == ["move", "link"]
    refused(act, org, [
        (InvalidTransition, "a record of good practice", lambda s: s.escalate(
            gid, "iro.ada", "x")),
        (InvalidTransition, "a record of good practice", lambda s: s.respond(
            gid, "tm.fay", "x")),
        (InvalidTransition, "a record of good practice", lambda s: s.acknowledge(
            gid, "tm.fay")),
    ])
    assert act("2027-03-01T09:03", lambda s: s.list_alerts("irom.cat", "open")) == []
    assert act("2027-03-01T09:03", lambda s: s.inbox("tm.fay")) == []
    assert [v.id for v in act("2027-03-01T09:03", lambda s: s.list_alerts(
        "irom.cat", "closed"))] == [gid]
    # It is not an open concern: a concern for the child needs no --separate.
    aid = raise_on(act, "iro.ada", "R100", "2027-03-01T10:00")
    assert act("2027-03-01T10:01", lambda s: s.show(aid, "iro.ada")).child_alerts == [gid]


@backends
def test_only_the_childs_iro_or_their_cover_records_good_practice(act: Run, org: Engine
                                                                  ) -> None:
    def record(who: str) -> Callable[[AlertService], Any]:
        return lambda s: s.record_good_practice(who, "R100", "Good work")

    refused(act, org, [
        (NotPermitted, "only the child's IRO", record("tm.fay")),
        (NotPermitted, "only the child's IRO", record("irom.cat")),
        (NotFound, "no child 'R100' that iro.ben can see", record("iro.ben")),
        (NotFound, "no child 'R999'", lambda s: s.record_good_practice("iro.ada", "R999",
                                                                       "x")),
        (BadValue, "the summary is empty", lambda s: s.record_good_practice(
            "iro.ada", "R100", "  ")),
        (BadValue, "takes no informal due date", lambda s: s.record_good_practice(
            "iro.ada", "R100", "Good work", due=date(2027, 3, 5))),
        (BadValue, "takes no outcome wanted", lambda s: s.record_good_practice(
            "iro.ada", "R100", "Good work", outcome_wanted="More of it")),
    ])
    cover(org, "iro.ada", "iro.ben")
    gid = int(act("2027-03-02T09:00", record("iro.ben")).id)
    view = act("2027-03-02T09:01", lambda s: s.show(gid, "iro.ben"))
    assert [(e.actor, e.as_cover_for) for e in view.events] == [("iro.ben", "iro.ada")]
    assert view.iro == "iro.ada"


@backends
def test_a_misfiled_alert_moves_to_the_right_child(act: Run, org: Engine) -> None:
    # iro.ben is the IRO of R200 (west, tm.gus) and R101 (east, tm.fay).
    aid = raise_on(act, "iro.ben", "R200")
    other = raise_on(act, "iro.ben", "R200", "2027-03-01T09:30", separate=True)
    act("2027-03-01T10:00", lambda s: s.acknowledge(aid, "tm.gus"))
    assert act("2027-03-01T10:01", lambda s: s.show(other, "tm.gus")).child_alerts == [aid]

    act("2027-03-02T09:00", lambda s: s.move(aid, "iro.ben", "R101", "Raised on the sibling"))
    view = act("2027-03-02T09:01", lambda s: s.show(aid, "iro.ben"))
    assert (view.child, view.team, view.iro, view.responsible) == (
        "R101", "east-a", "iro.ben", "tm.fay")
    assert (view.stage, view.stage_due) == ("informal", date(2027, 3, 8))  # dates kept
    assert view.acknowledged_by is None  # tm.fay has yet to acknowledge it
    moved = view.events[-1]
    assert (moved.kind, moved.actor, moved.comment, moved.team) == (
        "moved", "iro.ben", "Raised on the sibling", "east-a")
    with Session(org) as s:
        data = s.exec(select(Event.data).where(Event.alert_id == aid,
                                               Event.kind == "moved")).one()
    assert data is not None and (data["from"], data["to"]) == ("R200", "R101")
    assert {m for m in mails(org, aid) if m[0] == "moved"} == {
        ("moved", "tm.fay"), ("moved", "sw.dan"), ("moved", "iro.ben")}
    # The wrong child's record no longer shows it; the right child's line has it.
    assert act("2027-03-02T09:02", lambda s: s.show(other, "tm.gus")).child_alerts == []
    with pytest.raises(NotFound):
        act("2027-03-02T09:02", lambda s: s.show(aid, "tm.gus"))
    assert [v.id for v in act("2027-03-02T09:02", lambda s: s.list_alerts("tm.gus"))] == [
        other]
    assert [v.id for v in act("2027-03-02T09:02", lambda s: s.inbox("tm.fay"))] == [aid]

    # An IRO manager may move it to any child; the alert takes that child's IRO.
    act("2027-03-02T10:00", lambda s: s.move(aid, "irom.cat", "R100", "Wrong sibling"))
    view = act("2027-03-02T10:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.child, view.iro, view.events[-1].actor) == ("R100", "iro.ada", "irom.cat")


@backends
def test_moving_is_refused_to_others_and_to_children_one_may_not_see(act: Run, org: Engine
                                                                    ) -> None:
    aid = raise_on(act, "iro.ben", "R101")
    ada = raise_on(act, "iro.ada", "R100")
    refused(act, org, [
        # Not the allocated IRO: another IRO does not see it; a manager on the line may not.
        (NotFound, f"no alert {aid} that iro.ada can see", lambda s: s.move(
            aid, "iro.ada", "R100", "Mine")),
        (NotPermitted, "may not move", lambda s: s.move(aid, "tm.fay", "R100", "x")),
        # To a child the IRO may not see (another IRO's), or none: nothing changes.
        (NotFound, "no child 'R100' that iro.ben can see", lambda s: s.move(
            aid, "iro.ben", "R100", "Wrong child")),
        (NotFound, "no child 'R999'", lambda s: s.move(aid, "iro.ben", "R999", "x")),
        (BadValue, "already on child R101", lambda s: s.move(aid, "iro.ben", "R101", "x")),
        (BadValue, "the reason is empty", lambda s: s.move(aid, "iro.ben", "R200", "")),
        # iro.ada's alert to a child she is not the IRO of, which she may not see.
        (NotFound, "no child 'R200'", lambda s: s.move(ada, "iro.ada", "R200", "x")),
    ])
    # Covering west's team manager, she sees R200, but its alerts are still iro.ben's.
    cover(org, "tm.gus", "iro.ada")
    refused(act, org, [(NotPermitted, f"may not move alert {ada} to child R200",
                        lambda s: s.move(ada, "iro.ada", "R200", "x"))])


@backends
def test_related_alerts_are_linked_both_ways_once(act: Run, org: Engine) -> None:
    a = raise_on(act, "iro.ada", "R100")
    b = raise_on(act, "iro.ada", "R100", "2027-03-01T09:10", separate=True)
    c = raise_on(act, "iro.ben", "R200")
    act("2027-03-02T09:00", lambda s: s.link(a, b, "iro.ada"))
    for one, two in ((a, b), (b, a)):
        view = act("2027-03-02T09:01", lambda s, one=one: s.show(one, "iro.ada"))
        assert view.related == [two]
        assert [(e.kind, e.actor) for e in view.events][-1] == ("linked", "iro.ada")
    refused(act, org, [
        (InvalidTransition, f"alerts {a} and {b} are already linked", lambda s: s.link(
            a, b, "iro.ada")),
        (InvalidTransition, f"alerts {b} and {a} are already linked", lambda s: s.link(
            b, a, "iro.ada")),
        (BadValue, "cannot be linked to itself", lambda s: s.link(a, a, "iro.ada")),
        (NotFound, f"no alert {c} that iro.ada can see", lambda s: s.link(a, c, "iro.ada")),
        (NotPermitted, "may not link", lambda s: s.link(a, b, "tm.fay")),
    ])
    # An IRO manager links alerts of different children (siblings with different IROs).
    act("2027-03-02T10:00", lambda s: s.link(c, a, "irom.cat"))
    assert act("2027-03-02T10:01", lambda s: s.show(a, "irom.cat")).related == [b, c]
    assert act("2027-03-02T10:01", lambda s: s.show(c, "iro.ben")).related == [a]


@backends
def test_a_second_open_concern_for_a_child_needs_confirming_as_separate(act: Run, org: Engine
                                                                       ) -> None:
    first = raise_on(act, "iro.ada", "R100")
    refused(act, org, [
        (InvalidTransition, rf"child R100 already has an open alert \({first}\).*--separate",
         lambda s: s.raise_alert("iro.ada", "R100", "Again")),
    ])
    second = raise_on(act, "iro.ada", "R100", "2027-03-03T10:00", separate=True)
    view = act("2027-03-03T10:01", lambda s: s.show(second, "iro.ada"))
    assert view.child_alerts == [first]
    with Session(org) as s:
        data = s.exec(select(Event.data).where(Event.alert_id == second)).one()
    assert data is not None and data["separate_from"] == [first]
    # Once none is open, a new concern is no repeat; the child's past alerts stay listed.
    for aid in (first, second):
        act("2027-03-04T09:00", lambda s, aid=aid: s.withdraw(aid, "iro.ada", "Done with"))
    third = raise_on(act, "iro.ada", "R100", "2027-03-05T09:00")
    assert act("2027-03-05T09:01", lambda s: s.show(third, "tm.fay")).child_alerts == [
        first, second]


@backends
def test_the_person_responsible_acknowledges_once_and_the_clock_runs_on(act: Run, org: Engine
                                                                       ) -> None:
    aid = raise_on(act, "iro.ada", "R100")  # informal: tm.fay responsible, due 8 March
    refused(act, org, [
        (NotPermitted, "only the team manager responsible at informal",
         lambda s, who=who: s.acknowledge(aid, who))
        for who in ("sw.dan", "iro.ada", "hos.ivy", "irom.cat")
    ])
    act("2027-03-02T09:00", lambda s: s.acknowledge(aid, "tm.fay"))
    view = act("2027-03-02T09:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.acknowledged_by, view.acknowledged_at.isoformat()) == (
        "tm.fay", "2027-03-02T09:00:00+00:00")
    assert view.events[-1].kind == "acknowledged"
    refused(act, org, [(InvalidTransition, "already been acknowledged",
                        lambda s: s.acknowledge(aid, "tm.fay"))])
    # Acknowledged is not responded: still in the inbox, overdue after the due date.
    assert [v.id for v in act("2027-03-02T09:02", lambda s: s.inbox("tm.fay"))] == [aid]
    later = act("2027-03-09T09:00", lambda s: s.show(aid, "iro.ada"))
    assert (later.stage_due, later.overdue) == (date(2027, 3, 8), True)
    # A new stage wants its own acknowledgement.
    act("2027-03-09T10:00", lambda s: s.escalate(aid, "iro.ada", "No response"))
    assert act("2027-03-09T10:01", lambda s: s.show(aid, "iro.ada")).acknowledged_by is None
