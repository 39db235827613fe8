"""Agreed actions by e-mail: the owner is told when an action is theirs (not when they agreed
it themselves), and reminded once, a few working days before it is due, by the timescale run;
nothing for a done action or a withdrawn alert, and the working days count around bank
holidays. Each message carries the action's number and date, never its text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import db, timescales
from drp.alerts import ActionIn, AlertService
from drp.batch import Batch, ChunkResult, StaleChunk
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder import due
from drp.ladder.protocol import Protocol
from drp.models import Event, OutboxMessage
from drp.notify import Notifier
from notifications.render import Renderer, load_context

from .conftest import LONDON, backends

CAL = WorkingCalendar()
NOTIFIER = Notifier(renderer=Renderer(), base_url="https://drp.example")
SECRET = "Share the plan with Mrs Example at 12 Acacia Road"  # free text: never e-mailed


def act(engine: Engine, protocol: Protocol, when: str, fn: Callable[[AlertService], Any]
        ) -> Any:
    instant = parse_instant(when, LONDON)
    with db.transaction(engine) as session:
        svc = AlertService(session, protocol=protocol, calendar=CAL, clock=FixedClock(instant),
                           tz=LONDON, notifier=NOTIFIER)
        return fn(svc)


def flow_at(engine: Engine, protocol: Protocol, when: str) -> timescales.TimescaleReport:
    instant = parse_instant(when, LONDON)

    def make(session: Session) -> AlertService:
        return AlertService(session, protocol=protocol, calendar=CAL,
                            clock=FixedClock(instant), tz=LONDON, notifier=NOTIFIER)

    return timescales.run(engine, make, protocol, CAL, instant.astimezone(LONDON).date())


def outbox(engine: Engine, message: str) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.message == message)
                           .order_by(col(OutboxMessage.id))))


def rendered(row: OutboxMessage) -> tuple[str, str]:
    """(subject, text) of a row, whether rendered when queued or at delivery."""
    if row.subject:
        return row.subject, row.text_body
    out = NOTIFIER.renderer.render(row.message, load_context(row.context or "{}"))
    return out.subject, out.text


def raise_and_respond(engine: Engine, protocol: Protocol, actions: list[ActionIn],
                      when: str = "2027-03-02T10:00") -> int:
    aid = int(act(engine, protocol, "2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    act(engine, protocol, when, lambda s: s.respond(aid, "tm.fay", "Plan", actions))
    return aid


# -- the e-mail when an action is assigned --------------------------------------------------------
@backends
def test_the_owner_is_told_once_per_action_and_not_of_their_own(
        org: Engine, protocol: Protocol) -> None:
    aid = raise_and_respond(org, protocol, [
        ActionIn(SECRET, date(2027, 3, 12), owner="sw.dan"),
        ActionIn("Visit", date(2027, 3, 15), owner="iro.ada"),
        ActionIn("Mine", date(2027, 3, 16)),                    # the responder's own
        ActionIn("Mine too", date(2027, 3, 17), owner="tm.fay"),
    ])
    told = outbox(org, "action_assigned")
    assert [(m.recipient, m.to_addr) for m in told] == [
        ("sw.dan", "dan@riverside.example"), ("iro.ada", "ada@riverside.example")]
    assert len({m.key for m in told}) == 2  # one key per action
    subject, text = rendered(told[0])
    assert subject == (f"[drp] Action due 12 March: alert {aid} (R100) agreed action 1 is"
                       " yours")
    assert "due 12 March 2027" in text and f"https://drp.example/alerts/{aid}" in text
    assert "Fay Manager" in text  # who agreed it
    for m in told:  # the action's text stays behind the sign-in
        assert SECRET not in m.text_body + m.html_body + (m.context or "")
    # A second response adds its own actions: only the new one is told.
    act(org, protocol, "2027-03-03T10:00", lambda s: s.respond(
        aid, "tm.fay", "More", [ActionIn("Call", date(2027, 3, 18), owner="sw.dan")]))
    told = outbox(org, "action_assigned")
    assert [m.recipient for m in told] == ["sw.dan", "iro.ada", "sw.dan"]
    assert "agreed action 5 is yours" in rendered(told[-1])[0]


# -- the reminder before an action is due ---------------------------------------------------------
def reminders(engine: Engine, alert_id: int) -> list[tuple[str, int]]:
    """(local day, action no) of each reminder event of the alert."""
    with Session(engine) as s:
        rows = s.exec(select(Event).where(Event.alert_id == alert_id,
                                          Event.kind == "action_reminder")
                      .order_by(col(Event.seq))).all()
        return [(e.at.astimezone(LONDON).date().isoformat(), e.data["no"]) for e in rows]


def every_day(engine: Engine, protocol: Protocol, first: date, last: date) -> None:
    """Two runs a working day; the second (and a third at the same instant) change nothing."""
    day = first
    while day <= last:
        for i, when in enumerate(("08:00", "13:00", "13:00")):
            report = flow_at(engine, protocol, f"{day.isoformat()}T{when}")
            if i:
                assert report.counts() == {k: 0 for k in report.counts()}, (day, when)
        day += timedelta(days=1)


@backends
def test_the_owner_is_reminded_once_two_working_days_ahead_across_easter(
        org: Engine, protocol: Protocol) -> None:
    assert due.ACTION_REMINDER_LEAD_WORKING_DAYS == 2
    aid = raise_and_respond(org, protocol, [
        ActionIn(SECRET, date(2027, 3, 30), owner="sw.dan"),  # the Tuesday after Easter
        ActionIn("Visit", date(2027, 3, 31), owner="iro.ada"),
        ActionIn("Done early", date(2027, 3, 30), owner="sw.dan"),
    ], when="2027-03-16T10:00")
    act(org, protocol, "2027-03-17T10:00", lambda s: s.action_done(aid, 3, "sw.dan"))
    every_day(org, protocol, date(2027, 3, 17), date(2027, 4, 2))
    # Two working days before Tuesday 30 March are Thursday 25th and Tuesday itself (Good
    # Friday and Easter Monday are not working days): the reminder goes on Wednesday 24th;
    # for Wednesday 31st, on Thursday 25th. The done action is never reminded.
    assert reminders(org, aid) == [("2027-03-24", 1), ("2027-03-25", 2)]
    sent = outbox(org, "action_due")
    assert [(m.recipient, m.to_addr) for m in sent] == [
        ("sw.dan", "dan@riverside.example"), ("iro.ada", "ada@riverside.example")]
    subject, text = rendered(sent[0])
    assert subject == (f"[drp] Action due 30 March (reminder): alert {aid} (R100) agreed"
                       " action 1")
    assert "due 30 March 2027" in text and f"https://drp.example/alerts/{aid}" in text
    assert all(SECRET not in (m.context or "") for m in sent)


@backends
def test_no_reminder_for_a_withdrawn_alert_and_one_for_a_resolved_alerts_action(
        org: Engine, protocol: Protocol) -> None:
    withdrawn = raise_and_respond(org, protocol, [
        ActionIn("Write", date(2027, 3, 12), owner="sw.dan")])
    act(org, protocol, "2027-03-03T10:00", lambda s: s.withdraw(withdrawn, "iro.ada", "No"))
    resolved = int(act(org, protocol, "2027-03-01T11:00", lambda s: s.raise_alert(
        "iro.ben", "R200", "y", stage="stage1")).id)
    act(org, protocol, "2027-03-02T11:00", lambda s: s.respond(
        resolved, "tm.gus", "Plan", [ActionIn("Write", date(2027, 3, 12), owner="sw.eve")]))
    act(org, protocol, "2027-03-03T11:00", lambda s: s.resolve(resolved, "iro.ben", "Agreed"))
    every_day(org, protocol, date(2027, 3, 4), date(2027, 3, 12))
    assert reminders(org, withdrawn) == []
    # A resolved alert's actions are tracked to completion: reminded, as told when overdue.
    assert reminders(org, resolved) == [("2027-03-10", 1)]
    assert [m.recipient for m in outbox(org, "action_due")] == ["sw.eve"]


@backends
def test_an_action_agreed_within_its_lead_is_reminded_the_next_working_day_not_the_same(
        org: Engine, protocol: Protocol) -> None:
    aid = raise_and_respond(org, protocol, [
        ActionIn("Call", date(2027, 3, 5), owner="sw.dan")], when="2027-03-03T10:00")
    assert flow_at(org, protocol, "2027-03-03T13:00").counts()["actions_reminded"] == 0
    report = flow_at(org, protocol, "2027-03-04T08:00")
    assert report.actions_reminded == [f"{aid}/1"]
    assert [m.recipient for m in outbox(org, "action_assigned")] == ["sw.dan"]
    assert [m.recipient for m in outbox(org, "action_due")] == ["sw.dan"]


def test_a_chunk_that_fails_is_redone_an_action_at_a_time_still_once(
        org: Engine, protocol: Protocol, monkeypatch: pytest.MonkeyPatch) -> None:
    aid = raise_and_respond(org, protocol, [
        ActionIn("Write", date(2027, 3, 12), owner="sw.dan"),
        ActionIn("Call", date(2027, 3, 12), owner="iro.ada")])
    real = Batch.remind_actions
    calls: list[int] = []

    def stale_once(self: Batch, session: Session, items: list[tuple[int, int]],
                   day_start: datetime) -> ChunkResult:
        calls.append(len(items))
        if len(calls) == 1:
            real(self, session, items, day_start)  # written, then rolled back
            raise StaleChunk("changed meanwhile")
        return real(self, session, items, day_start)

    monkeypatch.setattr(Batch, "remind_actions", stale_once)
    report = flow_at(org, protocol, "2027-03-10T08:00")
    assert calls == [2, 1, 1]
    assert report.actions_reminded == [f"{aid}/1", f"{aid}/2"] and not report.problems
    assert reminders(org, aid) == [("2027-03-10", 1), ("2027-03-10", 2)]
    assert sorted(m.recipient for m in outbox(org, "action_due")) == ["iro.ada", "sw.dan"]


# -- the wording, as `drp mail preview` shows it -------------------------------------------------
def test_mail_preview_lists_and_renders_both_messages(tmp_path: Path) -> None:
    from .test_cli import Cli

    cli = Cli(tmp_path)
    listed = cli("mail", "preview").stdout
    assert "action_assigned: [drp] Action due 13 March: alert 17 (C1001) agreed action 1 is" \
           " yours" in listed
    assert "action_due: [drp] Action due 13 March (reminder): alert 17 (C1001) agreed action" \
           " 1" in listed
    for message in ("action_assigned", "action_due"):
        shown = cli("mail", "preview", message, "--role", "owner").stdout
        assert shown.startswith("Subject: [drp] Action due 13 March")
        assert "http://127.0.0.1:8000/alerts/17" in shown and "13 March 2026" in shown
        html = cli("mail", "preview", message, "--role", "owner", "--html").stdout
        assert "What you need to do" in html and "13 March 2026" in html
