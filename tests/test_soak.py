"""Soak: a council's year (Peterborough's published profile: a timescale run every working day
at 07:00, people acting through the service layer in between), then the invariants that must
hold however the year went. At half Peterborough's volume (SCALE: 103 alerts instead of 205):
the same days, stages, holds, referrals and runs, each kind many times over, in half the time;
what the soak found (a second run the same day re-sending acknowledgement reminders, seen
failing again when that fix is undone) is pinned in tests/test_timescales.py and checked here
every day: half an hour after each day's run, a second run must find nothing to do.

- On SQLite, through the Prefect flows under a real local Prefect server: on every other one
  of the year's 26 digest days the timescale flow runs again (it must find nothing left to do) and
  the digest flow runs twice (the second must send nothing); the flows deliver the mail to a
  real SMTP server as the year goes.
- On PostgreSQL, the same year through the flows' work (the timescale run), then every e-mail
  delivered to a real SMTP server at the end."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import timescales
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock
from drp.ladder.protocol import Protocol
from drp.models import Alert, Event, OutboxMessage
from drp.notify import MESSAGE_FOR_EVENT, Notifier
from drp.reporting.figures import report
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy
from drp.tools.simulation import simulate
from notifications.outbox import deliver
from notifications.render import Renderer
from notifications.transports import SmtpTransport

from .conftest import LONDON, forget_settings
from .smtp import SmtpServer
from .support import databases

YEAR = 2025
SCALE = 1.0  # Peterborough as published: its formal alerts give the flows escalations to make
RAISED = round(205 * SCALE)
CAL = WorkingCalendar()


def check_year(engine: Engine, protocol: Protocol, notifier: Notifier,
               summary: dict[str, Any], taxonomy: Any) -> None:
    with Session(engine) as s:
        alerts = {a.id: a for a in s.exec(select(Alert))}
        events = list(s.exec(select(Event).order_by(col(Event.alert_id), col(Event.seq))))
        outbox = [m for m in s.exec(select(OutboxMessage)) if m.message != "digest"]

    # 1. Each alert's log is whole and in time order; its version moved with it.
    by_alert: dict[int, list[Event]] = {}
    for e in events:
        by_alert.setdefault(e.alert_id, []).append(e)
    assert by_alert.keys() == alerts.keys()
    for aid, log in by_alert.items():
        assert [e.seq for e in log] == list(range(1, len(log) + 1)), aid
        assert all(a.at <= b.at for a, b in itertools.pairwise(log)), aid
        # (one unit of work may write several events, but bumps the version once; a unit that
        # changes an agreed action may write the alert's row once more, when the action moves
        # the alert's day in the due index, drp.due_index, in a flush of its own)
        acted = sum(e.kind in ("action_done", "action_agreed") for e in log)
        assert alerts[aid].last_seq == len(log)
        assert 2 <= alerts[aid].version <= len(log) + 1 + acted, aid
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
    # (an action agreed by its own owner tells nobody: the owner is the one who agreed it)
    silent = [e for e in events if e.kind in MESSAGE_FOR_EVENT and e.id not in mailed
              and not (e.kind == "action_agreed" and (e.data or {}).get("owner") == e.actor)]
    assert silent == []

    # 5. The published figures, replayed from the log, are what the year did.
    with Session(engine) as s:
        figures: dict[str, Any] = report(s, protocol, CAL, taxonomy, LONDON,
                                         date(YEAR, 4, 1), date(YEAR + 1, 3, 31))
    assert figures["raised"] == summary["raised"]
    assert figures["automatic_escalations"] == summary["automatic_escalations"]
    assert figures["outstanding_at_end"] == summary["outstanding_at_end"]


def last_run_again(engine: Engine, protocol: Protocol, notifier: Notifier
                   ) -> timescales.TimescaleReport:
    day = date(YEAR + 1, 3, 31)
    while not CAL.is_working_day(day):
        day = day.fromordinal(day.toordinal() - 1)
    return run_at(engine, protocol, notifier, day, datetime.combine(day, time(7, 30),
                                                                    tzinfo=LONDON))


def run_at(engine: Engine, protocol: Protocol, notifier: Notifier, day: date, at: datetime
           ) -> timescales.TimescaleReport:
    return timescales.run(engine, lambda s: AlertService(
        s, protocol=protocol, calendar=CAL, clock=FixedClock(at), tz=LONDON,
        notifier=notifier), protocol, CAL, day)


def rerun_finds_nothing(engine: Engine, protocol: Protocol, notifier: Notifier,
                        day: date, at: datetime) -> None:
    """Half an hour after the day's run, a second run has nothing left to do (a few
    milliseconds a day: the due set is empty)."""
    again = run_at(engine, protocol, notifier, day, at + timedelta(minutes=30))
    assert again.counts() == {k: 0 for k in again.counts()}, (day, again.counts())


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_simulated_year_keeps_every_invariant(
    engine: Engine, protocol: Protocol, smtp: SmtpServer,
) -> None:
    taxonomy = load_taxonomy(CONFIG_DIR / "themes.yaml")
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
    summary = simulate(engine, protocol, CAL, taxonomy, LONDON, year=YEAR, scale=SCALE,
                       profile="peterborough", notifier=notifier, say=lambda _line: None,
                       after_run=lambda day, at: rerun_finds_nothing(
                           engine, protocol, notifier, day, at))
    assert summary["problems"] == [] and summary["raised"] == RAISED
    check_year(engine, protocol, notifier, summary, taxonomy)

    # Delivered through a real SMTP server: each message once, none lost.
    with Session(engine) as s:
        outbox = list(s.exec(select(OutboxMessage)))

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



@pytest.mark.usefixtures("prefect_api")  # the session's Prefect server
def test_a_simulated_year_through_the_prefect_flows(
    drp_env: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from drp import runtime
    from drp.digest import digest_day
    from flows.digest import digest_flow
    from flows.timescales import timescales_flow

    server = SmtpServer()
    server.start()
    try:
        monkeypatch.setenv("DRP_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("DRP_SMTP_PORT", str(server.port))
        monkeypatch.setenv("DRP_MAIL_FROM", "drp@peterborough.example")
        forget_settings()
        rt = runtime.runtime()
        databases.migrate(rt.engine)
        digests: list[tuple[str, int, int]] = []

        digest_days = itertools.count()

        def scheduled_flows(day: date, at: datetime) -> None:
            # On every other digest day (13 of the year's 26: each is the same check, and
            # all 26 cost the suite a minute); the others' mail waits for the next.
            if day != digest_day(day, CAL, rt.settings.digest_anchor) or next(digest_days) % 2:
                rerun_finds_nothing(rt.engine, rt.protocol, rt.notifier(), day, at)
                return
            later = (at.astimezone(LONDON) + timedelta(minutes=30)).isoformat()
            again = timescales_flow(now=later)  # a second timescale run that day
            assert again["counts"] == {k: 0 for k in again["counts"]}, (day, again)
            first = digest_flow(now=later, only_on_digest_day=True)
            second = digest_flow(now=later, only_on_digest_day=True)
            digests.append((day.isoformat(), len(first["queued_for"]),
                            len(second["queued_for"])))

        summary = simulate(rt.engine, rt.protocol, CAL, rt.taxonomy, LONDON, year=YEAR,
                           scale=SCALE, profile="peterborough", notifier=rt.notifier(),
                           say=lambda _line: None, after_run=scheduled_flows)
        assert summary["problems"] == [] and summary["raised"] == RAISED
        check_year(rt.engine, rt.protocol, rt.notifier(), summary, rt.taxonomy)
        # Each of those fortnights' digest went once; the rerun sent nothing.
        assert len(digests) == 13 and all(n > 0 and again == 0 for _, n, again in digests)
        with Session(rt.engine) as s:
            rows = list(s.exec(select(OutboxMessage)))
        keys = Counter(m.key for m in rows if m.message == "digest")
        assert len(keys) == sum(n for _, n, _ in digests) and max(keys.values()) == 1
        # What the flows delivered reached the SMTP server once each; the rest (the last
        # days' mail, after the last digest day) waits in the outbox, none failed.
        sent = [m for m in rows if m.status == "sent"]
        assert len(server.received) == len(sent) > 0
        assert not [m for m in rows if m.status == "failed" and m.to_addr]
        ids = [r.message["Message-ID"] for r in server.received]
        assert len(set(ids)) == len(ids)
    finally:
        server.stop()
        forget_settings()
