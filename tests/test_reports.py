"""The published figures against hand-computed expectations on a crafted history: alerts that
span the period's boundaries, holds, a bypass, a reopening, a withdrawal, a referral to Cafcass
alongside the local process, good practice apart, and a child moved to another team."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from drp import db
from drp.alerts import ActionIn
from drp.alerts.unit import known_id as known
from drp.calendar import WorkingCalendar
from drp.ladder.protocol import Protocol
from drp.models import Child, Person, Team
from drp.reporting.figures import previous_period, report
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy

from .conftest import LONDON, Run, backends


def history(run: Run) -> None:
    def raised(when: str, iro: str, child: str, **kw: Any) -> int:
        return int(run(when, lambda s: s.raise_alert(iro, child, "x", separate=True, **kw)).id)

    a1 = raised("2027-03-15T10:00", "iro.ada", "R100")             # before the period
    run("2027-04-05T10:00", lambda s: s.escalate(a1, "iro.ada", "no response"))
    run("2027-04-08T10:00", lambda s: s.resolve(a1, "iro.ada", "done"))
    a2 = raised("2027-04-06T10:00", "iro.ada", "R100", theme="safeguarding")
    run("2027-04-07T10:00", lambda s: s.resolve(a2, "iro.ada", "done"))
    a3 = raised("2027-04-12T10:00", "iro.ada", "R100", stage="stage1")
    run("2027-04-13T10:00", lambda s: s.hold(a3, "iro.ada", "court", date(2027, 4, 20)))
    run("2027-04-20T10:00", lambda s: s.resume(a3, "iro.ada"))
    run("2027-04-22T10:00", lambda s: s.escalate(a3, "iro.ada", "no"))
    run("2027-04-23T10:00", lambda s: s.withdraw(a3, "iro.ada", "duplicate"))
    a4 = raised("2027-05-04T10:00", "iro.ben", "R200", theme="safeguarding")
    run("2027-05-05T10:00", lambda s: s.escalate(a4, "iro.ben", "urgent", to="stage3"))
    # Referred to Cafcass at stage 3: the alert stays open there (and overdue at the end).
    run("2027-05-06T10:00", lambda s: s.refer(a4, "iro.ben", "legal advice taken",
                                              legal_advice="Legal services"))
    run("2027-05-20T10:00", lambda s: s.cafcass_response(a4, "iro.ben", "accepted"))
    run("2027-05-12T10:00", lambda s: s.record_good_practice(
        "iro.ada", "R100", "A thorough pathway plan", theme="safeguarding"))
    a7 = raised("2027-05-10T10:00", "iro.ada", "R100", stage="stage1")
    run("2027-05-10T11:00", lambda s: s.respond(
        a7, "tm.fay", "plan", [ActionIn("share the plan", date(2027, 5, 14))]))
    run("2027-05-11T10:00", lambda s: s.resolve(a7, "iro.ada", "agreed"))
    run("2027-05-17T10:00", lambda s: s.reopen(a7, "iro.ada", "not shared"))
    run("2027-05-18T09:00", lambda s: s.action_done(a7, 1, "tm.fay"))   # four days late
    run("2027-05-18T10:00", lambda s: s.resolve(a7, "iro.ada", "shared"))
    raised("2027-06-21T10:00", "iro.ada", "R100", theme="funding")     # overdue at the end
    a6 = raised("2027-06-28T10:00", "iro.ben", "R101")
    run("2027-06-29T10:00", lambda s: s.respond(a6, "tm.fay", "on it"))
    a8 = raised("2027-06-29T10:00", "iro.ada", "R100")
    run("2027-07-02T10:00", lambda s: s.resolve(a8, "iro.ada", "after the period"))


def figures(org: Engine, protocol: Protocol, start: date, end: date) -> dict[str, Any]:
    with Session(org) as s:
        return report(s, protocol, WorkingCalendar(), load_taxonomy(CONFIG_DIR / "themes.yaml"),
                      LONDON, start, end)


@backends
def test_the_quarters_figures_match_the_hand_count(run: Run, org: Engine,
                                                    protocol: Protocol) -> None:
    history(run)
    # Since, R200 has moved to team east-a and IRO iro.ada: the figures keep the team and IRO
    # of each event's time (west-a, iro.ben).
    with db.transaction(org) as s:
        ada = s.exec(select(Person).where(Person.username == "iro.ada")).one()
        east = s.exec(select(Team).where(Team.key == "east-a")).one()
        child = s.exec(select(Child).where(Child.ref == "R200")).one()
        child.team_id, child.iro_id = known(east.id), known(ada.id)
        s.add(child)
    r = figures(org, protocol, date(2027, 4, 1), date(2027, 6, 30))
    assert r["period"] == {"from": "2027-04-01", "to": "2027-06-30"}
    assert r["raised"] == 7  # good practice apart
    assert r["good_practice"] == 1 and r["good_practice_by_team"] == {"east-a": 1}
    assert r["reached"] == {"informal": 5, "stage1": 3, "stage2": 1, "stage3": 1, "stage4": 0,
                            "cafcass": 1}
    assert r["cafcass"] == {"referred": 1, "responses": {"accepted": 1}}
    assert r["closed"] == {"resolved": 3, "withdrawn": 1}
    assert r["resolved_by_stage"] == {"informal": 1, "stage1": 2}
    assert r["withdrawn_by_stage"] == {"stage2": 1}
    assert r["referred_from_stage"] == {"stage3": 1}
    assert r["resolved_within_timescale_pct"] == 100.0
    assert r["resolved_within_stage_timescale_pct"] == 100.0
    assert r["resolved_informally_or_first_formal_pct"] == 100.0
    assert r["working_days_to_resolution"]["median"] == 6
    assert r["working_days_to_resolution"]["p90"] == 14.0
    # Open at the end: the referred one (overdue at stage 3), the overdue informal one, the
    # one responded to and the one resolved after the period.
    assert (r["outstanding_at_end"], r["overdue_at_end"]) == (4, 2)
    assert r["themes"] == {"safeguarding": 2, "funding": 1} and r["themes_not_set"] == 4
    assert r["main_theme"] == "safeguarding"
    assert r["automatic_escalations"] == 0
    assert r["actions"] == {"due": 1, "done_on_time": 0, "done_on_time_pct": 0.0}
    assert r["referred_to_director"] == 0 and r["referred_to_cafcass"] == 1
    # Entered a formal stage: a1 (escalated), a3 and a7 (raised at stage 1) in east-a, a4
    # (bypassed to stage 3) in west-a.
    assert r["by_team"] == [
        {"team": "east-a", "name": "East A", "service": "east", "service_name": "East Service",
         "raised": 6, "entered_formal": 3, "resolved": 3, "outstanding_at_end": 3},
        {"team": "west-a", "name": "West A", "service": "west", "service_name": "West Service",
         "raised": 1, "entered_formal": 1, "resolved": 0, "outstanding_at_end": 1}]
    assert r["by_service"] == [
        {"service": "east", "name": "East Service", "raised": 6, "entered_formal": 3,
         "resolved": 3, "outstanding_at_end": 3},
        {"service": "west", "name": "West Service", "raised": 1, "entered_formal": 1,
         "resolved": 0, "outstanding_at_end": 1}]
    assert r["by_iro"] == [
        {"iro": "iro.ada", "name": "Ada Iro", "raised": 5, "entered_formal": 3, "resolved": 3,
         "outstanding_at_end": 2},
        {"iro": "iro.ben", "name": "Ben Iro", "raised": 2, "entered_formal": 1, "resolved": 0,
         "outstanding_at_end": 2}]
    assert r["previous"]["period"] == {"from": "2027-01-01", "to": "2027-03-31"}
    assert r["previous"]["raised"] == 1 and r["previous"]["outstanding_at_end"] == 1
    assert r["change"]["raised"] == 6
    assert r["reached_monthly_average"]["informal"] == pytest.approx(5 / 2.99, abs=0.05)


def test_the_month_after_sees_the_late_resolution(run: Run, org: Engine,
                                                  protocol: Protocol) -> None:
    history(run)
    r = figures(org, protocol, date(2027, 7, 1), date(2027, 7, 31))
    assert r["raised"] == 0 and r["closed"]["resolved"] == 1
    # The overdue one, the one responded to and the one referred to Cafcass.
    assert r["outstanding_at_end"] == 3
    assert r["previous"]["period"] == {"from": "2027-06-01", "to": "2027-06-30"}


def late_history(run: Run) -> None:
    """September 2027 (no bank holiday in it): three resolutions, some late, and three agreed
    actions, one done late. Every date below was counted by hand on a calendar."""
    def raised(when: str, **kw: Any) -> int:
        return int(run(when, lambda s: s.raise_alert("iro.ada", "R100", "x", separate=True,
                                                     **kw)).id)

    # b1: informal, raised Wed 1 Sep: informal due date Wed 8 Sep (5 working days), no formal
    # clock. Resolved Fri 3 Sep: on time.
    b1 = raised("2027-09-01T10:00")
    run("2027-09-03T10:00", lambda s: s.resolve(b1, "iro.ada", "sorted"))
    # b2: informal, the same due date; resolved Thu 30 Sep: late.
    b2 = raised("2027-09-01T10:00")
    run("2027-09-30T10:00", lambda s: s.resolve(b2, "iro.ada", "sorted late"))
    # b3: stage 1, raised Wed 1 Sep: the formal clock starts, resolution due Wed 29 Sep (20
    # working days: 2-3, 6-10, 13-17, 20-24, 27-29); three actions due Tue 7, Wed 8 and Thu 9 Sep, done Mon 6,
    # Fri 10 (late) and Thu 9; escalated Mon 13 Sep to stage 2 (due Mon 20 Sep); resolved
    # Fri 24 Sep: within the 20 working days, but late for stage 2.
    b3 = raised("2027-09-01T10:00", stage="stage1")
    run("2027-09-02T10:00", lambda s: s.respond(b3, "tm.fay", "plan", [
        ActionIn("one", date(2027, 9, 7)), ActionIn("two", date(2027, 9, 8)),
        ActionIn("three", date(2027, 9, 9))]))
    run("2027-09-06T10:00", lambda s: s.action_done(b3, 1, "tm.fay"))
    run("2027-09-09T10:00", lambda s: s.action_done(b3, 3, "tm.fay"))
    run("2027-09-10T10:00", lambda s: s.action_done(b3, 2, "tm.fay"))
    run("2027-09-13T10:00", lambda s: s.escalate(b3, "iro.ada", "still no plan"))
    run("2027-09-24T10:00", lambda s: s.resolve(b3, "iro.ada", "plan agreed"))


@backends
def test_late_resolutions_and_late_actions_lower_the_shares(run: Run, org: Engine,
                                                            protocol: Protocol) -> None:
    late_history(run)
    r = figures(org, protocol, date(2027, 9, 1), date(2027, 9, 30))
    assert r["closed"] == {"resolved": 3, "withdrawn": 0}
    assert r["resolved_by_stage"] == {"informal": 2, "stage2": 1}
    # Within timescale: b1 (informal date) and b3 (20 working days), not b2 (informal date).
    assert r["resolved_within_timescale_pct"] == 66.7
    # Within the stage's own due date: b1 only (b2 past 8 Sep, b3 past 20 Sep).
    assert r["resolved_within_stage_timescale_pct"] == 33.3
    # Informally or at the first formal stage: b1 and b2, not b3 (stage 2).
    assert r["resolved_informally_or_first_formal_pct"] == 66.7
    # Working days from raising: b1 2 (2, 3 Sep), b2 21, b3 17 (2-3, 6-10, 13-17, 20-24).
    assert r["working_days_to_resolution"]["median"] == 17
    assert r["working_days_to_resolution"]["p90"] == 20.2  # 17 + 0.8 * (21 - 17)
    assert r["working_days_to_resolution"]["distribution"] == {
        "0-5": 1, "6-10": 0, "11-15": 0, "16-20": 1, "21-30": 1, "31+": 0}
    assert r["actions"] == {"due": 3, "done_on_time": 2, "done_on_time_pct": 66.7}
    assert (r["outstanding_at_end"], r["overdue_at_end"]) == (0, 0)


@backends
def test_within_timescale_is_the_formal_clock_or_the_informal_date(
        run: Run, org: Engine, protocol: Protocol) -> None:
    """September and October 2027 have no bank holiday; every date was counted by hand. The
    old rule (20 working days from raising) would give 50.0 here."""
    def raised(**kw: Any) -> int:
        return int(run("2027-09-01T10:00", lambda s: s.raise_alert(
            "iro.ada", "R100", "x", separate=True, **kw)).id)

    # c1: the IRO gave it until Fri 3 Sep; resolved informally Mon 6 Sep: late.
    c1 = raised(due_on=date(2027, 9, 3))
    run("2027-09-06T10:00", lambda s: s.resolve(c1, "iro.ada", "late"))
    # c2: escalated Mon 20 Sep: the formal clock runs to Mon 18 Oct; resolved Thu 30 Sep.
    c2 = raised()
    run("2027-09-20T10:00", lambda s: s.escalate(c2, "iro.ada", "no plan"))
    run("2027-09-21T10:00", lambda s: s.respond(c2, "tm.fay", "plan"))
    run("2027-09-30T10:00", lambda s: s.resolve(c2, "iro.ada", "agreed"))
    # c3: informal, due Wed 8 Sep, resolved Thu 2 Sep.
    c3 = raised()
    run("2027-09-02T10:00", lambda s: s.resolve(c3, "iro.ada", "quick"))
    # c4: escalated Mon 13 Sep (clock to Mon 11 Oct, stage 1 due Mon 20 Sep); resolved Fri
    # 1 Oct: within the formal clock, late for its stage.
    c4 = raised()
    run("2027-09-13T10:00", lambda s: s.escalate(c4, "iro.ada", "no plan"))
    run("2027-10-01T10:00", lambda s: s.resolve(c4, "iro.ada", "agreed"))
    r = figures(org, protocol, date(2027, 9, 1), date(2027, 10, 31))
    assert r["closed"] == {"resolved": 4, "withdrawn": 0}
    assert r["resolved_within_timescale_pct"] == 75.0  # c2, c3, c4
    assert r["resolved_within_stage_timescale_pct"] == 25.0  # c3 only


def test_events_before_migration_0007_use_the_childs_team_and_the_recomputed_clock(
        protocol: Protocol) -> None:
    """Events written before 0007 carry no team or IRO, their clocks ran from raising, and a
    referral moved the alert to the Cafcass key; the migration made such alerts open."""
    from datetime import datetime

    from drp.models import Alert, Event
    from drp.reporting.figures import History
    from drp.reporting.figures import figures as compute

    def at(day: int, month: int = 4) -> datetime:
        return datetime(2027, month, day, 9, tzinfo=LONDON)

    def event(alert: Alert, seq: int, when: datetime, kind: str, frm: str | None, to: str,
              team: str | None = None, **data: Any) -> Event:
        return Event(alert_id=known(alert.id), seq=seq, at=when, actor="iro.ada", kind=kind,
                     from_stage=frm, to_stage=to, team=team, iro="iro.ada" if team else None,
                     data={"on_hold": False, **data})

    # Raised Mon 5 Apr, escalated Mon 12 Apr: the old clock ran to Tue 4 May (from raising;
    # Mon 3 May a bank holiday), the migration's from 12 Apr to Tue 11 May. Resolved Thu 6 May.
    one = Alert(id=1, child_id=1, iro_id=1, status="resolved", stage="stage1", summary="x",
                raised_at=at(5), stage_entered_at=at(12), stage_due=date(2027, 4, 19),
                formal_since=date(2027, 4, 12), resolution_due=date(2027, 5, 11))
    one_events = [
        event(one, 1, at(5), "raised", None, "informal", stage_due="2027-04-12",
              resolution_due="2027-05-04"),
        event(one, 2, at(12), "escalated", "informal", "stage1", stage_due="2027-04-19",
              resolution_due="2027-05-04"),
        event(one, 3, at(6, 5), "resolved", "stage1", "resolved", stage_due="2027-04-19",
              resolution_due="2027-05-04"),
    ]
    # Referred from stage 2 on Wed 7 Apr under the old rules (its stage the Cafcass key); a
    # response recorded after the migration (team west-a, as the child was by then).
    two = Alert(id=2, child_id=1, iro_id=1, status="open", stage="stage2", summary="x",
                raised_at=at(6), stage_entered_at=at(6), stage_due=date(2027, 4, 13),
                formal_since=date(2027, 4, 6), resolution_due=date(2027, 5, 5))
    two_events = [
        event(two, 1, at(6), "raised", None, "stage2", stage_due="2027-04-13",
              resolution_due="2027-05-05"),
        event(two, 2, at(7), "referred", "stage2", "cafcass", stage_due=None,
              resolution_due="2027-05-05"),
        event(two, 3, at(20), "responded", "stage2", "stage2", team="west-a",
              stage_due="2027-04-13", resolution_due="2027-05-05"),
    ]
    # Informal, responded to: the old clock (from raising) has passed, but it has no formal
    # clock, so it is not overdue.
    three = Alert(id=3, child_id=1, iro_id=1, status="open", stage="informal", summary="x",
                  raised_at=at(5), stage_entered_at=at(5), stage_due=date(2027, 4, 12))
    three_events = [
        event(three, 1, at(5), "raised", None, "informal", stage_due="2027-04-12",
              resolution_due="2027-05-04"),
        event(three, 2, at(7), "responded", "informal", "informal", stage_due="2027-04-12",
              resolution_due="2027-05-04"),
    ]
    histories = [History(one, "east-a", "east", one_events, iro="iro.ada"),
                 History(two, "east-a", "east", two_events, iro="iro.ada"),
                 History(three, "east-a", "east", three_events, iro="iro.ada")]
    r = compute(histories, protocol, WorkingCalendar(),
                load_taxonomy(CONFIG_DIR / "themes.yaml"), LONDON, date(2027, 4, 1),
                date(2027, 5, 31), [], {"east-a": "east", "west-a": "west"})
    assert r["resolved_within_timescale_pct"] == 100.0  # 6 May, within the migrated clock
    assert r["reached"]["cafcass"] == 1 and r["referred_from_stage"] == {"stage2": 1}
    assert r["closed"] == {"resolved": 1, "withdrawn": 0}
    # The referred alert is open at stage 2 (overdue: past its resolution due date, 5 May),
    # the informal one open and not overdue.
    assert (r["outstanding_at_end"], r["overdue_at_end"]) == (2, 1)
    counts = ("raised", "resolved", "outstanding_at_end")
    assert {row["team"]: tuple(row[k] for k in counts) for row in r["by_team"]} == {
        "east-a": (3, 1, 1), "west-a": (0, 0, 1)}
    assert {row["service"]: tuple(row[k] for k in counts) for row in r["by_service"]} == {
        "east": (3, 1, 1), "west": (0, 0, 1)}
    assert {row["iro"]: tuple(row[k] for k in counts) for row in r["by_iro"]} == {
        "iro.ada": (3, 1, 2)}


@pytest.mark.parametrize(("start", "end", "expected"), [
    (date(2027, 4, 1), date(2027, 6, 30), (date(2027, 1, 1), date(2027, 3, 31))),
    (date(2027, 1, 1), date(2027, 12, 31), (date(2026, 1, 1), date(2026, 12, 31))),
    (date(2027, 3, 1), date(2027, 3, 31), (date(2027, 2, 1), date(2027, 2, 28))),
    (date(2027, 3, 10), date(2027, 3, 19), (date(2027, 2, 28), date(2027, 3, 9))),
])
def test_the_previous_period(start: date, end: date, expected: tuple[date, date]) -> None:
    assert previous_period(start, end) == expected


def test_the_report_from_the_command_line_in_every_format(cli: Any, tmp_path: Any) -> None:
    import json

    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "<b>x</b>",
        "--theme", "funding", "--now", "2027-04-06T10:00")
    r = json.loads(cli("report", "disputes", "--from", "2027-04-01", "--to", "2027-06-30").stdout)
    assert r["raised"] == 1 and r["themes"] == {"funding": 1}
    for fmt in ("html", "csv", "md"):
        out = tmp_path / f"report.{fmt}"
        cli("report", "disputes", "--from", "2027-04-01", "--to", "2027-06-30", "--format", fmt,
            "--out", str(out))
        text = out.read_text()
        assert "Concerns raised" in text
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") >= 3 and "<script" not in html
    assert "--to 2027-03-01 is before --from" in cli.refused(
        "report", "disputes", "--from", "2027-04-01", "--to", "2027-03-01")
    assert "not known" in cli.refused(
        "report", "disputes", "--from", "2027-04-01", "--to", "2027-06-30", "--format", "pdf")


def test_every_figure_is_defined_in_the_docs() -> None:
    from drp.reporting.figures import DEFINITIONS

    docs = (CONFIG_DIR.parent / "docs" / "reports.md").read_text()
    for key in DEFINITIONS:
        assert f"`{key}`" in docs, key
