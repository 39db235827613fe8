"""The process as the IRO Handbook and councils run it (issue 13), through the service layer on
SQLite and PostgreSQL: the two clocks, the concurrent referral to Cafcass, holds and
extensions within limits, pause points, and events that carry the child's team and IRO.

Every expected date is counted by hand in the comment beside it (2027: Good Friday 26 March,
Easter Monday 29 March) or by the independent oracle in tests/support/workdays.py, never by
drp's own calendar."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from drp import db
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.errors import BadValue, InvalidTransition, NotPermitted
from drp.ladder.protocol import Protocol, load_protocol
from drp.models import Alert, Event, Referral
from drp.notify import Notifier
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy
from notifications.models import OutboxMessage
from notifications.render import Renderer

from .conftest import LONDON, backends
from .support import workdays

Act = Callable[..., Any]


@pytest.fixture
def act(org: Engine, calendar: WorkingCalendar) -> Act:
    """act(when, fn, protocol=None): one unit of work as of then, with e-mail queued."""
    default = load_protocol(CONFIG_DIR / "protocol.yaml")
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
    taxonomy = load_taxonomy(CONFIG_DIR / "themes.yaml")

    def _act(when: str, fn: Callable[[AlertService], Any],
             protocol: Protocol | None = None) -> Any:
        with db.transaction(org) as session:
            svc = AlertService(session, protocol=protocol or default, calendar=calendar,
                               clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON,
                               taxonomy=taxonomy, notifier=notifier)
            return fn(svc)

    return _act


def snapshot(act: Act) -> tuple[Any, ...]:
    """Everything a refused command must leave as it was."""
    def read(s: AlertService) -> tuple[Any, ...]:
        alerts = [(a.id, a.version, a.status, a.stage, a.stage_due, a.resolution_due,
                   a.formal_since, a.on_hold, a.hold_until)
                  for a in s.s.exec(select(Alert).order_by(col(Alert.id)))]
        count = [s.s.exec(select(func.count()).select_from(t)).one()
                 for t in (Event, OutboxMessage)]
        referrals = [(r.alert_id, r.response) for r in s.s.exec(select(Referral))]
        return (alerts, count, referrals)

    return act("2027-01-04T09:00", read)  # type: ignore[no-any-return]


def refused(act: Act, when: str, calls: list[tuple[type[Exception], str, Act]]) -> None:
    """Each call is refused with that error and message, and nothing changes."""
    before = snapshot(act)
    for error, match, call in calls:
        with pytest.raises(error, match=match):
            act(when, call)
    assert snapshot(act) == before


def raise_(act: Act, when: str, child: str = "R100", **kw: Any) -> int:
    iro = {"R100": "iro.ada", "R101": "iro.ben", "R200": "iro.ben"}[child]
    return int(act(when, lambda s: s.raise_alert(iro, child, "No care plan", **kw)).id)


def mailed(act: Act, alert_id: int, message: str) -> set[str]:
    return set(act("2027-01-04T09:00", lambda s: s.s.exec(
        select(OutboxMessage.recipient).where(OutboxMessage.alert_id == alert_id,
                                              OutboxMessage.message == message)).all()))


# -- the two clocks -------------------------------------------------------------------------------
@backends
def test_the_informal_date_is_the_iros_and_no_formal_clock_runs(act: Act) -> None:
    # Raised Monday 1 March 2027: five working days by default (2, 3, 4, 5, 8 March).
    default = raise_(act, "2027-03-01T09:00")
    view = act("2027-03-01T09:01", lambda s: s.show(default, "iro.ada"))
    assert (view.stage, view.stage_due) == ("informal", date(2027, 3, 8))
    assert (view.resolution_due, view.formal_since) == (None, None)
    # Earlier, for an urgent matter.
    soon = raise_(act, "2027-03-01T09:00", "R200", due_on=date(2027, 3, 3))
    assert act("2027-03-01T09:01", lambda s: s.show(soon, "iro.ben")).stage_due == date(
        2027, 3, 3)
    # At most ten working days: 2-5 (4), 8-12 (9), 15 March (10).
    refused(act, "2027-03-01T10:00", [
        (BadValue, r"more than 10 working days away.*up to 2027-03-15",
         lambda s: s.raise_alert("iro.ben", "R101", "x", due_on=date(2027, 3, 16))),
        (BadValue, "not a working day", lambda s: s.raise_alert(
            "iro.ben", "R101", "x", due_on=date(2027, 3, 6))),
        (BadValue, "not after today", lambda s: s.raise_alert(
            "iro.ben", "R101", "x", due_on=date(2027, 3, 1))),
        (BadValue, "outside the dates drp accepts", lambda s: s.raise_alert(
            "iro.ben", "R101", "x", due_on=date(9999, 12, 31))),
        (BadValue, "formal stage's due date comes from the protocol", lambda s: s.raise_alert(
            "iro.ben", "R101", "x", stage="stage1", due_on=date(2027, 3, 5))),
    ])
    latest = raise_(act, "2027-03-01T10:00", "R101", due_on=date(2027, 3, 15))
    assert act("2027-03-01T10:01", lambda s: s.show(latest, "iro.ben")).stage_due == date(
        2027, 3, 15)

    # Brought forward (to Thursday 4 March), then put back: at most ten working days after
    # the current date (5 (1), 8-12 (6), 15-18 (10): Thursday 18 March).
    act("2027-03-02T09:00", lambda s: s.extend(default, "iro.ada", date(2027, 3, 4), "Urgent"))
    assert act("2027-03-02T09:01", lambda s: s.show(default, "iro.ada")).stage_due == date(
        2027, 3, 4)
    refused(act, "2027-03-03T09:00", [
        (BadValue, r"more than 10 working days after.*up to 2027-03-18",
         lambda s: s.extend(default, "iro.ada", date(2027, 3, 19), "x")),
        (BadValue, "in the past", lambda s: s.extend(default, "iro.ada", date(2027, 3, 2), "x")),
    ])
    act("2027-03-03T09:00", lambda s: s.extend(default, "iro.ada", date(2027, 3, 18), "Leave"))
    # Past its date the informal stage is late, but there is still no formal clock.
    view = act("2027-03-19T09:00", lambda s: s.show(default, "iro.ada"))
    assert (view.stage_due, view.overdue, view.resolution_due) == (
        date(2027, 3, 18), True, None)


@backends
def test_the_formal_clock_starts_at_the_first_formal_stage_and_bounds_each_stage(
        act: Act) -> None:
    aid = raise_(act, "2027-03-01T09:00")
    # Escalated on Thursday 4 March: 20 working days are 5 (1), 8-12 (6), 15-19 (11), 22-25
    # (15), 30 March (16), 31 (17), 1 April (18), 2 (19), Monday 5 April (20). Stage 1 is due
    # five working days on: 5, 8, 9, 10, 11 March.
    act("2027-03-04T09:00", lambda s: s.escalate(aid, "iro.ada", "No plan yet"))
    view = act("2027-03-04T09:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.formal_since, view.resolution_due, view.stage_due) == (
        date(2027, 3, 4), date(2027, 4, 5), date(2027, 3, 11))
    # Bypass to stage 4 on Thursday 1 April: five working days would be Thursday 8 April, past
    # the formal due date, so Monday 5 April; escalating does not restart the clock.
    act("2027-04-01T09:00", lambda s: s.escalate(aid, "iro.ada", "Urgent", to="stage4"))
    view = act("2027-04-01T09:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.formal_since, view.resolution_due, view.stage_due) == (
        date(2027, 3, 4), date(2027, 4, 5), date(2027, 4, 5))
    # An agreed extension past it moves the formal due date too.
    act("2027-04-01T10:00", lambda s: s.extend(aid, "iro.ada", date(2027, 4, 12), "Agreed"))
    view = act("2027-04-01T10:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.stage_due, view.resolution_due) == (date(2027, 4, 12), date(2027, 4, 12))

    # Raised straight at a formal stage on Monday 22 March: the clock starts that day,
    # 20 working days: 23-25 (3), 30 March-2 April (7), 5-9 (12), 12-16 (17), 19-21 April.
    # Stage 2's five: 23, 24, 25, 30, 31 March.
    formal = raise_(act, "2027-03-22T09:00", "R200", stage="stage2")
    view = act("2027-03-22T09:01", lambda s: s.show(formal, "iro.ben"))
    assert (view.formal_since, view.resolution_due, view.stage_due) == (
        date(2027, 3, 22), date(2027, 4, 21), date(2027, 3, 31))


LADDERS = {
    # Raised at stage 1 on Monday 1 March 2027, each stage escalated on its due date.
    # Default (5 each): 8, 15, 22 March, then 23, 24, 25, 30, 31 March.
    "protocol.yaml": [("stage1", date(2027, 3, 8)), ("stage2", date(2027, 3, 15)),
                      ("stage3", date(2027, 3, 22)), ("stage4", date(2027, 3, 31))],
    # Manchester (4 each): 2-5; 8-11; 12, 15-17; 18, 19, 22, 23; 24, 25, 30, 31 March.
    "protocol.manchester.yaml": [
        ("stage1", date(2027, 3, 5)), ("stage2", date(2027, 3, 11)),
        ("stage3", date(2027, 3, 17)), ("stage4", date(2027, 3, 23)),
        ("stage5", date(2027, 3, 31))],
}


@backends
@pytest.mark.parametrize("name", sorted(LADDERS))
def test_the_formal_stages_fill_the_20_working_days(act: Act, name: str) -> None:
    """Each formal stage answered late, on its due date: the last one falls due on the formal
    due date (20 working days from 1 March: Wednesday 31 March), not before, not after."""
    protocol = load_protocol(CONFIG_DIR / name)
    assert sum(s.timescale_working_days for s in protocol.stages if s.formal) == 20
    aid = int(act("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1"), protocol).id)
    for i, (stage, due) in enumerate(LADDERS[name]):
        view = act(f"{due.isoformat()}T09:00", lambda s: s.show(aid, "iro.ada"), protocol)
        assert (view.stage, view.stage_due, view.resolution_due) == (
            stage, due, date(2027, 3, 31))
        if i + 1 < len(LADDERS[name]):
            act(f"{due.isoformat()}T10:00",
                lambda s: s.escalate(aid, "iro.ada", "No response"), protocol)


# -- Cafcass, alongside -------------------------------------------------------------------------
@backends
def test_a_referral_to_cafcass_runs_alongside_the_local_process(act: Act) -> None:
    aid = raise_(act, "2027-03-01T09:00", stage="stage1")
    refused(act, "2027-03-02T09:00", [
        (InvalidTransition, "not been referred", lambda s: s.cafcass_response(
            aid, "iro.ada", "accepted")),
        (NotPermitted, "only the allocated IRO", lambda s: s.refer(
            aid, "irom.cat", "x", legal_advice="Legal services")),
        (NotPermitted, "tm.fay may not", lambda s: s.refer(
            aid, "tm.fay", "x", legal_advice="Legal services")),
        (BadValue, "needs the legal advice", lambda s: s.refer(
            aid, "iro.ada", "x", legal_advice=" ")),
        (BadValue, "outside the dates", lambda s: s.refer(
            aid, "iro.ada", "x", legal_advice="Legal services", advised_on=date(1999, 1, 1))),
    ])
    act("2027-03-02T09:00", lambda s: s.refer(
        aid, "iro.ada", "Drift in care planning", legal_advice="Ms Okafor, legal services",
        advised_on=date(2027, 3, 1)))
    view = act("2027-03-02T09:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.status, view.stage, view.responsible) == ("open", "stage1", "tm.fay")
    assert view.cafcass is not None
    assert (view.cafcass.referred_on, view.cafcass.referred_by, view.cafcass.legal_advice,
            view.cafcass.advised_on, view.cafcass.response) == (
        date(2027, 3, 2), "iro.ada", "Ms Okafor, legal services", date(2027, 3, 1), None)
    # The IRO (or cover), the IRO manager and the head of service are told.
    assert {"iro.ada", "irom.cat", "hos.ivy"} <= mailed(act, aid, "referred")

    refused(act, "2027-03-03T09:00", [
        (InvalidTransition, "already been referred", lambda s: s.refer(
            aid, "iro.ada", "Again", legal_advice="Legal services")),
        (BadValue, "not a response drp knows", lambda s: s.cafcass_response(
            aid, "iro.ada", "maybe")),
        (NotPermitted, "irom.cat may not", lambda s: s.cafcass_response(
            aid, "irom.cat", "accepted")),
    ])
    # The local process goes on: a response, an escalation, Cafcass's answer, resolution.
    act("2027-03-03T09:00", lambda s: s.respond(aid, "tm.fay", "Plan by Friday"))
    act("2027-03-04T09:00", lambda s: s.escalate(aid, "iro.ada", "No plan"))
    act("2027-03-05T09:00", lambda s: s.cafcass_response(
        aid, "iro.ada", "accepted", "A guardian allocated"))
    act("2027-03-08T09:00", lambda s: s.resolve(aid, "iro.ada", "Plan agreed"))
    act("2027-03-09T09:00", lambda s: s.cafcass_response(aid, "iro.ada", "closed"))
    view = act("2027-03-09T09:01", lambda s: s.show(aid, "iro.ada"))
    assert view.status == "resolved" and view.cafcass is not None
    assert (view.cafcass.response, view.cafcass.responded_on) == ("closed", date(2027, 3, 9))
    assert [e.kind for e in view.events] == [
        "raised", "referred", "responded", "escalated", "cafcass_response", "resolved",
        "cafcass_response"]
    assert act("2027-03-09T09:02", lambda s: s.s.exec(
        select(func.count()).select_from(Referral)).one()) == 1
    answers = act("2027-03-09T09:02", lambda s: [e.data for e in s.s.exec(
        select(Event).where(Event.alert_id == aid, Event.kind == "cafcass_response")
        .order_by(col(Event.seq)))])
    assert [(d["response"], d["previous"]) for d in answers] == [
        ("accepted", None), ("closed", "accepted")]


# -- holds and extensions within limits ---------------------------------------------------------
@backends
def test_holds_and_extensions_have_limits_and_resuming_counts_the_days(act: Act) -> None:
    aid = raise_(act, "2027-03-01T09:00", stage="stage1")  # due 8 March, formal 31 March
    latest = workdays.add(date(2027, 3, 2), 65)
    refused(act, "2027-03-02T09:00", [
        (BadValue, "needs an end date", lambda s: s.hold(aid, "iro.ada", "Court")),
        (BadValue, "9999-12-31 is outside the dates drp accepts", lambda s: s.hold(
            aid, "iro.ada", "Court", until=date(9999, 12, 31))),
        (BadValue, "outside the dates", lambda s: s.hold(
            aid, "iro.ada", "Court", until=date(2101, 1, 1))),
        (BadValue, f"more than 65 working days away.*{latest.isoformat()}", lambda s: s.hold(
            aid, "iro.ada", "Court", until=workdays.add(latest, 1))),
        (BadValue, "9999-12-31 is outside the dates drp accepts", lambda s: s.extend(
            aid, "iro.ada", date(9999, 12, 31), "x")),
        # Ten working days after 8 March: 9-12 (4), 15-19 (9), 22 March (10).
        (BadValue, r"more than 10 working days after.*up to 2027-03-22", lambda s: s.extend(
            aid, "iro.ada", date(2027, 3, 23), "x")),
        (NotPermitted, "irom.cat may not", lambda s: s.hold(
            aid, "irom.cat", "Court", until=date(2027, 3, 20))),
    ])
    act("2027-03-02T09:00", lambda s: s.hold(aid, "iro.ada", "Court hearing", until=latest))
    assert act("2027-03-02T09:01", lambda s: s.show(aid, "iro.ada")).hold_until == latest
    act("2027-03-30T09:00", lambda s: s.resume(aid, "iro.ada", "Hearing over"))
    resumed = act("2027-03-30T09:01", lambda s: s.s.exec(select(Event).where(
        Event.alert_id == aid, Event.kind == "resumed")).one())
    # Held from 2 March to 30 March: 3-5 (3), 8-12 (8), 15-19 (13), 22-25 (17), 30 (18).
    assert resumed.data["held_working_days"] == 18
    view = act("2027-03-30T09:01", lambda s: s.show(aid, "iro.ada"))
    # 8 March + 18: 9-12 (4), 15-19 (9), 22-25 (13), 30, 31, 1, 2 (17), Monday 5 April (18);
    # 31 March + 18: 1, 2 (2), 5-9 (7), 12-16 (12), 19-23 (17), Monday 26 April (18).
    assert (view.stage_due, view.resolution_due) == (date(2027, 4, 5), date(2027, 4, 26))
    assert {"tm.fay", "iro.ada"} <= mailed(act, aid, "resumed")


# -- pause points ---------------------------------------------------------------------------------
@backends
def test_stages_one_and_two_escalate_by_themselves_and_from_stage_three_the_iro_decides(
        act: Act) -> None:
    aid = raise_(act, "2027-03-01T09:00", stage="stage1")  # due 8 March
    informal = raise_(act, "2027-03-01T09:00", "R101")     # due 8 March
    # Stage 1 late: escalated (stage 2 due 9 + 5: 10, 11, 12, 15, 16 March).
    assert act("2027-03-09T07:00", lambda s: s.act_on_overdue(aid)) == "escalated"
    view = act("2027-03-09T07:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.stage, view.stage_due) == ("stage2", date(2027, 3, 16))
    # The informal stage late: the IRO is reminded; it stays informal, with no formal clock.
    assert act("2027-03-09T07:00", lambda s: s.act_on_overdue(informal)) == "overdue"
    assert act("2027-03-09T07:00", lambda s: s.act_on_overdue(informal)) is None
    view = act("2027-03-09T07:01", lambda s: s.show(informal, "iro.ben"))
    assert (view.stage, view.resolution_due) == ("informal", None)
    # Stage 2 late: escalated (stage 3 due 17 + 5: 18, 19, 22, 23, 24 March).
    assert act("2027-03-17T07:00", lambda s: s.act_on_overdue(aid)) == "escalated"
    view = act("2027-03-17T07:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.stage, view.stage_due) == ("stage3", date(2027, 3, 24))
    # Stage 3 late: a pause point. The IRO and the IRO manager are reminded, once.
    assert act("2027-03-25T07:00", lambda s: s.act_on_overdue(aid)) == "overdue"
    assert act("2027-03-25T07:00", lambda s: s.act_on_overdue(aid)) is None
    assert act("2027-03-30T07:00", lambda s: s.act_on_overdue(aid)) is None
    view = act("2027-03-30T07:01", lambda s: s.show(aid, "iro.ada"))
    assert view.stage == "stage3"
    assert {"iro.ada", "irom.cat"} <= mailed(act, aid, "overdue")
    # The IRO decides: stage 4, due by the formal date (31 March), then prompted on Cafcass.
    act("2027-03-30T09:00", lambda s: s.escalate(aid, "iro.ada", "Still no plan"))
    view = act("2027-03-30T09:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.stage, view.stage_due) == ("stage4", date(2027, 3, 31))
    assert act("2027-04-01T07:00", lambda s: s.act_on_overdue(aid)) == "cafcass_prompt"
    kinds = [e.kind for e in act("2027-04-01T07:01", lambda s: s.show(aid, "iro.ada")).events]
    assert kinds == ["raised", "auto_escalated", "auto_escalated", "overdue", "escalated",
                     "cafcass_prompt"]


# -- events carry the child's team and IRO --------------------------------------------------------
@backends
def test_each_event_carries_the_childs_team_and_iro_at_the_time(act: Act) -> None:
    east = raise_(act, "2027-03-01T09:00", stage="stage1")
    west = raise_(act, "2027-03-01T09:00", "R200")
    act("2027-03-02T09:00", lambda s: s.respond(east, "tm.fay", "Plan"))
    act("2027-03-09T07:00", lambda s: s.act_on_overdue(west))
    act("2027-03-10T09:00", lambda s: s.withdraw(west, "irom.cat", "Raised in error"))
    for aid, team, iro, n in ((east, "east-a", "iro.ada", 2), (west, "west-a", "iro.ben", 3)):
        events = act("2027-03-10T09:01", lambda s, a=aid: s.show(a, "irom.cat")).events
        assert [(e.team, e.iro, e.as_cover_for) for e in events] == [(team, iro, None)] * n



def test_a_ladder_without_an_informal_stage_refuses_an_informal_date(act: Act) -> None:
    """A council whose ladder starts formal has no informal date for the IRO to set: --due is
    refused, not silently ignored; without it the alert starts at the first formal stage."""
    default = load_protocol(CONFIG_DIR / "protocol.yaml")
    formal_only = default.model_copy(update={"stages": default.stages[1:]})
    with pytest.raises(BadValue, match="leave it out") as refusal:
        act("2027-03-01T09:00", lambda s: s.raise_alert(
            "iro.ada", "R100", "No plan", due_on=date(2027, 3, 3)), protocol=formal_only)
    assert refusal.value.field == "due"
    alert = act("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "No plan"),
                protocol=formal_only)
    assert (alert.stage, alert.formal_since) == ("stage1", date(2027, 3, 1))
