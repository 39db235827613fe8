"""Cover periods and transfers through the service layer, on SQLite and PostgreSQL: who may
set cover, what is refused (nothing written), the deputy receiving the absent person's work
and acting as their cover, the organisation file's `cover:` list, open alerts following a
child moved by a reloaded organisation file, and a vacant team manager's post."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from drp import db, timescales
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.errors import BadValue, ConfigError, NotFound, NotPermitted
from drp.ladder.protocol import Protocol
from drp.models import AccessLog, Alert, Cover, Event, OutboxMessage, Person
from drp.notify import Notifier
from notifications.outbox import deliver
from notifications.render import Renderer
from notifications.transports import FileTransport

from .conftest import DATA, LONDON, backends
from .support import databases

ORG = (DATA / "org.yaml").read_text()
Svc = Callable[[str, Callable[[AlertService], Any]], Any]


@pytest.fixture
def svc(org: Engine, protocol: Protocol, calendar: WorkingCalendar) -> Svc:
    """svc(when, fn): one unit of work as of then, queuing its e-mails in the outbox."""
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")

    def _run(when: str, fn: Callable[[AlertService], Any]) -> Any:
        with db.transaction(org) as session:
            return fn(AlertService(session, protocol=protocol, calendar=calendar,
                                   clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON,
                                   notifier=notifier))

    return _run


def counts(svc: Svc) -> tuple[int, ...]:
    """Cover rows, access-log rows, outbox rows and events: what a refusal leaves alone."""
    def read(s: AlertService) -> tuple[int, ...]:
        return tuple(s.s.exec(select(func.count()).select_from(t)).one()
                     for t in (Cover, AccessLog, OutboxMessage, Event))
    return svc("2027-03-01T09:00", read)


def mail_for(svc: Svc, message: str) -> list[str]:
    """Who was sent `message`, oldest first."""
    return svc("2027-03-01T09:00", lambda s: list(s.s.exec(
        select(OutboxMessage.recipient).where(OutboxMessage.message == message)
        .order_by(col(OutboxMessage.id)))))


def last_event(svc: Svc, alert_id: int) -> Event:
    return svc("2027-03-01T09:00", lambda s: s.s.exec(
        select(Event).where(Event.alert_id == alert_id)
        .order_by(col(Event.seq).desc())).first())


def raise_on(svc: Svc, child: str, iro: str, when: str = "2027-03-01T09:00") -> int:
    return int(svc(when, lambda s: s.raise_alert(iro, child, "No care plan shared")).id)


@backends
def test_cover_is_set_listed_and_ended_audited_and_both_people_told(svc: Svc) -> None:
    view = svc("2027-03-01T09:00", lambda s: s.set_cover(
        "irom.cat", "iro.ada", "iro.ben", date(2027, 3, 1), date(2027, 3, 12), "Annual leave"))
    assert (view.person, view.deputy, view.state, view.source, view.set_by) == (
        "iro.ada", "iro.ben", "running", "command", "irom.cat")
    assert sorted(mail_for(svc, "cover_set")) == ["iro.ada", "iro.ben"]
    listed = svc("2027-02-26T09:00", lambda s: [v.public() for v in s.list_covers("sw.dan")])
    assert listed == [{"person": "iro.ada", "deputy": "iro.ben", "from": "2027-03-01",
                       "to": "2027-03-12", "reason": "Annual leave", "source": "command",
                       "set_by": "irom.cat", "set_at": "2027-03-01T09:00:00+00:00",
                       "ended_at": None, "state": "planned"}]
    ended = svc("2027-03-05T12:00", lambda s: s.end_cover("irom.cat", "iro.ada"))
    assert [(v.person, v.state) for v in ended] == [("iro.ada", "ended")]
    assert sorted(mail_for(svc, "cover_ended")) == ["iro.ada", "iro.ben"]
    log = svc("2027-03-06T09:00", lambda s: [(a.actor, a.action, a.detail) for a in s.s.exec(
        select(AccessLog).where(col(AccessLog.action).like("cover%")).order_by(
            col(AccessLog.id)))])
    assert log == [
        ("irom.cat", "cover_set", "iro.ada covered by iro.ben from 2027-03-01 to 2027-03-12:"
                                  " Annual leave"),
        ("irom.cat", "cover_end", "iro.ada covered by iro.ben from 2027-03-01 to 2027-03-12:"
                                  " Annual leave")]
    with pytest.raises(BadValue, match="iro.ada has no cover running or planned to end"
                       ) as nothing:
        svc("2027-03-06T09:00", lambda s: s.end_cover("irom.cat", "iro.ada"))
    assert nothing.value.field == "person"
    # Ended, the period no longer overlaps: the same days may be given to someone else.
    svc("2027-03-06T09:00", lambda s: s.set_cover(
        "admin.max", "iro.ada", "irom.cat", date(2027, 3, 8), date(2027, 3, 9)))
    # A period already over has nothing to end (and nobody is told it ended).
    with pytest.raises(BadValue, match="no cover running or planned"):
        svc("2027-03-10T09:00", lambda s: s.end_cover("irom.cat", "iro.ada"))


@backends
def test_bad_cover_is_refused_in_one_line_naming_the_field_and_nothing_is_written(
    svc: Svc,
) -> None:
    svc("2027-03-01T09:00", lambda s: s.set_cover(
        "admin.max", "iro.ada", "iro.ben", date(2027, 3, 1), date(2027, 3, 12)))
    svc("2027-03-01T09:00", lambda s: s.set_cover(
        "admin.max", "iro.ben", "irom.cat", date(2027, 4, 1), date(2027, 4, 2)))

    def deactivate(s: AlertService) -> None:
        eve = s.s.exec(select(Person).where(Person.username == "sw.eve")).one()
        eve.active = False
        s.s.add(eve)

    svc("2027-03-01T09:00", deactivate)
    march = (date(2027, 3, 20), date(2027, 3, 25))
    cases: list[tuple[str | None, str, tuple[Any, ...]]] = [
        ("deputy", "tm.fay cannot cover for themselves", ("tm.fay", "tm.fay", *march)),
        ("starts", "iro.ada already has cover from 2027-03-01 to 2027-03-12 by"
         " iro.ben", ("iro.ada", "irom.cat", date(2027, 3, 12), date(2027, 3, 14))),
        ("deputy", "no active person 'tm.nobody'", ("tm.fay", "tm.nobody", *march)),
        ("deputy", "no active person 'sw.eve'", ("sw.dan", "sw.eve", *march)),
        ("person", "no active person 'sw.eve'", ("sw.eve", "sw.dan", *march)),
        ("ends", "last day 2027-03-19 is before its first day 2027-03-20",
         ("tm.fay", "tm.gus", date(2027, 3, 20), date(2027, 3, 19))),
        ("ends", "9999-12-31 is outside the dates drp accepts",
         ("tm.fay", "tm.gus", date(2027, 3, 20), date(9999, 12, 31))),
        ("starts", "1999-12-31 is outside the dates drp accepts",
         ("tm.fay", "tm.gus", date(1999, 12, 31), date(2027, 3, 1))),
        ("deputy", "iro.ben is away themselves from 2027-04-01 to 2027-04-02",
         ("iro.ada", "iro.ben", date(2027, 3, 30), date(2027, 4, 1))),
        ("starts", "iro.ben covers for iro.ada from 2027-03-01 to 2027-03-12, whose work"
         " would then reach nobody", ("iro.ben", "irom.cat", date(2027, 3, 12),
                                      date(2027, 3, 13))),
        # The IRO's independence holds under cover: neither side's work goes to the other.
        ("deputy", "iro.ada's work as an IRO may go only to another IRO or an IRO manager",
         ("iro.ada", "tm.fay", *march)),
        ("deputy", "tm.fay's work on the management line may not go to irom.cat",
         ("tm.fay", "irom.cat", *march)),
    ]
    before = counts(svc)
    for field, words, args in cases:
        with pytest.raises(BadValue, match=words) as refused:
            svc("2027-03-02T09:00", lambda s, a=args: s.set_cover("admin.max", *a))
        assert refused.value.field == field and "\n" not in str(refused.value), args
    # Who may: an IRO manager for IROs, a manager above the person on a team's line.
    refused_to = [("tm.gus", "iro.ada"), ("iro.ben", "iro.ada"), ("tm.fay", "tm.gus"),
                  ("tm.fay", "hos.ivy"), ("hos.jon", "tm.fay"), ("sw.dan", "sw.dan"),
                  ("irom.cat", "tm.fay")]
    for who, person in refused_to:
        with pytest.raises(NotPermitted, match=f"{who} may not set cover for {person}"):
            svc("2027-03-02T09:00", lambda s, w=who, p=person: s.set_cover(
                w, p, "ad.kim", date(2027, 5, 3), date(2027, 5, 4)))
    with pytest.raises(NotPermitted, match="tm.gus may not end cover for iro.ada"):
        svc("2027-03-02T09:00", lambda s: s.end_cover("tm.gus", "iro.ada"))
    assert counts(svc) == before
    allowed = [("tm.fay", "sw.dan"), ("hos.ivy", "tm.fay"), ("sm.hal", "tm.fay"),
               ("ad.kim", "hos.jon"), ("dcs.lou", "ad.kim"), ("irom.cat", "iro.ada")]
    for i, (who, person) in enumerate(allowed):
        day = date(2027, 6, 1 + 2 * i)
        svc("2027-03-02T09:00", lambda s, w=who, p=person, d=day: s.set_cover(
            w, p, "dcs.lou" if p != "iro.ada" else "iro.ben", d, d))


@backends
def test_the_deputy_of_an_iro_acts_as_their_cover_and_an_iro_manager_needs_cover(
    svc: Svc,
) -> None:
    aid = raise_on(svc, "R100", "iro.ada")

    def escalate(who: str) -> Callable[[AlertService], Any]:
        return lambda s: s.escalate(aid, who, "No response")

    with pytest.raises(NotPermitted, match="irom.cat may not escalate"):
        svc("2027-03-02T09:00", escalate("irom.cat"))
    with pytest.raises(NotFound):  # iro.ben does not see the child of another IRO
        svc("2027-03-02T09:00", escalate("iro.ben"))
    svc("2027-03-02T09:00", lambda s: s.set_cover(
        "admin.max", "iro.ada", "irom.cat", date(2027, 3, 2), date(2027, 3, 5)))
    svc("2027-03-02T10:00", escalate("irom.cat"))
    event = last_event(svc, aid)
    assert (event.kind, event.actor, event.as_cover_for, event.iro, event.team) == (
        "escalated", "irom.cat", "iro.ada", "iro.ada", "east-a")
    # The IRO's copy of the escalation goes to the cover, not the absent IRO.
    told = svc("2027-03-02T10:00", lambda s: set(s.s.exec(
        select(OutboxMessage.recipient).where(OutboxMessage.message == "escalated"))))
    assert "irom.cat" in told and "iro.ada" not in told
    svc("2027-03-03T10:00", lambda s: s.refer(aid, "irom.cat", "No plan at all",
                                                legal_advice="Legal services"))
    event = last_event(svc, aid)
    assert (event.kind, event.as_cover_for) == ("referred", "iro.ada")
    # In its own right (withdrawing an alert raised in error) the manager is not cover.
    svc("2027-03-04T09:00", lambda s: s.end_cover("admin.max", "iro.ada"))
    with pytest.raises(NotPermitted, match="irom.cat may not escalate"):
        svc("2027-03-04T10:00", escalate("irom.cat"))
    # Cover recorded but not yet begun, or over, gives nothing.
    svc("2027-03-04T10:00", lambda s: s.set_cover(
        "admin.max", "iro.ada", "iro.ben", date(2027, 3, 8), date(2027, 3, 9)))
    with pytest.raises(NotFound):
        svc("2027-03-05T10:00", escalate("iro.ben"))
    svc("2027-03-08T10:00", escalate("iro.ben"))
    assert last_event(svc, aid).as_cover_for == "iro.ada"
    with pytest.raises(NotFound):
        svc("2027-03-10T10:00", lambda s: s.show(aid, "iro.ben"))
    svc("2027-03-10T11:00", lambda s: s.withdraw(aid, "irom.cat", "Raised in error"))
    assert last_event(svc, aid).as_cover_for is None


@backends
def test_the_deputy_of_a_team_manager_is_responsible_told_and_responds_as_cover(
    svc: Svc, org: Engine, protocol: Protocol, calendar: WorkingCalendar,
) -> None:
    svc("2027-03-01T08:00", lambda s: s.set_cover(
        "hos.ivy", "tm.fay", "tm.gus", date(2027, 3, 1), date(2027, 3, 3), "Sick leave"))
    aid = int(svc("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "No care plan shared", due_on=date(2027, 3, 3))).id)
    raised_to = mail_for(svc, "alert_raised")
    assert "tm.gus" in raised_to and "tm.fay" not in raised_to
    view = svc("2027-03-01T10:00", lambda s: s.show(aid, "tm.gus"))
    assert view.responsible == "tm.gus"
    assert [a.id for a in svc("2027-03-01T10:00", lambda s: s.inbox("tm.gus"))] == [aid]
    assert svc("2027-03-01T10:00", lambda s: s.inbox("tm.fay")) == []
    svc("2027-03-01T11:00", lambda s: s.acknowledge(aid, "tm.gus"))
    # The timescale run's reminder (a working day before 3 March) goes to the deputy too.
    when = parse_instant("2027-03-02T08:00", LONDON)
    timescales.run(org, lambda session: AlertService(
        session, protocol=protocol, calendar=calendar, clock=FixedClock(when), tz=LONDON,
        notifier=Notifier(renderer=Renderer(), base_url="https://drp.example")),
        protocol, calendar, date(2027, 3, 2))
    reminded = mail_for(svc, "reminder")
    assert "tm.gus" in reminded and "tm.fay" not in reminded
    svc("2027-03-02T08:30", lambda s: s.respond(aid, "tm.gus", "The plan is being written"))
    events = svc("2027-03-02T08:30", lambda s: [
        (e.kind, e.actor, e.as_cover_for) for e in s.s.exec(
            select(Event).where(Event.alert_id == aid).order_by(col(Event.seq)))])
    assert events[1:] == [("acknowledged", "tm.gus", "tm.fay"), ("reminder", "system", None),
                          ("responded", "tm.gus", "tm.fay")]
    # The cover ended, the deputy no longer sees the other team's child.
    svc("2027-03-02T09:00", lambda s: s.end_cover("hos.ivy", "tm.fay"))
    with pytest.raises(NotFound):
        svc("2027-03-02T10:00", lambda s: s.respond(aid, "tm.gus", "More"))
    assert svc("2027-03-02T10:00", lambda s: s.show(aid, "tm.fay")).responsible == "tm.fay"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.yaml"
    path.write_text(text)
    return path


def moved(text: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    return text


R200_EAST = ("{ref: R200, team: west-a, iro: iro.ben, social_worker: sw.eve}",
             "{ref: R200, team: east-a, iro: iro.ada, social_worker: sw.dan}")


@backends
def test_the_organisation_file_holds_cover_and_a_reload_keeps_cover_set_by_command(
    svc: Svc, tmp_path: Path,
) -> None:
    cover = ("cover:\n  - {person: tm.fay, deputy: tm.gus, from: 2027-03-01, to: 2027-03-05,"
             " reason: Leave}\n")
    loaded = svc("2027-03-01T08:00", lambda s: s.load_organisation(
        write(tmp_path, ORG + cover)))
    assert loaded.result.covers == 1
    svc("2027-03-01T08:30", lambda s: s.set_cover(
        "admin.max", "iro.ada", "iro.ben", date(2027, 3, 1), date(2027, 3, 5)))
    aid = raise_on(svc, "R100", "iro.ada")
    assert svc("2027-03-01T10:00", lambda s: s.show(aid, "tm.gus")).responsible == "tm.gus"

    def rows() -> list[tuple[str, ...]]:
        return svc("2027-03-01T10:00", lambda s: sorted(
            (v.person, v.deputy, v.source, v.state) for v in s.list_covers()))

    assert rows() == [("iro.ada", "iro.ben", "command", "running"),
                      ("tm.fay", "tm.gus", "file", "running")]
    # Reloading the same file changes nothing; a changed file replaces only its own rows.
    svc("2027-03-01T11:00", lambda s: s.load_organisation(write(tmp_path, ORG + cover)))
    assert rows() == [("iro.ada", "iro.ben", "command", "running"),
                      ("tm.fay", "tm.gus", "file", "running")]
    svc("2027-03-01T12:00", lambda s: s.load_organisation(write(tmp_path, ORG + cover.replace(
        "tm.fay, deputy: tm.gus", "sw.dan, deputy: sw.eve"))))
    assert rows() == [("iro.ada", "iro.ben", "command", "running"),
                      ("sw.dan", "sw.eve", "file", "running")]
    assert svc("2027-03-01T12:00", lambda s: s.show(aid, "tm.fay")).responsible == "tm.fay"
    log = svc("2027-03-01T12:00", lambda s: [(a.actor, a.action) for a in s.s.exec(
        select(AccessLog).where(col(AccessLog.action).like("cover%")).order_by(
            col(AccessLog.id)))])
    assert log == [("system", "cover_set"), ("admin.max", "cover_set"),
                   ("system", "cover_end"), ("system", "cover_set")]
    assert mail_for(svc, "cover_ended") == ["tm.gus", "tm.fay"]
    # A file's cover overlapping cover set by command is refused whole, naming its line.
    before = counts(svc)
    clash = "  - {person: iro.ada, deputy: irom.cat, from: 2027-03-04, to: 2027-03-08}\n"
    with pytest.raises(ConfigError, match=r"line 31: cover\[1\]: iro.ada already has cover"
                                          r" from 2027-03-01 to 2027-03-05 by iro.ben"):
        svc("2027-03-01T13:00", lambda s: s.load_organisation(write(
            tmp_path, ORG + cover + clash)))
    assert counts(svc) == before


@backends
def test_open_alerts_follow_a_child_moved_to_another_team_and_iro(
    svc: Svc, tmp_path: Path,
) -> None:
    closed = raise_on(svc, "R200", "iro.ben", "2027-02-01T09:00")
    svc("2027-02-01T10:00", lambda s: s.resolve(closed, "iro.ben", "Sorted"))
    aid = int(svc("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ben", "R200", "No pathway plan", stage="stage1")).id)
    svc("2027-03-01T09:30", lambda s: s.acknowledge(aid, "tm.gus"))
    with pytest.raises(NotPermitted, match="only an administrator may"):
        svc("2027-03-02T09:00", lambda s: s.load_organisation(
            write(tmp_path, moved(ORG, R200_EAST)), "irom.cat"))
    loaded = svc("2027-03-02T09:00", lambda s: s.load_organisation(
        write(tmp_path, moved(ORG, R200_EAST)), "admin.max"))
    assert [t.describe() for t in loaded.transfers] == [
        f"alert {aid} (child R200): team west-a to east-a; IRO iro.ben to iro.ada;"
        " responsible tm.gus to tm.fay"]
    assert f"Transfer: alert {aid} (child R200)" in loaded.lines()[-1]
    event = last_event(svc, aid)
    assert (event.kind, event.actor, event.team, event.iro, event.from_stage) == (
        "transferred", "admin.max", "east-a", "iro.ada", "stage1")
    assert {k: event.data[k] for k in ("from", "to")} == {
        "from": {"team": "west-a", "iro": "iro.ben", "responsible": "tm.gus"},
        "to": {"team": "east-a", "iro": "iro.ada", "responsible": "tm.fay"}}
    assert "iro.ben to iro.ada" in (event.comment or "")
    assert sorted(mail_for(svc, "transferred")) == ["iro.ada", "tm.fay"]
    alert = svc("2027-03-02T09:00", lambda s: s.s.get(Alert, aid))
    assert alert.acknowledged_at is None  # the new manager has still to acknowledge
    # The closed alert and the earlier events keep the team and IRO of their day.
    assert last_event(svc, closed).kind == "resolved"
    assert last_event(svc, closed).team == "west-a"
    # The old IRO has lost the alert; the new one has it, and its powers.
    with pytest.raises(NotFound):
        svc("2027-03-02T10:00", lambda s: s.show(aid, "iro.ben"))
    with pytest.raises(NotFound):
        svc("2027-03-02T10:00", lambda s: s.escalate(aid, "iro.ben", "No response"))
    view = svc("2027-03-02T10:00", lambda s: s.escalate(aid, "iro.ada", "No response"))
    assert view.stage == "stage2"
    assert svc("2027-03-02T10:00", lambda s: s.show(aid, "iro.ada")).responsible == "hos.ivy"
    # Reloading the same file moves nothing.
    again = svc("2027-03-03T09:00", lambda s: s.load_organisation(
        write(tmp_path, moved(ORG, R200_EAST))))
    assert again.transfers == [] and last_event(svc, aid).kind == "escalated"


@backends
def test_a_team_manager_removed_leaves_a_vacancy_that_falls_to_the_service_manager(
    svc: Svc, tmp_path: Path,
) -> None:
    aid = int(svc("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "No pathway plan", stage="stage1")).id)
    other = raise_on(svc, "R200", "iro.ben")
    svc("2027-02-01T09:00", lambda s: s.set_cover(
        "admin.max", "tm.fay", "tm.gus", date(2027, 3, 1), date(2027, 3, 31)))
    gone = moved(ORG, ("  - {username: tm.fay, name: Fay Manager, email: fay@riverside.example,"
                       " roles: [team_manager]}\n", ""),
                 ("{key: east-a, name: East A, service: east, team_manager: tm.fay}",
                  "{key: east-a, name: East A, service: east}"))
    # Loaded on a clock behind the alert (a simulated one): the transfer is dated with the
    # alert's last event, so its events stay in order.
    loaded = svc("2027-02-20T09:00", lambda s: s.load_organisation(write(tmp_path, gone)))
    assert loaded.result.vacancies == [
        "team east-a has no team manager: its stage falls to Hal Services (service manager)"]
    assert "Vacancy: team east-a has no team manager: its stage falls to Hal Services" \
           " (service manager)." in loaded.lines()
    assert [t.alert_id for t in loaded.transfers] == [aid]  # R200's line did not change
    # Fay's cover ends with her place in the file (audited; her deputy is told).
    assert "Cover ended: tm.gus covering for tm.fay (one of them is no longer in the file)." \
           in loaded.lines()
    assert [c.state for c in svc("2027-03-02T09:00", lambda s: s.list_covers())] == ["ended"]
    assert mail_for(svc, "cover_ended") == ["tm.gus"]
    assert last_event(svc, other).kind == "raised"
    event = last_event(svc, aid)
    assert (event.kind, event.data["to"]["responsible"], event.iro) == (
        "transferred", "sm.hal", "iro.ada")
    assert event.at == parse_instant("2027-03-01T09:00", LONDON)
    assert mail_for(svc, "transferred") == ["iro.ada", "sm.hal"]
    assert svc("2027-03-02T10:00", lambda s: s.show(aid, "sm.hal")).responsible == "sm.hal"
    svc("2027-03-02T11:00", lambda s: s.respond(aid, "sm.hal", "Plan by Friday"))


def test_drp_cover_set_list_and_end_on_the_command_line(
    drp_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from drp.cli import main

    def drp(*args: str, code: int = 0) -> tuple[str, str]:
        monkeypatch.setattr(sys, "argv", ["drp", *args])
        with pytest.raises(SystemExit) as done:
            main()
        got = capsys.readouterr()
        assert (done.value.code or 0) == code, (args, got.out, got.err)
        return got.out, got.err

    databases.copy_template("schema", drp_env / "drp.db")  # as `drp init` leaves it
    drp("org", "load", str(DATA / "org.yaml"))
    out, _ = drp("cover", "set", "tm.fay", "--by", "tm.gus", "--from", "2027-03-01", "--to",
                 "2027-03-05", "--reason", "Leave", "--now", "2027-03-01T09:00")
    assert out.strip() == ("Gus Manager (tm.gus) covers for Fay Manager (tm.fay) from"
                           " 2027-03-01 to 2027-03-05 (running).")
    _, err = drp("cover", "set", "tm.fay", "--by", "hos.ivy", "--from", "2027-03-04", "--to",
                 "2027-03-09", code=1)
    assert err.startswith("drp: tm.fay already has cover from 2027-03-01 to 2027-03-05")
    assert err.strip().endswith("(--from)") and len(err.strip().splitlines()) == 1
    _, err = drp("cover", "set", "tm.fay", "--by", "tm.fay", "--from", "2027-04-01", "--to",
                 "2027-04-02", code=1)
    assert err.strip().endswith("(--by)")
    _, err = drp("cover", "set", "tm.fay", "--by", "tm.gus", "--from", "2027-04-01", "--to",
                 "9999-12-31", code=1)
    assert "--to 9999-12-31 is outside the dates drp accepts" in err
    out, _ = drp("cover", "list", "--json", "--now", "2027-03-02T09:00")
    assert [(c["person"], c["deputy"], c["from"], c["to"], c["state"])
            for c in json.loads(out)] == [("tm.fay", "tm.gus", "2027-03-01", "2027-03-05",
                                           "running")]
    out, _ = drp("cover", "end", "tm.fay", "--now", "2027-03-02T09:00")
    assert out.startswith("Ended: tm.gus covering for tm.fay")
    out, _ = drp("cover", "list", "--json")
    assert json.loads(out)[0]["state"] == "ended"
    assert len(list((drp_env / "mail").glob("*cover_*.eml"))) == 4


def test_the_administration_page_load_transfers_in_the_same_transaction(web: Any) -> None:
    from .conftest import sign_in

    app, _clock, rt = web
    with db.transaction(rt.engine) as session:  # (no theme suggester: no model to train)
        aid = int(AlertService(session, protocol=rt.protocol, calendar=rt.calendar,
                               clock=FixedClock(parse_instant("2027-03-01T08:00", LONDON)),
                               tz=LONDON).raise_alert("iro.ben", "R200", "No plan").id)
    admin = sign_in(app, "admin.max")
    r = admin.post("/admin/org", data={"csrf_token": admin.csrf}, files={
        "file": ("org.yaml", moved(ORG, R200_EAST).encode(), "application/yaml")})
    assert r.status_code == 200, r.text[:2000]
    assert (f"Transfer: alert {aid} (child R200): team west-a to east-a; IRO iro.ben to"
            " iro.ada; responsible tm.gus to tm.fay.") in r.text
    with db.transaction(rt.engine) as session:
        event = session.exec(select(Event).where(Event.alert_id == aid)
                             .order_by(col(Event.seq).desc())).first()
        assert event is not None
        assert (event.kind, event.actor, event.iro) == ("transferred", "admin.max", "iro.ada")


@backends
def test_the_deputy_of_a_senior_manager_or_an_iro_manager_sees_and_does_their_work(
    svc: Svc,
) -> None:
    """Cover lends the absent person's reach: the assistant director's deputy (a head of
    service elsewhere) sees the alert at stage 3, has it in their inbox, acknowledges and
    responds as cover; the IRO manager's deputy (an IRO) gets the IRO manager's mail and may
    withdraw as cover for them; a manager covering a head of service responds at stage 1 as
    cover for them, by the head of service's rank on the child's line."""
    aid = int(svc("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "Placement at risk", stage="stage3")).id)
    with pytest.raises(NotFound):  # hos.jon heads the west; R100 is in the east
        svc("2027-03-01T10:00", lambda s: s.show(aid, "hos.jon"))
    svc("2027-03-01T10:00", lambda s: s.set_cover(
        "admin.max", "ad.kim", "hos.jon", date(2027, 3, 1), date(2027, 3, 5)))
    svc("2027-03-01T10:00", lambda s: s.set_cover(
        "admin.max", "irom.cat", "iro.ben", date(2027, 3, 1), date(2027, 3, 5)))
    assert [a.id for a in svc("2027-03-01T11:00", lambda s: s.inbox("hos.jon"))] == [aid]
    svc("2027-03-01T11:00", lambda s: s.acknowledge(aid, "hos.jon"))
    assert last_event(svc, aid).as_cover_for == "ad.kim"
    svc("2027-03-01T12:00", lambda s: s.respond(aid, "hos.jon", "Panel on Thursday"))
    assert (last_event(svc, aid).kind, last_event(svc, aid).as_cover_for) == (
        "responded", "ad.kim")
    svc("2027-03-01T13:00", lambda s: s.escalate(aid, "iro.ada", "Panel too late"))
    told = mail_for(svc, "escalated")
    assert "iro.ben" in told and "irom.cat" not in told  # the IRO manager's copy
    svc("2027-03-01T14:00", lambda s: s.withdraw(aid, "iro.ben", "Raised in error"))
    assert last_event(svc, aid).as_cover_for == "irom.cat"

    other = int(svc("2027-03-02T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "No plan", stage="stage1", separate=True)).id)
    svc("2027-03-02T09:00", lambda s: s.set_cover(
        "admin.max", "hos.ivy", "tm.gus", date(2027, 3, 2), date(2027, 3, 5)))
    svc("2027-03-02T10:00", lambda s: s.respond(other, "tm.gus", "Plan by Friday"))
    assert last_event(svc, other).as_cover_for == "hos.ivy"


def transfer_mail(svc: Svc, org: Engine, alert_id: int, folder: Path
                  ) -> dict[str, tuple[str, str]]:
    """The transfer e-mails for one alert as sent: recipient -> (subject, text on one line)
    (delivery keeps what it sent in the row)."""
    deliver(org, FileTransport(folder, "drp@riverside.example"),
            lambda: parse_instant("2027-03-03T09:00", LONDON), due_only=False)
    return svc("2027-03-03T09:00", lambda s: {
        # (the footer, why they receive it, left out)
        m.recipient: (m.subject, " ".join(m.text_body.split("You receive this as")[0].split()))
        for m in s.s.exec(
            select(OutboxMessage).where(OutboxMessage.message == "transferred",
                                        OutboxMessage.alert_id == alert_id))})


@backends
def test_a_transfer_asks_only_those_newly_asked_and_each_for_what_they_can_do(
    svc: Svc, org: Engine, tmp_path: Path,
) -> None:
    acknowledged = raise_on(svc, "R100", "iro.ada")
    answered = raise_on(svc, "R101", "iro.ben")
    moving = raise_on(svc, "R200", "iro.ben")
    svc("2027-03-01T10:00", lambda s: s.acknowledge(acknowledged, "tm.fay"))
    svc("2027-03-01T10:00", lambda s: s.respond(answered, "tm.fay", "Plan shared Friday"))
    # R100 and R101 change IRO only (Fay stays responsible); R200 moves to Fay's team.
    swapped = moved(ORG, ("{ref: R100, team: east-a, iro: iro.ada,",
                          "{ref: R100, team: east-a, iro: iro.ben,"),
                    ("{ref: R101, team: east-a, iro: iro.ben,",
                     "{ref: R101, team: east-a, iro: iro.ada,"), R200_EAST)
    svc("2027-03-02T09:00", lambda s: s.load_organisation(write(tmp_path, swapped)))

    # Fay has acknowledged: still asked to respond, not asked to acknowledge again.
    mail = transfer_mail(svc, org, acknowledged, tmp_path / "mail")
    subject, text = mail["tm.fay"]
    assert subject == "[drp] For information: alert 1 (R100) transferred"
    assert "You are still asked to respond at this stage, by 8 March 2027." in text
    assert "acknowledge" not in text.lower() and "You are now" not in text
    assert mail["iro.ben"][0] == "[drp] Now your alert as IRO: alert 1 (R100) transferred"
    assert mail["sw.dan"][0] == "[drp] For information: alert 1 (R100) transferred"
    # Fay has answered: nothing asked of her (nor of the social worker).
    mail = transfer_mail(svc, org, answered, tmp_path / "mail")
    subject, text = mail["tm.fay"]
    assert subject == "[drp] For information: alert 2 (R101) transferred"
    assert "respond" not in text.lower() and "acknowledge" not in text.lower()
    assert "The response at this stage has been recorded." in text
    assert mail["sw.dan"][0] == "[drp] For information: alert 2 (R101) transferred"
    # The moved child: its new manager acknowledges and responds; its new social worker may
    # respond at this stage, but acknowledging is the manager's.
    mail = transfer_mail(svc, org, moving, tmp_path / "mail")
    subject, text = mail["tm.fay"]
    assert subject == ("[drp] Acknowledge, then respond by 8 March: alert 3 (R200)"
                       " transferred")
    assert ("You are now the one asked to respond at this stage (due 8 March 2027):"
            " acknowledge it in drp, then respond.") in text
    subject, text = mail["sw.dan"]
    assert subject == "[drp] Respond by 8 March: alert 3 (R200) transferred"
    assert ("You are now asked to respond at this stage too (due 8 March 2027): respond in"
            " drp.") in text
    assert "acknowledge" not in text.lower()
