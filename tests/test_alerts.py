"""The ladder end to end through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from drp.alerts import ActionIn, AlertService
from drp.alerts.queries import Queries
from drp.errors import BadValue, InvalidTransition, NotFound, NotPermitted
from drp.models import AccessLog, Alert, Event

from .conftest import Run, backends


def raise_r100(run: Run, when: str = "2027-03-22T09:00", **kw: object) -> int:
    alert = run(when, lambda s: s.raise_alert("iro.ada", "R100", "No care plan", **kw))
    return int(alert.id)


def state(run: Run, alert_id: int) -> tuple[int, int, str, str]:
    """(version, events, status, stage): what a refused command must leave alone."""

    def read(s: AlertService) -> tuple[int, int, str, str]:
        alert = s.s.get(Alert, alert_id)
        assert alert is not None
        n = s.s.exec(select(func.count()).select_from(Event).where(Event.alert_id == alert_id))
        return alert.version, n.one(), alert.status, alert.stage

    return run("2027-06-01T09:00", read)


@backends
def test_an_alert_climbs_the_ladder_across_easter_with_cafcass_alongside(run: Run) -> None:
    aid = raise_r100(run, theme="accountability_record_keeping")
    view = run("2027-03-22T09:05", lambda s: s.show(aid, "iro.ada"))
    assert (view.status, view.stage, view.responsible) == ("open", "informal", "tm.fay")
    assert view.stage_due == date(2027, 3, 31)       # Good Friday and Easter Monday skipped
    assert view.resolution_due is None               # informal: the formal clock not started
    assert view.raised_at.isoformat() == "2027-03-22T09:00:00+00:00"

    run("2027-03-23T10:00", lambda s: s.respond(aid, "sw.dan", "Report being written"))
    run("2027-03-24T10:00", lambda s: s.escalate(aid, "iro.ada", "Report still not shared"))
    view = run("2027-03-24T10:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.stage, view.responsible, view.stage_due) == ("stage1", "tm.fay", date(2027, 4, 2))
    # The formal clock starts on Wednesday 24 March: 20 working days are 25 March (1), 30
    # March to 2 April (5), 5-9 April (10), 12-16 April (15), 19-23 April (20).
    assert (view.formal_since, view.resolution_due) == (date(2027, 3, 24), date(2027, 4, 23))

    run("2027-03-25T10:00", lambda s: s.respond(
        aid, "tm.fay", "Report will be shared", [ActionIn("Share report", date(2027, 4, 9))]))
    run("2027-03-30T10:00", lambda s: s.escalate(aid, "iro.ada", "Not shared"))
    view = run("2027-03-30T10:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.stage, view.responsible, view.stage_due) == (
        "stage2", "hos.ivy", date(2027, 4, 6))
    run("2027-04-01T10:00", lambda s: s.escalate(aid, "iro.ada", "No response"))
    run("2027-04-02T10:00", lambda s: s.escalate(aid, "iro.ada", "No response"))
    view = run("2027-04-02T10:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.stage, view.responsible, view.stage_due) == (
        "stage4", "dcs.lou", date(2027, 4, 9))
    assert view.resolution_due == date(2027, 4, 23)  # escalating does not restart it

    before = state(run, aid)
    with pytest.raises(InvalidTransition, match=r"at stage4 .*referring it to Cafcass"):
        run("2027-04-05T10:00", lambda s: s.escalate(aid, "iro.ada", "Still nothing"))
    assert state(run, aid) == before

    run("2027-04-12T10:00", lambda s: s.refer(aid, "iro.ada", "Legal advice taken",
                                              legal_advice="Legal services"))
    view = run("2027-04-12T10:01", lambda s: s.show(aid, "irom.cat"))
    # Concurrent: the alert stays open at its stage, and the referral is on record.
    assert (view.status, view.stage, view.responsible) == ("open", "stage4", "dcs.lou")
    assert view.cafcass is not None
    assert (view.cafcass.referred_on, view.cafcass.legal_advice, view.cafcass.response) == (
        date(2027, 4, 12), "Legal services", None)
    run("2027-04-13T10:00", lambda s: s.respond(aid, "dcs.lou", "Report shared today"))
    run("2027-04-14T10:00", lambda s: s.resolve(aid, "iro.ada", "Shared"))
    view = run("2027-04-14T10:01", lambda s: s.show(aid, "irom.cat"))
    kinds = [(e.kind, e.from_stage, e.to_stage, e.actor) for e in view.events]
    assert kinds == [
        ("raised", None, "informal", "iro.ada"),
        ("responded", "informal", "informal", "sw.dan"),
        ("escalated", "informal", "stage1", "iro.ada"),
        ("responded", "stage1", "stage1", "tm.fay"),
        ("action_agreed", "stage1", "stage1", "tm.fay"),
        ("escalated", "stage1", "stage2", "iro.ada"),
        ("escalated", "stage2", "stage3", "iro.ada"),
        ("escalated", "stage3", "stage4", "iro.ada"),
        ("referred", "stage4", "stage4", "iro.ada"),
        ("responded", "stage4", "stage4", "dcs.lou"),
        ("resolved", "stage4", "stage4", "iro.ada"),
    ]
    assert (view.status, view.stage) == ("resolved", "stage4")
    assert [a.text for a in view.actions] == ["Share report"]


@backends
def test_wrong_people_are_refused_and_nothing_changes(run: Run) -> None:
    aid = raise_r100(run)
    before = state(run, aid)
    cases = [
        (NotPermitted, lambda s: s.escalate(aid, "tm.fay", "I want it gone")),
        (NotFound, lambda s: s.escalate(aid, "iro.ben", "Not my child")),
        (NotFound, lambda s: s.respond(aid, "sw.eve", "Other team")),
        (NotFound, lambda s: s.respond(aid, "hos.jon", "Other service")),
        (NotPermitted, lambda s: s.resolve(aid, "sw.dan", "Done")),
        (NotPermitted, lambda s: s.respond(aid, "iro.ada", "I cannot answer myself")),
        (NotPermitted, lambda s: s.refer(aid, "hos.ivy", "Not theirs to refer", legal_advice="x")),
        (NotPermitted, lambda s: s.escalate(aid, "irom.cat", "Not the allocated IRO")),
        (NotFound, lambda s: s.show(aid, "admin.max")),
        (NotFound, lambda s: s.escalate(aid, "nobody", "Who?")),
    ]
    for error, call in cases:
        with pytest.raises(error):
            run("2027-03-23T09:00", call)
    assert state(run, aid) == before


@backends
def test_wrong_stage_is_refused_naming_the_stage_and_the_options(run: Run) -> None:
    aid = raise_r100(run)
    with pytest.raises(InvalidTransition) as err:
        run("2027-03-23T09:00", lambda s: s.reopen(aid, "iro.ada", "Why not"))
    message = str(err.value)
    assert "at informal (Informal resolution)" in message
    assert message.endswith("what may be done from there: respond, escalate, resolve, withdraw,"
                            " hold, extend, refer, acknowledge")
    run("2027-03-23T10:00", lambda s: s.escalate(aid, "iro.ada", "Skip", to="stage3"))
    before = state(run, aid)
    with pytest.raises(InvalidTransition, match="choose a later stage: stage4"):
        run("2027-03-23T11:00", lambda s: s.escalate(aid, "iro.ada", "Back", to="stage1"))
    with pytest.raises(BadValue, match="no stage 'cafcass'.*drp alert refer"):
        run("2027-03-23T11:00", lambda s: s.escalate(aid, "iro.ada", "x", to="cafcass"))
    run("2027-03-24T10:00", lambda s: s.withdraw(aid, "irom.cat", "Duplicate"))
    with pytest.raises(InvalidTransition, match="withdrawn at stage3 .*nothing more"):
        run("2027-03-24T11:00", lambda s: s.escalate(aid, "iro.ada", "Again"))
    assert state(run, aid)[1] == before[1] + 1


@backends
def test_managers_above_the_responsible_one_may_respond(run: Run) -> None:
    aid = raise_r100(run, stage="stage2")
    with pytest.raises(NotPermitted, match="head of service responsible at stage2"):
        run("2027-03-22T10:00", lambda s: s.respond(aid, "tm.fay", "Below the line"))
    run("2027-03-22T11:00", lambda s: s.respond(aid, "dcs.lou", "The director answers"))
    view = run("2027-03-22T11:01", lambda s: s.show(aid, "iro.ada"))
    assert view.events[-1].actor == "dcs.lou"


@backends
def test_working_days_on_hold_do_not_count(run: Run) -> None:
    aid = raise_r100(run, "2027-03-01T09:00", stage="stage1")
    view = run("2027-03-01T09:01", lambda s: s.show(aid, "iro.ada"))
    # Raised straight at stage 1 on Monday 1 March 2027: due Monday 8th; the formal 20
    # working days end Wednesday 31 March (Good Friday 26th and Easter Monday 29th skipped).
    assert (view.stage_due, view.resolution_due) == (date(2027, 3, 8), date(2027, 3, 31))
    run("2027-03-02T09:00", lambda s: s.hold(
        aid, "iro.ada", "Court hearing", until=date(2027, 3, 20)))
    with pytest.raises(InvalidTransition, match="on hold; resume it first"):
        run("2027-03-03T09:00", lambda s: s.escalate(aid, "iro.ada", "While held"))
    view = run("2027-03-10T09:00", lambda s: s.show(aid, "iro.ada"))
    assert view.on_hold and not view.overdue  # no clock runs while on hold
    run("2027-03-10T09:00", lambda s: s.resume(aid, "iro.ada"))
    view = run("2027-03-10T09:01", lambda s: s.show(aid, "iro.ada"))
    # Held 3 to 10 March: six working days (3, 4, 5, 8, 9, 10) move both clocks on.
    assert view.stage_due == date(2027, 3, 16)
    assert view.resolution_due == date(2027, 4, 8)  # 31 Mar + 6
    assert [e.kind for e in view.events][-2:] == ["held", "resumed"]
    resumed = run("2027-03-10T09:02", lambda s: s.s.exec(
        select(Event).where(Event.alert_id == aid, Event.kind == "resumed")).one())
    assert resumed.data["held_working_days"] == 6


@backends
def test_extension_must_be_a_later_working_day_and_only_the_iro_grants_it(run: Run) -> None:
    aid = raise_r100(run)  # informal, due Wednesday 31 March 2027
    with pytest.raises(BadValue, match="2027-04-03 is not a working day .*2027-04-05"):
        run("2027-03-23T09:00", lambda s: s.extend(aid, "iro.ada", date(2027, 4, 3), "x"))
    with pytest.raises(BadValue, match="not after the current one"):
        run("2027-03-23T09:00", lambda s: s.extend(aid, "iro.ada", date(2027, 3, 31), "x"))
    with pytest.raises(NotPermitted):
        run("2027-03-23T09:00", lambda s: s.extend(aid, "tm.fay", date(2027, 4, 7), "x"))
    with pytest.raises(NotPermitted):
        run("2027-03-23T09:00", lambda s: s.extend(aid, "irom.cat", date(2027, 4, 7), "x"))
    # The informal date may be brought forward (an urgent matter) ...
    run("2027-03-23T09:00", lambda s: s.extend(aid, "iro.ada", date(2027, 3, 25), "Urgent"))
    assert run("2027-03-23T09:01", lambda s: s.show(aid, "iro.ada")).stage_due == date(
        2027, 3, 25)
    run("2027-03-23T10:00", lambda s: s.extend(aid, "iro.ada", date(2027, 4, 7), "Leave"))
    view = run("2027-03-23T10:01", lambda s: s.show(aid, "iro.ada"))
    assert view.stage_due == date(2027, 4, 7)
    # ... a formal stage's only put back.
    run("2027-03-24T09:00", lambda s: s.escalate(aid, "iro.ada", "No progress"))
    with pytest.raises(BadValue, match="only the informal stage's date may be brought forward"):
        run("2027-03-24T10:00", lambda s: s.extend(aid, "iro.ada", date(2027, 3, 30), "x"))


@backends
def test_an_iro_manager_may_withdraw_but_not_act_in_the_iros_place(run: Run) -> None:
    """The allocated IRO's powers are theirs: an IRO manager who is not recorded as their
    cover may withdraw an alert raised in error, and nothing else of the IRO's."""
    aid = raise_r100(run, stage="stage1")
    run("2027-03-23T09:00", lambda s: s.respond(
        aid, "tm.fay", "Plan", [ActionIn("Care plan written", date(2027, 4, 1))]))
    before = state(run, aid)
    cases = [
        lambda s: s.escalate(aid, "irom.cat", "x"),
        lambda s: s.resolve(aid, "irom.cat", "x"),
        lambda s: s.hold(aid, "irom.cat", "x", until=date(2027, 4, 1)),
        lambda s: s.extend(aid, "irom.cat", date(2027, 4, 6), "x"),
        lambda s: s.refer(aid, "irom.cat", "x", legal_advice="Legal services"),
        lambda s: s.set_theme(aid, "irom.cat", "accountability_record_keeping"),
        lambda s: s.raise_alert("irom.cat", "R100", "x", separate=True),
    ]
    for call in cases:
        with pytest.raises(NotPermitted, match="irom.cat may not"):
            run("2027-03-24T09:00", call)
    assert state(run, aid) == before
    allowed = run("2027-03-24T09:00", lambda s: s.allowed(aid, "irom.cat"))
    assert "withdraw" in allowed
    assert not {"escalate", "resolve", "hold", "extend", "refer", "set_theme"} & set(allowed)
    run("2027-03-24T09:00", lambda s: s.withdraw(aid, "irom.cat", "Raised on the wrong child"))
    view = run("2027-03-24T09:01", lambda s: s.show(aid, "iro.ada"))
    assert view.status == "withdrawn"
    assert (view.events[-1].actor, view.events[-1].as_cover_for) == ("irom.cat", None)


@backends
def test_a_resolved_alert_with_actions_outstanding_can_be_reopened(run: Run) -> None:
    aid = raise_r100(run, stage="stage1")
    run("2027-03-23T09:00", lambda s: s.respond(aid, "tm.fay", "Plan", [
        ActionIn("Care plan written", date(2027, 4, 1)),
        ActionIn("Shared with IRO", date(2027, 4, 2), owner="sw.dan")]))
    run("2027-03-24T09:00", lambda s: s.resolve(aid, "iro.ada", "Agreed plan"))
    with pytest.raises(NotPermitted):  # not the owner, and below the stage's manager
        run("2027-04-05T08:00", lambda s: s.action_done(aid, 1, "sw.dan"))
    with pytest.raises(NotFound):  # another team's manager cannot even see it
        run("2027-04-05T08:00", lambda s: s.action_done(aid, 2, "tm.gus"))
    run("2027-04-05T09:00", lambda s: s.action_done(aid, 1, "tm.fay"))
    run("2027-04-05T10:00", lambda s: s.reopen(aid, "iro.ada", "Not shared yet"))
    view = run("2027-04-05T10:01", lambda s: s.show(aid, "iro.ada"))
    assert (view.status, view.stage, view.stage_due) == ("open", "stage1", date(2027, 4, 12))
    run("2027-04-06T09:00", lambda s: s.action_done(aid, 2, "sw.dan"))
    run("2027-04-06T10:00", lambda s: s.resolve(aid, "iro.ada", "Shared"))
    with pytest.raises(InvalidTransition, match="all its agreed actions are done"):
        run("2027-04-07T09:00", lambda s: s.reopen(aid, "iro.ada", "Again"))
    with pytest.raises(InvalidTransition, match="already marked done"):
        run("2027-04-07T09:00", lambda s: s.action_done(aid, 2, "sw.dan"))


@backends
def test_bad_values_are_refused_with_the_fix(run: Run) -> None:
    with pytest.raises(NotFound, match="no child 'R999'"):
        run("2027-03-22T09:00", lambda s: s.raise_alert("iro.ada", "R999", "x"))
    with pytest.raises(BadValue, match="summary is empty"):
        run("2027-03-22T09:00", lambda s: s.raise_alert("iro.ada", "R100", "  "))
    with pytest.raises(BadValue, match="no theme 'drift'"):
        run("2027-03-22T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x", theme="drift"))
    with pytest.raises(BadValue, match="no stage 'stage9'"):
        run("2027-03-22T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x", stage="stage9"))
    with pytest.raises(NotPermitted, match="only the child's IRO"):
        run("2027-03-22T09:00", lambda s: s.raise_alert("tm.fay", "R100", "x"))
    aid = raise_r100(run)
    with pytest.raises(BadValue, match="in the past"):
        run("2027-03-23T09:00", lambda s: s.respond(
            aid, "tm.fay", "x", [ActionIn("y", date(2027, 3, 1))]))
    with pytest.raises(BadValue, match="events must stay in order"):
        run("2027-03-21T09:00", lambda s: s.respond(aid, "tm.fay", "Before the alert"))


@backends
def test_overdue_when_a_stage_response_is_late(run: Run) -> None:
    aid = raise_r100(run, stage="stage1")  # due 2027-03-31
    assert not run("2027-03-31T17:00", lambda s: s.show(aid, "iro.ada")).overdue
    assert run("2027-04-01T09:00", lambda s: s.show(aid, "iro.ada")).overdue
    listed = run("2027-04-01T09:00", lambda s: s.list_alerts("iro.ada", "overdue"))
    assert [v.id for v in listed] == [aid]
    run("2027-04-01T10:00", lambda s: s.respond(aid, "tm.fay", "Late but here"))
    assert not run("2027-04-01T11:00", lambda s: s.show(aid, "iro.ada")).overdue


@backends
def test_everyone_sees_only_what_their_roles_allow(run: Run) -> None:
    a = raise_r100(run)
    b = int(run("2027-03-22T09:00", lambda s: s.raise_alert("iro.ben", "R200", "West")).id)
    c = int(run("2027-03-22T09:00", lambda s: s.raise_alert("iro.ben", "R101", "East")).id)
    expected = {
        "iro.ada": {a}, "iro.ben": {b, c}, "irom.cat": {a, b, c}, "sw.dan": {a, c},
        "sw.eve": {b}, "tm.fay": {a, c}, "tm.gus": {b}, "sm.hal": {a, c}, "hos.ivy": {a, c},
        "hos.jon": {b}, "ad.kim": {a, b, c}, "dcs.lou": {a, b, c}, "admin.max": set(),
    }
    for user, ids in expected.items():
        listed = {v.id for v in run("2027-03-23T09:00", lambda s, u=user: s.list_alerts(u))}
        assert listed == ids, user
        for aid in (a, b, c):
            if aid in ids:
                run("2027-03-23T09:00", lambda s, u=user, i=aid: s.show(i, u))
            else:
                with pytest.raises(NotFound):
                    run("2027-03-23T09:00", lambda s, u=user, i=aid: s.show(i, u))


@backends
def test_an_event_committed_by_someone_else_meanwhile_is_a_conflict_not_a_clock_problem(
    run: Run, org: Any, protocol: Any, calendar: Any,
) -> None:
    """Two people at the same moment: the second to write is told who changed the alert,
    even though the first one's event is (by a few milliseconds) later than its own instant."""
    from drp import db
    from drp.clock import FixedClock, parse_instant
    from drp.errors import Conflict

    from .conftest import LONDON

    aid = int(run("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x")).id)
    with db.transaction(org) as slow:
        svc = AlertService(slow, protocol=protocol, calendar=calendar, tz=LONDON,
                           clock=FixedClock(parse_instant("2027-03-02T09:00", LONDON)))
        svc.allowed(aid, "tm.fay")  # read before the other person's response commits
        run("2027-03-02T09:00:01", lambda s: s.respond(aid, "sw.dan", "Visiting today"))
        with pytest.raises(Conflict, match="was changed by sw.dan"):
            svc.respond(aid, "tm.fay", "We will visit")


@backends
def test_lists_and_the_inbox_cost_the_same_few_queries_for_five_alerts_or_fifty(
    run: Run, org: Any, protocol: Any, calendar: Any,
) -> None:
    from sqlalchemy import event

    from drp import db
    from drp.clock import FixedClock, parse_instant

    from .conftest import LONDON

    def statements(fn: Any) -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        event.listen(org, "before_cursor_execute", count)
        try:
            with db.transaction(org) as s:
                fn(AlertService(s, protocol=protocol, calendar=calendar, tz=LONDON,
                                clock=FixedClock(parse_instant("2027-03-02T10:00", LONDON))))
        finally:
            event.remove(org, "before_cursor_execute", count)
        return len(seen)

    costs = []
    for n in (5, 50):
        while len(run("2027-03-02T09:00", lambda s: s.list_alerts("tm.fay", "open"))) < n:
            for ref, iro in (("R100", "iro.ada"), ("R101", "iro.ben")):
                run("2027-03-01T09:00",
                    lambda s, r=ref, i=iro: s.raise_alert(i, r, "x", separate=True))
        costs.append((statements(lambda s: s.inbox("tm.fay")),
                      statements(lambda s: s.list_alerts("hos.ivy", "open"))))
    assert costs[0] == costs[1], costs
    # (the referrals, today's cover periods, the links and the children's other alerts are
    # one query each, whatever the number; and the audit rows of the alerts shown, one insert)
    assert costs[0][0] <= 16, costs


@backends
def test_the_inbox_pages_frame_counts_the_inbox_it_has_just_listed(run: Run, org: Any) -> None:
    """On the inbox page the navigation's count of the inbox is the list's own length, not
    worked out again; the frame's other counts (responded, actions owned) are a query each."""
    from sqlalchemy import event

    from drp import audit

    for _ in range(3):
        run("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x", separate=True))
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    def page(s: AlertService) -> tuple[int, dict[str, int]]:
        with audit.collecting():  # (as a page: the rows of reading written after it)
            listed = s.inbox("tm.fay")
            event.listen(org, "before_cursor_execute", count)
            try:
                return len(listed), s.work_counts("tm.fay")
            finally:
                event.remove(org, "before_cursor_execute", count)

    listed, counts = run("2027-03-02T10:00", page)
    assert listed == counts["inbox"] == 3
    assert len(seen) == 2, seen
    # Another unit of work, the counts alone (any other page): the inbox is counted too.
    assert run("2027-03-02T10:00", lambda s: s.work_counts("tm.fay"))["inbox"] == 3


@backends
def test_an_alert_is_read_once_a_unit_of_work_until_the_unit_writes(run: Run, org: Any) -> None:
    """A page asks about its alert several times (the view, what may be done, whom an action
    may go to): one read of the alert and its line. A write forgets it: what follows the
    write reads the alert again."""
    from sqlalchemy import event

    from drp import audit

    aid = raise_r100(run)
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    def loads() -> int:  # the alert with its child and the posts of its line
        return sum("JOIN council" in sql and "alert.id =" in sql for sql in seen)

    def page(s: AlertService) -> tuple[int, int]:
        event.listen(org, "before_cursor_execute", count)
        try:
            with audit.collecting():  # (as a page: the rows of reading written after it)
                s.show(aid, "tm.fay")
                s.allowed(aid, "tm.fay")
                s.people_on_line(aid, "tm.fay")
                read = loads()
                s.respond(aid, "tm.fay", "Visiting today")
                s.allowed(aid, "tm.fay")
                return read, loads()
        finally:
            event.remove(org, "before_cursor_execute", count)

    read, after = run("2027-03-23T10:00", page)
    assert read == 1, seen
    assert after == 2, seen  # (the response itself used the read; what followed it, a new one)

    # What a unit reads after its own change is the changed record: moved to another child
    # (another team, another IRO), the alert shows them; the inbox counted before a response
    # is counted again after it.
    def move_then_show(s: AlertService) -> tuple[str, str, str]:
        with audit.collecting():
            s.show(aid, "iro.ada")
            s.move(aid, "irom.cat", "R200", "Raised on the wrong child")
            shown = s.show(aid, "irom.cat")
            return shown.child, shown.team, shown.iro

    assert run("2027-03-24T10:00", move_then_show) == ("R200", "west-a", "iro.ben")
    other = raise_r100(run)

    def respond_between(s: AlertService) -> tuple[int, int]:
        with audit.collecting():
            before = len(s.inbox("tm.fay"))
            s.respond(other, "tm.fay", "Visiting today")
            return before, s.work_counts("tm.fay")["inbox"]

    before, after_response = run("2027-03-24T10:00", respond_between)
    assert after_response == before - 1, (before, after_response)

    # A change made but not yet flushed is seen too: the read is made again (and flushes it).
    def change_then_show(s: AlertService) -> str:
        from drp.models import Child, Team

        with audit.collecting():
            s.show(other, "irom.cat")
            alert = s.s.get(Alert, other)
            assert alert is not None
            child = s.s.get(Child, alert.child_id)
            west = s.s.exec(select(Team).where(Team.key == "west-a")).one()
            assert child is not None
            child.team_id = west.id  # (in memory only, until the next query flushes it)
            return s.show(other, "irom.cat").team

    assert run("2027-03-24T10:00", change_then_show) == "west-a"


@backends
def test_a_referral_to_cafcass_needs_the_legal_advice_taken_whatever_the_channel(
        run: Run) -> None:
    aid = raise_r100(run)
    before = state(run, aid)
    for advice in (None, "", "   "):
        with pytest.raises(BadValue, match="needs the legal advice taken"):
            run("2027-03-24T10:00", lambda s, a=advice: s.refer(
                aid, "iro.ada", "No plan", legal_advice=a))
    with pytest.raises(BadValue, match="legal advice date 2027-03-25 is after today"):
        run("2027-03-24T10:00", lambda s: s.refer(
            aid, "iro.ada", "No plan", legal_advice="Legal services",
            advised_on=date(2027, 3, 25)))
    assert state(run, aid) == before
    run("2027-03-24T10:00", lambda s: s.refer(
        aid, "iro.ada", "No plan", legal_advice="Ms Okafor, legal services",
        advised_on=date(2027, 3, 23)))
    referred = run("2027-03-24T10:01", lambda s: s.s.exec(
        select(Event).where(Event.alert_id == aid, Event.kind == "referred")).one())
    assert referred.data["legal_advice"] == "Ms Okafor, legal services"
    assert referred.data["advised_on"] == "2027-03-23"


@backends
def test_a_new_alert_is_written_once_with_its_first_events_seq(
    run: Run, org: Any,
) -> None:
    """Raising an alert (or recording good practice) INSERTs the alert with its first
    event's seq and does not UPDATE it after; the next event takes seq 2."""
    from sqlalchemy import event

    writes: list[str] = []

    def count(*args: Any) -> None:
        sql = " ".join(str(args[2]).split()).upper()
        if sql.startswith(("INSERT INTO ALERT ", "UPDATE ALERT ")):
            writes.append(sql.split(" ", 1)[0])

    event.listen(org, "before_cursor_execute", count)
    try:
        aid = raise_r100(run)
        good = run("2027-03-22T09:10", lambda s: s.record_good_practice(
            "iro.ben", "R101", "A clear plan").id)
    finally:
        event.remove(org, "before_cursor_execute", count)
    assert writes == ["INSERT", "INSERT"], writes

    def seqs(s: AlertService, alert_id: int) -> tuple[int, list[int]]:
        alert = s.s.get(Alert, alert_id)
        assert alert is not None
        return alert.last_seq, list(s.s.exec(select(Event.seq).where(
            Event.alert_id == alert_id).order_by(Event.seq)))

    assert run("2027-03-22T09:20", lambda s: seqs(s, aid)) == (1, [1])
    assert run("2027-03-22T09:20", lambda s: seqs(s, int(good))) == (1, [1])
    run("2027-03-22T10:00", lambda s: s.respond(aid, "tm.fay", "We will visit"))
    assert run("2027-03-22T10:01", lambda s: seqs(s, aid)) == (2, [1, 2])


@backends
def test_a_command_reads_its_actor_and_its_alert_a_statement_each(
    run: Run, org: Any,
) -> None:
    """The acting person with their roles, whom they cover and today's cover periods is one
    statement; the alert with its child, line and what the machine's guards read, another;
    a new alert's child with its line and open concerns, another; the line's people, one
    more. What this process read of the organisation under its token as it stands
    (drp.orgtoken) is not read again: the person and the line's people then cost nothing."""
    from sqlalchemy import event

    from drp import orgtoken

    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    def sent(when: str, fn: Any, *, cold: bool) -> list[str]:
        if cold:
            orgtoken._KEPT.clear()
        seen.clear()
        event.listen(org, "before_cursor_execute", count)
        try:
            run(when, fn)
        finally:
            event.remove(org, "before_cursor_execute", count)
        return list(seen)

    first = raise_r100(run, "2027-03-01T09:00")
    second, third = (raise_r100(run, f"2027-03-01T09:1{i}", separate=True) for i in (1, 2))
    counts = []
    for cold in (True, False):
        times = ("2027-03-01T09:30", "2027-03-02T09:00", "2027-03-03T09:00")
        if not cold:  # each command once first, on another alert: what it reads is kept
            sent(times[0], lambda s: s.raise_alert("iro.ada", "R100", "A", separate=True),
                 cold=False)
            sent(times[1], lambda s: s.respond(third, "tm.fay", "on it"), cold=False)
            sent(times[2], lambda s: s.escalate(third, "iro.ada", "no progress"), cold=False)
        alert = first if cold else second
        raised = sent(times[0], lambda s: s.raise_alert(
            "iro.ada", "R100", "Another", separate=True), cold=cold)
        responded = sent(times[1], lambda s, a=alert: s.respond(a, "tm.fay", "on it"),
                         cold=cold)
        escalated = sent(times[2], lambda s, a=alert: s.escalate(a, "iro.ada", "no progress"),
                         cold=cold)
        counts.append((len(raised), len(responded), len(escalated)))
        if cold:
            assert sum("person_role" in sql for sql in responded) == 1  # the actor, once
        else:
            assert not any("FROM person" in sql for sql in (*raised, *responded, *escalated))
    # Cold: the child (its line, open concerns) or the alert (its child, line, standing);
    # the person acting; the write; the line's people; the event (no notifier here, so no
    # outbox rows). Warm: the person and the people come from what the process kept.
    assert counts == [(5, 5, 5), (3, 3, 3)], counts


@backends
def test_the_actor_read_in_one_statement_is_the_actor_the_policy_loads(
    run: Run, org: Any,
) -> None:
    """access.actor_named (one statement: the person, roles, cover, teams and today's cover
    periods) gives what load_actor and deputies_on give, for everyone, with cover running."""
    from drp import db
    from drp.ladder import access
    from drp.models import Person

    from .test_casework import cover

    cover(org, "tm.fay", "hos.jon")   # a head of service covers another service's team manager
    cover(org, "dcs.lou", "ad.kim")   # the assistant director covers the director
    cover(org, "tm.gus", "hos.jon")   # and two people at once
    cover(org, "tm.gus", "sm.hal")    # (a later period for the same person is the one read;
    cover(org, "tm.gus", "hos.jon")   # recording refuses overlaps, the reads agree on them)
    cover(org, "hos.ivy", "sm.hal")   # superseded: sm.hal covers no one
    cover(org, "hos.ivy", "hos.jon")
    today = date(2027, 3, 10)
    with db.transaction(org) as s:
        people = list(s.exec(select(Person)))
        ids = {p.username: p.id for p in people}
        deputies = access.deputies_on(s, today)
        assert deputies == {ids["tm.fay"]: ids["hos.jon"], ids["dcs.lou"]: ids["ad.kim"],
                            ids["tm.gus"]: ids["hos.jon"], ids["hos.ivy"]: ids["hos.jon"]}
        for person in people:
            found = access.actor_named(s, person.username, today)
            assert found is not None
            # the person as read (a copy belonging to no session: read, never changed)
            assert found[0].model_dump() == person.model_dump()
            assert found[1] == access.load_actor(s, person, today), person.username
            assert found[2] == deputies
        jon = access.actor_named(s, "hos.jon", today)
        assert jon is not None
        assert dict(jon[1].covering) == {ids["tm.fay"]: "tm.fay", ids["tm.gus"]: "tm.gus",
                                         ids["hos.ivy"]: "hos.ivy"}
        assert dict(jon[1].borrowed) == {"team_manager": "tm.fay"}
        assert jon[1].roles == {"head_of_service", "team_manager"}
        assert len(jon[1].team_ids) == 2  # west-a his own service's, east-a as tm.fay's cover
        hal = access.actor_named(s, "sm.hal", today)
        assert hal is not None and dict(hal[1].covering) == {}
        kim = access.actor_named(s, "ad.kim", today)
        assert kim is not None and kim[1].sees_all and kim[1].borrowed == {"director": "dcs.lou"}
        # Out of the cover period: their own roles only.
        assert access.actor_named(s, "hos.jon", date(2027, 4, 1))[1].covering == {}  # type: ignore[index]
        assert access.actor_named(s, "nobody", today) is None


def between_the_lists_reads(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    """`change()` (other units of work, committed) once, after a list's column read of its
    rows (`Queries._standings`) and before it reads its page's rows whole."""
    standings = Queries._standings
    changed: list[bool] = []

    def then_changed(self: Queries, *a: Any, **kw: Any) -> Any:
        out = standings(self, *a, **kw)
        if not changed:
            changed.append(True)
            change()
        return out

    monkeypatch.setattr(Queries, "_standings", then_changed)


@backends
def test_a_list_shows_each_row_as_it_reads_now_when_it_changed_between_the_lists_reads(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A list is filtered and put in order from a few columns of every row it may show, then
    its page's rows are read whole: an alert withdrawn by another person's command, committed
    between the two reads, is not shown in the open list (nor recorded as shown), and an
    alert given another theme is not shown in the theme's list."""
    when = "2027-03-22T09:00"
    raised = [raise_r100(run, when, separate=True, theme="permanence_planning")
              for _ in range(4)]
    between_the_lists_reads(monkeypatch, lambda: (
        run(when, lambda s: s.withdraw(raised[1], "iro.ada", "Raised in error")),
        run(when, lambda s: s.set_theme(raised[2], "iro.ada", "safeguarding"))))
    views, on = run(when, lambda s: s.alert_list("irom.cat", "open", page=1,
                                                 theme="permanence_planning"))
    assert [v.id for v in views] == [raised[0], raised[3]], [(v.id, v.status) for v in views]
    assert on.total == 4  # (counted from the first read)


@backends
def test_a_list_checks_each_rows_standing_again_when_it_changed_between_the_lists_reads(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The on-hold list: an alert resumed between the list's two reads still passes the SQL
    filter (it is open) but not the list's own status (no longer on hold): not shown, and not
    recorded as listed."""
    when = "2027-03-22T09:00"
    raised = [raise_r100(run, when, separate=True) for _ in range(3)]
    for aid in raised:
        run(when, lambda s, aid=aid: s.hold(aid, "iro.ada", "Court", date(2027, 4, 5)))
    between_the_lists_reads(monkeypatch, lambda: run(when, lambda s: s.resume(raised[1],
                                                                          "iro.ada")))
    views, _on = run(when, lambda s: s.alert_list("irom.cat", "on_hold", page=1))
    assert [v.id for v in views] == [raised[0], raised[2]], [(v.id, v.on_hold) for v in views]
    listed = run(when, lambda s: s.s.exec(select(AccessLog.alert_id).where(
        AccessLog.action == "listed", AccessLog.actor == "irom.cat")).all())
    assert sorted(listed) == [raised[0], raised[2]], listed
