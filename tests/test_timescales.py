"""The timescale run over weeks of simulated time: every reminder, reminder to acknowledge,
escalation and pause point on the right working day, exactly once, across weekends and
Easter; reruns change nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import db, timescales
from drp.alerts import ActionIn, AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol
from drp.models import Alert, Event, OutboxMessage
from drp.notify import Notifier
from notifications.render import Renderer

from .conftest import LONDON, Run, backends

CAL = WorkingCalendar()


def flow_at(engine: Engine, protocol: Protocol, when: str) -> timescales.TimescaleReport:
    instant = parse_instant(when, LONDON)
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")

    def make(session: Session) -> AlertService:
        return AlertService(session, protocol=protocol, calendar=CAL,
                            clock=FixedClock(instant), tz=LONDON, notifier=notifier)

    return timescales.run(engine, make, protocol, CAL, instant.astimezone(LONDON).date())


def system_events(engine: Engine, alert_id: int) -> list[tuple[str, str, str | None]]:
    with Session(engine) as s:
        rows = s.exec(select(Event).where(Event.alert_id == alert_id, Event.actor == "system")
                      .order_by(col(Event.seq))).all()
        return [(e.at.astimezone(LONDON).date().isoformat(), e.kind, e.to_stage) for e in rows]


def every_day(engine: Engine, protocol: Protocol, first: date, last: date,
              times: tuple[str, ...] = ("08:00", "13:00")) -> None:
    day = first
    while day <= last:
        for i, t in enumerate(times):  # twice a day: the second run must change nothing
            report = flow_at(engine, protocol, f"{day.isoformat()}T{t}")
            if i:  # everything due that day went with its first run
                assert report.counts() == {k: 0 for k in report.counts()}, (day, t, report)
        day += timedelta(days=1)


@backends
def test_reminders_and_escalations_across_easter_up_to_the_stage3_pause_point(
    run: Run, org: Engine, protocol: Protocol
) -> None:
    aid = int(run("2027-03-18T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)  # stage 1 due Thu 25 March
    every_day(org, protocol, date(2027, 3, 19), date(2027, 4, 23))
    assert system_events(org, aid) == [
        ("2027-03-19", "ack_reminder", "stage1"),   # unacknowledged a working day (13:00 run)
        ("2027-03-24", "reminder", "stage1"),       # one working day before 25 March
        ("2027-03-30", "auto_escalated", "stage2"),  # Good Friday and Easter Monday skipped
        ("2027-03-31", "ack_reminder", "stage2"),   # entered at 08:00: the 13:00 run after
        ("2027-04-05", "reminder", "stage2"),       # stage 2 due Tue 6 April
        ("2027-04-07", "auto_escalated", "stage3"),
        ("2027-04-08", "ack_reminder", "stage3"),
        ("2027-04-13", "reminder", "stage3"),       # stage 3 due Wed 14 April
        ("2027-04-15", "overdue", "stage3"),        # a pause point: the IRO decides, once
    ]
    view = run("2027-04-23T17:00", lambda s: s.show(aid, "irom.cat"))
    # The formal clock started when it was raised at stage 1 and escalating keeps it: 20
    # working days from 18 March, Easter skipped, is Monday 19 April.
    assert (view.stage, view.stage_due, view.resolution_due) == (
        "stage3", date(2027, 4, 14), date(2027, 4, 19))
    with Session(org) as s:
        asked = sorted((m.message, m.recipient) for m in s.exec(select(OutboxMessage))
                       if m.message in ("ack_reminder", "overdue"))
    # Each stage's responsible person is asked to acknowledge; at stage 3 the overdue
    # response goes to the assistant director, the IRO and the IRO manager.
    assert asked == [("ack_reminder", "ad.kim"), ("ack_reminder", "hos.ivy"),
                     ("ack_reminder", "tm.fay"), ("overdue", "ad.kim"), ("overdue", "iro.ada"),
                     ("overdue", "irom.cat")]


@backends
def test_a_stage_unacknowledged_for_a_working_day_reminds_the_person_responsible_once(
    run: Run, org: Engine, protocol: Protocol
) -> None:
    from drp.models import Cover, Person

    with db.transaction(org) as s:  # Ivy (head of service, east) is away; Hal covers her
        ids = {p.username: p.id for p in s.exec(select(Person))}
        s.add(Cover(person_id=ids["hos.ivy"], deputy_id=ids["sm.hal"], starts=date(2027, 3, 1),
                    ends=date(2027, 3, 12), created_by="admin.max",
                    created_at=parse_instant("2027-03-01T09:00", LONDON)))
    # Raised on Friday 5 March: unacknowledged when that working day ends, so reminded with
    # Monday's first run (not Friday afternoon's, nor again later on Monday).
    waiting = int(run("2027-03-05T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    seen = int(run("2027-03-05T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "y", stage="stage1", separate=True)).id)
    covered = int(run("2027-03-05T10:00", lambda s: s.raise_alert(
        "iro.ben", "R101", "z", stage="stage2")).id)
    run("2027-03-05T15:00", lambda s: s.acknowledge(seen, "tm.fay"))
    assert flow_at(org, protocol, "2027-03-05T17:00").ack_reminded == []
    assert flow_at(org, protocol, "2027-03-08T07:00").ack_reminded == [waiting, covered]
    assert flow_at(org, protocol, "2027-03-08T07:00").counts()["ack_reminded"] == 0  # rerun
    assert flow_at(org, protocol, "2027-03-08T16:00").counts()["ack_reminded"] == 0
    # Raised on a Sunday: Monday is its first working day, so Tuesday's first run reminds.
    sunday = int(run("2027-03-07T12:00", lambda s: s.raise_alert(
        "iro.ben", "R200", "w", stage="stage1")).id)
    assert flow_at(org, protocol, "2027-03-08T17:00").ack_reminded == []
    assert flow_at(org, protocol, "2027-03-09T07:00").ack_reminded == [sunday]
    every_day(org, protocol, date(2027, 3, 9), date(2027, 3, 10), ("09:00",))
    assert [k for _, k, _ in system_events(org, waiting)].count("ack_reminder") == 1
    assert system_events(org, seen) == []  # acknowledged (its due-date reminder is on 11th)
    with Session(org) as s:
        told = sorted((m.alert_id, m.recipient) for m in s.exec(select(OutboxMessage))
                      if m.message == "ack_reminder")
        marked = {a.id: a.ack_reminded_for for a in s.exec(select(Alert))}
    assert told == [(waiting, "tm.fay"), (covered, "sm.hal"),  # the cover, not hos.ivy
                    (sunday, "tm.gus")]
    assert marked == {waiting: date(2027, 3, 12), seen: None, covered: date(2027, 3, 12),
                      sunday: date(2027, 3, 12)}


@backends
def test_escalating_automatically_from_informal_starts_the_formal_clock_on_either_path(
    org: Engine, protocol: Protocol, monkeypatch: Any
) -> None:
    """A council whose informal stage escalates by itself: the run's set-based writer and the
    service layer (its fallback) both start the formal clock on the day of the escalation."""
    from drp.batch import Batch, StaleChunk

    data = protocol.model_dump()
    data["stages"][0]["when_overdue"] = "escalate"
    eager = Protocol.model_validate(data)

    def raise_on(when: str, iro: str, ref: str) -> int:
        with db.transaction(org) as s:
            svc = AlertService(s, protocol=eager, calendar=CAL, tz=LONDON,
                               clock=FixedClock(parse_instant(when, LONDON)))
            return int(svc.raise_alert(iro, ref, "x").id or 0)

    one_by_one = raise_on("2027-03-01T10:00", "iro.ada", "R100")  # informal due Mon 8 March
    bulk = raise_on("2027-03-02T10:00", "iro.ben", "R101")        # due Tuesday 9 March
    original = Batch.overdue

    def refuse_the_first(self: Batch, session: Session, chunk: list[int]) -> Any:
        if one_by_one in chunk:
            raise StaleChunk("as if it changed under the run")
        return original(self, session, chunk)

    monkeypatch.setattr(Batch, "overdue", refuse_the_first)
    assert flow_at(org, eager, "2027-03-09T08:00").escalated == [one_by_one]
    assert flow_at(org, eager, "2027-03-10T08:00").escalated == [bulk]
    with Session(org) as s:
        alerts = {a.id: (a.stage, a.formal_since, a.resolution_due, a.stage_due)
                  for a in s.exec(select(Alert))}
    # 20 working days from Tuesday 9 March 2027: 10-12 (3), 15-19 (8), 22-25 (12; Good
    # Friday and Easter Monday off), 30 March-2 April (16), 5-8 April (20). From the 10th: 9th.
    assert alerts[one_by_one] == ("stage1", date(2027, 3, 9), date(2027, 4, 8),
                                  date(2027, 3, 16))
    assert alerts[bulk] == ("stage1", date(2027, 3, 10), date(2027, 4, 9), date(2027, 3, 17))


@backends
def test_a_response_stops_the_clock_of_the_stage(run: Run, org: Engine,
                                                  protocol: Protocol) -> None:
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)  # due Mon 8 March
    run("2027-03-04T10:00", lambda s: s.respond(aid, "tm.fay", "On it"))
    every_day(org, protocol, date(2027, 3, 2), date(2027, 3, 12), ("09:00",))
    assert system_events(org, aid) == []


@backends
def test_the_pause_points_and_the_cafcass_prompt_notify_once_and_never_escalate(
    run: Run, org: Engine, protocol: Protocol
) -> None:
    informal = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "informal")).id)           # due 8 March, remind_iro
    third = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "AD", stage="stage3", separate=True)).id)  # remind_iro
    last = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "top", stage="stage4", separate=True)).id)  # consider_cafcass
    for aid in (informal, third, last):  # the stages' people acknowledge: no reminder for it
        run("2027-03-01T11:00", lambda s, a=aid: s.acknowledge(
            a, {informal: "tm.fay", third: "ad.kim", last: "dcs.lou"}[a]))
    every_day(org, protocol, date(2027, 3, 2), date(2027, 3, 16))
    assert system_events(org, informal) == [
        ("2027-03-05", "reminder", "informal"), ("2027-03-09", "overdue", "informal")]
    assert system_events(org, third) == [
        ("2027-03-05", "reminder", "stage3"), ("2027-03-09", "overdue", "stage3")]
    assert system_events(org, last) == [
        ("2027-03-05", "reminder", "stage4"), ("2027-03-09", "cafcass_prompt", "stage4")]
    with Session(org) as s:
        messages = sorted((m.alert_id, m.message, m.recipient)
                          for m in s.exec(select(OutboxMessage))
                          if m.message in ("overdue", "cafcass_consider"))
    # Informally, the IRO and the stage's people; at stage 3 the IRO manager too.
    assert messages == [
        (informal, "overdue", "iro.ada"), (informal, "overdue", "sw.dan"),
        (informal, "overdue", "tm.fay"),
        (third, "overdue", "ad.kim"), (third, "overdue", "iro.ada"),
        (third, "overdue", "irom.cat"),
        (last, "cafcass_consider", "iro.ada"), (last, "cafcass_consider", "irom.cat")]
    # An extension gives the pause point a new due date, and a new notice when it passes.
    run("2027-03-17T10:00", lambda s: s.extend(informal, "iro.ada", date(2027, 3, 19), "Leave"))
    every_day(org, protocol, date(2027, 3, 18), date(2027, 3, 23), ("09:00",))
    assert [k for _, k, _ in system_events(org, informal)][2:] == ["reminder", "overdue"]


@backends
def test_a_hold_ends_on_its_date_and_the_clock_runs_again(run: Run, org: Engine,
                                                           protocol: Protocol) -> None:
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    run("2027-03-02T10:00", lambda s: s.hold(aid, "iro.ada", "Court", until=date(2027, 3, 6)))
    every_day(org, protocol, date(2027, 3, 3), date(2027, 3, 12), ("09:00",))
    events = system_events(org, aid)
    assert events[0] == ("2027-03-08", "resumed", "stage1")  # Saturday's end, next working day
    # Held 2 to 8 March: four working days (3, 4, 5, 8) move the due date 8 -> 12 March.
    assert ("2027-03-11", "reminder", "stage1") in events
    assert not any(k == "auto_escalated" for _, k, _ in events)


@backends
def test_an_agreed_action_overdue_is_told_once_even_after_resolution(
    run: Run, org: Engine, protocol: Protocol
) -> None:
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    run("2027-03-02T10:00", lambda s: s.respond(
        aid, "tm.fay", "Plan", [ActionIn("Write it", date(2027, 3, 4), owner="sw.dan")]))
    run("2027-03-03T10:00", lambda s: s.resolve(aid, "iro.ada", "Agreed"))
    every_day(org, protocol, date(2027, 3, 4), date(2027, 3, 10), ("09:00",))
    assert system_events(org, aid) == [("2027-03-04", "action_reminder", "stage1"),  # due day
                                       ("2027-03-05", "action_overdue", "stage1")]
    with Session(org) as s:
        told = sorted(m.recipient for m in s.exec(select(OutboxMessage))
                      if m.message == "action_overdue")
    assert told == ["iro.ada", "sw.dan"]


def test_nothing_happens_on_a_weekend_or_bank_holiday(run: Run, org: Engine,
                                                      protocol: Protocol) -> None:
    run("2027-03-01T10:00", lambda s: s.raise_alert("iro.ada", "R100", "x", stage="stage1"))
    for day in ("2027-03-13T09:00", "2027-03-26T09:00"):  # a Saturday; Good Friday
        report = flow_at(org, protocol, day)
        assert not report.working_day and report.counts()["escalated"] == 0


def test_one_refused_alert_does_not_hold_up_the_rest(run: Run, org: Engine,
                                                      protocol: Protocol, tmp_path: Any) -> None:
    from drp.org import load_org

    from .conftest import DATA

    ids = [int(run("2027-03-01T10:00", lambda s, ref=ref: s.raise_alert(
        "iro.ben", ref, "x", stage="stage1")).id) for ref in ("R101", "R200")]
    # The west service loses its head of service: R200's alert cannot go to stage 2.
    text = (DATA / "org.yaml").read_text().replace(
        "{key: west, name: West Service, head_of_service: hos.jon}", "{key: west, name: West}")
    text = text.replace("  - {ref: R200, team: west-a, iro: iro.ben, social_worker: sw.eve}\n", "")
    (tmp_path / "org.yaml").write_text(text)
    with db.transaction(org) as s:
        load_org(s, tmp_path / "org.yaml", protocol)
    report = flow_at(org, protocol, "2027-03-09T09:00")
    assert report.escalated == [ids[0]]
    assert len(report.problems) == 1 and "head of service" in report.problems[0]


def test_the_due_set_is_found_by_a_few_queries(run: Run, org: Engine, protocol: Protocol) -> None:
    from sqlalchemy import event

    for _ in range(30):
        run("2027-03-01T10:00", lambda s: s.raise_alert("iro.ada", "R100", "x", stage="stage1",
                                                        separate=True))
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(org, "before_cursor_execute", count)
    try:
        with Session(org) as s:
            due = timescales.find_due(s, protocol, CAL, date(2027, 3, 9))
    finally:
        event.remove(org, "before_cursor_execute", count)
    assert len(due.overdue) == 30 and len(statements) <= 4


Make = Callable[[Session], AlertService]
