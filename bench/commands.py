"""Commands per second through the service layer (raise, respond, escalate: state machine,
access policy, events, outbox rows, e-mails rendered), against the bare SQL inserts and
updates those commands make, in the same run: the engine's overhead."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from common import SMALL, database, record, timed  # type: ignore[import-not-found]
from sqlalchemy import text

from drp import db
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock
from drp.notify import Notifier
from notifications.render import Renderer

LONDON = ZoneInfo("Europe/London")


def main() -> None:
    n = 100 if SMALL else 500
    cal = WorkingCalendar()
    start = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
    with database() as (engine, protocol):
        def svc_at(session, minutes: int) -> AlertService:  # type: ignore[no-untyped-def]
            return AlertService(session, protocol=protocol, calendar=cal, tz=LONDON,
                                clock=FixedClock(start + timedelta(minutes=minutes)),
                                notifier=notifier)

        ids: list[int] = []

        def raise_all() -> None:
            for i in range(n):
                with db.transaction(engine) as s:
                    ids.append(int(svc_at(s, i).raise_alert("iro.ada", "R100", f"A {i}").id))

        def respond_all() -> None:
            for i, aid in enumerate(ids):
                with db.transaction(engine) as s:
                    svc_at(s, n + i).respond(aid, "tm.fay", "on it")

        def escalate_all() -> None:
            for i, aid in enumerate(ids):
                with db.transaction(engine) as s:
                    svc_at(s, 2 * n + i).escalate(aid, "iro.ada", "no progress")

        raise_s, _ = timed(raise_all)
        respond_s, _ = timed(respond_all)
        escalate_s, _ = timed(escalate_all)

        # The same writes in bare SQL, one transaction per command.
        def bare() -> None:
            now = start
            for i in range(n):
                with engine.begin() as conn:
                    aid = conn.execute(text(
                        "INSERT INTO alert (child_id, iro_id, status, stage, summary, raised_at,"
                        " stage_entered_at, stage_due, resolution_due, on_hold, last_seq,"
                        " version, theme_confirmed) VALUES (1, 1, 'open', 'informal', :s, :t,"
                        " :t, :d, :d, false, 1, 1, false) RETURNING id"),
                        {"s": f"B {i}", "t": now, "d": date(2027, 3, 8)}).scalar_one()
                    conn.execute(text(
                        "INSERT INTO event (alert_id, seq, at, actor, kind, to_stage)"
                        " VALUES (:a, 1, :t, 'iro.ada', 'raised', 'informal')"),
                        {"a": aid, "t": now})
                    for r in range(3):
                        conn.execute(text(
                            "INSERT INTO outbox (key, message, alert_id, recipient, subject,"
                            " text_body, html_body, status, attempts, created_at,"
                            " next_attempt_at) VALUES (:k, 'm', :a, 'x', 's', 't', 'h',"
                            " 'pending', 0, :t, :t)"), {"k": f"b{aid}:{r}", "a": aid, "t": now})

        bare_s, _ = timed(bare)
    per_command_bare = bare_s / n
    print(f"commands: {n} of each through the service layer")
    record({
        "commands_raise_per_s": round(n / raise_s, 1),
        "commands_respond_per_s": round(n / respond_s, 1),
        "commands_escalate_per_s": round(n / escalate_s, 1),
        "commands_bare_sql_raise_per_s": round(n / bare_s, 1),
        "commands_raise_over_bare_sql": round((raise_s / n) / per_command_bare, 1),
    })


if __name__ == "__main__":
    main()
