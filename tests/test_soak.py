"""Soak: a council's year (Peterborough's published volumes: 205 alerts, a timescale run every
working day at 07:00, people acting through the service layer in between) on SQLite and
PostgreSQL, then every e-mail delivered to a real SMTP server; at the end, the invariants that
must hold however the year went."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, datetime, time
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import timescales
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock
from drp.models import Alert, Event, OutboxMessage
from drp.notify import MESSAGE_FOR_EVENT, Notifier
from drp.protocol import Protocol
from drp.reports import report
from drp.settings import CONFIG_DIR
from drp.simulate import simulate
from drp.themes import load_taxonomy
from notifications.outbox import deliver
from notifications.render import Renderer
from notifications.transports import SmtpTransport

from .conftest import LONDON, backends
from .smtp import SmtpServer

YEAR = 2025
CAL = WorkingCalendar()


def last_run_again(engine: Engine, protocol: Protocol, notifier: Notifier
                   ) -> timescales.TimescaleReport:
    day = date(YEAR + 1, 3, 31)
    while not CAL.is_working_day(day):
        day = day.fromordinal(day.toordinal() - 1)
    at = datetime.combine(day, time(7, 30), tzinfo=LONDON)
    return timescales.run(engine, lambda s: AlertService(
        s, protocol=protocol, calendar=CAL, clock=FixedClock(at), tz=LONDON,
        notifier=notifier), protocol, CAL, day)


@backends
def test_a_simulated_year_keeps_every_invariant(
    engine: Engine, protocol: Protocol, smtp: SmtpServer,
) -> None:
    taxonomy = load_taxonomy(CONFIG_DIR / "themes.yaml")
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
    summary = simulate(engine, protocol, CAL, taxonomy, LONDON, year=YEAR,
                       profile="peterborough", notifier=notifier, say=lambda _line: None)
    assert summary["problems"] == [] and summary["raised"] == 205

    with Session(engine) as s:
        alerts = {a.id: a for a in s.exec(select(Alert))}
        events = list(s.exec(select(Event).order_by(col(Event.alert_id), col(Event.seq))))
        outbox = list(s.exec(select(OutboxMessage)))

    # 1. Each alert's log is whole and in time order; its version moved with it.
    by_alert: dict[int, list[Event]] = {}
    for e in events:
        by_alert.setdefault(e.alert_id, []).append(e)
    assert by_alert.keys() == alerts.keys()
    for aid, log in by_alert.items():
        assert [e.seq for e in log] == list(range(1, len(log) + 1)), aid
        assert all(a.at <= b.at for a, b in itertools.pairwise(log)), aid
        # (one unit of work may write several events, but bumps the version once)
        assert alerts[aid].last_seq == len(log) and 2 <= alerts[aid].version <= len(log) + 1
        closed = alerts[aid].status != "open"
        assert closed == (alerts[aid].closed_at is not None), aid

    # 2. Nothing the flows do was done twice: one escalation per stage left, one reminder and
    #    one overdue notice per due date.
    escalations = Counter((e.alert_id, e.from_stage) for e in events
                          if e.kind == "auto_escalated")
    assert escalations and max(escalations.values()) == 1
    notices = Counter((e.alert_id, e.kind, (e.data or {}).get("due")) for e in events
                      if e.kind in ("reminder", "overdue", "cafcass_prompt"))
    assert notices and max(notices.values()) == 1

    # 3. The last run, rerun, finds nothing left to do.
    again = last_run_again(engine, protocol, notifier)
    assert again.counts() == {k: 0 for k in again.counts()}

    # 4. Every e-mail belongs to a kept event of its alert; every event that mails, mailed.
    event_of = {e.id: e for e in events}
    for m in outbox:
        e = event_of[int(m.key.split(":")[0])]
        assert e.alert_id == m.alert_id and MESSAGE_FOR_EVENT[e.kind] == m.message
    mailed = {int(m.key.split(":")[0]) for m in outbox}
    silent = [e for e in events if e.kind in MESSAGE_FOR_EVENT and e.id not in mailed]
    assert silent == []

    # 5. Delivered through a real SMTP server: each message once, none lost.
    transport = SmtpTransport("127.0.0.1", smtp.port, "none", None, None,
                              "drp@peterborough.example", timeout=10)
    end = datetime(YEAR + 1, 4, 1, 9, 0, tzinfo=LONDON)
    sent = 0
    while True:
        done = deliver(engine, transport, lambda: end, due_only=False, renderer=Renderer())
        sent += done.sent
        if done.sent == 0:
            break
        transport = SmtpTransport("127.0.0.1", smtp.port, "none", None, None,
                                  "drp@peterborough.example", timeout=10)
    with_address = [m for m in outbox if m.to_addr]
    assert sent == len(with_address) == len(smtp.received)
    ids = [r.message["Message-ID"] for r in smtp.received]
    assert len(set(ids)) == len(ids)
    assert all("https://drp.example/alerts/" in r.part("plain") for r in smtp.received)

    # 6. The published figures, replayed from the log, are what the year did.
    with Session(engine) as s:
        figures: dict[str, Any] = report(s, protocol, CAL, taxonomy, LONDON,
                                         date(YEAR, 4, 1), date(YEAR + 1, 3, 31))
    assert figures["raised"] == summary["raised"]
    assert figures["automatic_escalations"] == summary["automatic_escalations"]
    assert figures["outstanding_at_end"] == summary["outstanding_at_end"]
