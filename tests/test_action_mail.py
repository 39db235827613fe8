"""Agreed actions by e-mail: the owner is told when an action is theirs (not when they agreed
it themselves), and reminded once, a few working days before it is due, by the timescale run;
nothing for a done action or a withdrawn alert, and the working days count around bank
holidays. Each message carries the action's number and date, never its text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import db, timescales
from drp.alerts import ActionIn, AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol
from drp.models import OutboxMessage
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
