"""The timescale run isolates each alert: one that breaks (a date beyond the calendar, a row
no code path expects) is logged and named in the report while the rest go on; an alert a
person touched just after the run's instant is not due yet, not a problem."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from drp import db
from drp.alerts import ActionIn
from drp.calendar import WorkingCalendar
from drp.errors import BadValue
from drp.ladder.protocol import Protocol
from drp.models import Alert

from .conftest import Run, backends
from .test_timescales import flow_at, system_events


def write_directly(engine: Engine, aid: int, **values: object) -> None:
    """A row as an older version or a careless API client may have left it."""
    with db.transaction(engine) as s:
        s.execute(update(Alert).where(Alert.id == aid).values(**values))  # type: ignore[arg-type]


def test_the_calendar_names_a_date_beyond_its_range_instead_of_overflowing() -> None:
    cal = WorkingCalendar({date(9999, 12, 31): "The last day Python's dates hold"})
    for call in (lambda: cal.add(date(9999, 12, 30), 3), lambda: cal.add(date(1, 1, 3), -5),
                 lambda: cal.next_working_day(date(9999, 12, 31))):
        with pytest.raises(BadValue, match="beyond the dates the calendar can count|outside the"
                           " dates drp accepts"):
            call()
    assert cal.add(date(2027, 3, 5), 1) == date(2027, 3, 8)


@backends
def test_people_cannot_type_a_date_beyond_the_calendar(run: Run, org: Engine) -> None:
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    with pytest.raises(BadValue, match="9999-12-31"):
        run("2027-03-02T10:00", lambda s: s.extend(aid, "iro.ada", date(9999, 12, 31), "Why"))
    with pytest.raises(BadValue, match="9999-12-31"):
        run("2027-03-02T10:00", lambda s: s.hold(aid, "iro.ada", "Court",
                                                 until=date(9999, 12, 31)))


@backends
def test_one_broken_alert_is_logged_and_reported_and_the_rest_go_on(
    run: Run, org: Engine, protocol: Protocol, caplog: pytest.LogCaptureFixture
) -> None:
    def raise_(ref: str, who: str = "iro.ada") -> int:
        return int(run("2027-03-01T10:00", lambda s: s.raise_alert(
            who, ref, "x", stage="stage1")).id)  # stage 1 due Monday 8 March

    far, broken, fine = raise_("R100"), raise_("R101", "iro.ben"), raise_("R200", "iro.ben")
    for aid, who in ((far, "iro.ada"), (broken, "iro.ben")):
        run("2027-03-02T10:00", lambda s, aid=aid, who=who: s.hold(
            aid, who, "Court", until=date(2027, 3, 5)))
    # An extension to 9999-12-31 written before dates were limited: resuming it moves the due
    # date past the calendar's last day. A held alert with no start to its hold: no code path
    # expects it.
    write_directly(org, far, stage_due=date(9999, 12, 31), resolution_due=date(9999, 12, 31))
    write_directly(org, broken, held_since=None)
    with caplog.at_level(logging.ERROR, logger="drp.timescales"):
        report = flow_at(org, protocol, "2027-03-09T09:00")
    assert report.escalated == [fine]
    assert len(report.problems) == 2, report.problems
    assert report.problems[0].startswith(f"{far}: ") and "9999-12-31" in report.problems[0]
    assert report.problems[1].startswith(f"{broken}: ")
    assert "AssertionError" in report.problems[1] and "logged" in report.problems[1]
    assert [r.exc_info is not None for r in caplog.records] == [True]
    assert system_events(org, far) == system_events(org, broken) == []


@backends
def test_an_alert_touched_just_after_the_runs_instant_is_not_due_yet(
    run: Run, org: Engine, protocol: Protocol
) -> None:
    def raise_(ref: str, who: str = "iro.ada") -> int:
        return int(run("2027-03-01T10:00", lambda s: s.raise_alert(
            who, ref, "x", stage="stage1")).id)

    touched, other = raise_("R100"), raise_("R200", "iro.ben")
    acted = raise_("R101", "iro.ben")
    run("2027-03-02T10:00", lambda s: s.respond(
        acted, "tm.fay", "Plan", [ActionIn("Write it", date(2027, 3, 5), owner="sw.dan")]))
    # Seconds after the run's fixed instant (09:00), people act on two of them.
    run("2027-03-09T09:00:05", lambda s: s.set_theme(touched, "iro.ada", "funding"))
    run("2027-03-09T09:00:07", lambda s: s.set_theme(acted, "iro.ben", "funding"))
    report = flow_at(org, protocol, "2027-03-09T09:00")
    assert report.problems == []
    assert report.escalated == [other] and report.actions_overdue == []
    assert sorted(report.not_yet) == sorted([touched, acted])
    assert report.counts()["not_yet"] == 2
    # The next run takes them up.
    later = flow_at(org, protocol, "2027-03-09T10:00")
    assert later.escalated == [touched] and later.actions_overdue == [f"{acted}/1"]
    assert later.not_yet == [] and later.problems == []
    # A person acting as of a time before the alert's last event is still refused.
    with pytest.raises(BadValue, match="--now in the future") as refused:
        run("2027-03-09T09:30", lambda s: s.set_theme(touched, "iro.ada", "funding"))
    assert type(refused.value) is BadValue


@backends
def test_an_event_far_after_the_runs_instant_is_a_problem_not_a_wait(
    run: Run, org: Engine, protocol: Protocol
) -> None:
    def raise_(ref: str, who: str = "iro.ada", separate: bool = False) -> int:
        return int(run("2027-03-01T10:00", lambda s: s.raise_alert(
            who, ref, "x", stage="stage1", separate=separate)).id)

    future, soon, other = raise_("R100"), raise_("R101", "iro.ben"), raise_("R200", "iro.ben")
    acted = raise_("R100", separate=True)
    run("2027-03-02T10:00", lambda s: s.respond(
        acted, "tm.fay", "Plan", [ActionIn("Write it", date(2027, 3, 5), owner="sw.dan")]))
    # Someone ran drp with --now years ahead (dates up to 2100 are allowed), and once more an
    # hour and a minute after the run below: neither is a person acting while the run ran.
    run("2030-01-01T10:00", lambda s: s.set_theme(future, "iro.ada", "funding"))
    run("2030-01-01T10:00", lambda s: s.set_theme(acted, "iro.ada", "funding"))
    run("2027-03-09T10:01", lambda s: s.set_theme(soon, "iro.ben", "funding"))
    report = flow_at(org, protocol, "2027-03-09T09:00")
    assert report.escalated == [other] and report.not_yet == []
    named = {p.split(":")[0]: p for p in report.problems}
    assert sorted(named) == sorted([str(future), str(soon), f"({acted}, 1)"]), report.problems
    assert len(report.problems) == 3  # once a run, though each step refuses it
    for problem in named.values():
        assert "--now in the future" in problem, problem
    assert "1 Jan 2030" in named[str(future)] and "1 Jan 2030" in named[f"({acted}, 1)"]
    assert "9 Mar 2027 10:01" in named[str(soon)]
    # Every later run says so again (nothing is silently skipped until 2030).
    later = flow_at(org, protocol, "2027-03-09T11:00")
    assert later.escalated == [soon] and later.not_yet == []
    assert sorted(p.split(":")[0] for p in later.problems) == sorted([str(future),
                                                                      f"({acted}, 1)"])
    assert system_events(org, future) == system_events(org, acted) == []
