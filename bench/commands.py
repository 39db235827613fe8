"""Commands per second through the service layer (raise, respond, escalate: the state machine,
the access policy, the version check, events, outbox rows), one
transaction per command as people make them, against the bare SQL inserts and updates those
commands come to, in the same run and database: the engine's overhead. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from common import SMALL, backends, database, judge, record, timed  # type: ignore[import-not-found]
from sqlalchemy import text
from sqlalchemy.engine import Engine

from drp import db
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock
from drp.ladder.protocol import Protocol
from drp.notify import Notifier
from notifications.render import Renderer

LONDON = ZoneInfo("Europe/London")
START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
# The message each command sends (its outbox rows, counted from what the commands wrote).
MESSAGE = {"raise": "alert_raised", "respond": "response_received", "escalate": "escalated"}
BOUND = 3.0  # each command at most this many times the time of its bare SQL (issue 19)


def written(engine: Engine, n: int) -> dict[str, tuple[int, dict[str, Any]]]:
    """What the commands wrote to the outbox, by command: rows per command and one row's
    columns, so the bare SQL writes the same rows (rendered bodies or a context, as they are)."""
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    with engine.connect() as conn:
        for command, message in MESSAGE.items():
            rows = conn.execute(text(
                "SELECT subject, text_body, html_body, context FROM outbox WHERE message = :m"
                " ORDER BY id"), {"m": message}).all()
            assert rows and len(rows) % n == 0, (command, len(rows))
            out[command] = (len(rows) // n, dict(rows[0]._mapping))
    return out


def bare(engine: Engine, n: int, mail: dict[str, tuple[int, dict[str, Any]]]
         ) -> dict[str, float]:
    """The rows the three commands write, in hand-written SQL, one transaction each."""
    ids: list[int] = []
    outbox = text(
        "INSERT INTO outbox (key, message, alert_id, recipient, to_addr, subject, text_body,"
        " html_body, context, status, attempts, created_at, next_attempt_at) VALUES (:k, 'm',"
        " :a, 'x', 'x@riverside.example', :subject, :text_body, :html_body, :context,"
        " 'pending', 0, :at, :at)")

    def event(conn: Any, aid: int, seq: int, kind: str, at: datetime) -> int:
        return int(conn.execute(text(
            "INSERT INTO event (alert_id, seq, at, actor, kind, from_stage, to_stage, comment,"
            " data, team, iro, channel) VALUES (:a, :q, :t, 'iro.ada', :k, 'informal',"
            " 'informal', 'c', :d, 'team', 'iro.ada', 'cli') RETURNING id"),
            {"a": aid, "q": seq, "t": at, "k": kind,
             "d": '{"stage_due": "2027-03-08"}'}).scalar_one())

    def write_mail(conn: Any, aid: int, eid: int, command: str, at: datetime) -> None:
        k, row = mail[command]
        conn.execute(outbox, [{"k": f"b{eid}:{r}", "a": aid, "at": at, **row}
                              for r in range(k)])

    def raise_all() -> None:
        for i in range(n):
            at = START + timedelta(minutes=i)
            with engine.begin() as conn:
                aid = conn.execute(text(
                    "INSERT INTO alert (child_id, iro_id, kind, status, stage, summary,"
                    " raised_at, stage_entered_at, stage_due, resolution_due, on_hold,"
                    " attention_on, last_seq, version, theme_confirmed) VALUES (1, 1,"
                    " 'concern', 'open', 'informal', :s, :t, :t, :d, :d, false, :d, 1, 1,"
                    " false) RETURNING id"),
                    {"s": f"B {i}", "t": at, "d": date(2027, 3, 8)}).scalar_one()
                write_mail(conn, aid, event(conn, aid, 1, "raised", at), "raise", at)
                ids.append(aid)

    def update_all(kind: str, offset: int, seq: int) -> None:
        for i, aid in enumerate(ids):
            at = START + timedelta(minutes=offset + i)
            with engine.begin() as conn:
                conn.execute(text("SELECT * FROM alert WHERE id = :a"), {"a": aid}).one()
                done = conn.execute(text(
                    "UPDATE alert SET stage_responded_at = :t, attention_on = :d, last_seq = :q,"
                    " version = version + 1 WHERE id = :a AND version = :v"),
                    {"t": at, "d": date(2027, 3, 8), "q": seq, "a": aid, "v": seq - 1})
                assert done.rowcount == 1
                write_mail(conn, aid, event(conn, aid, seq, kind, at), kind, at)

    raise_s, _ = timed(raise_all)
    respond_s, _ = timed(lambda: update_all("respond", n, 2))
    escalate_s, _ = timed(lambda: update_all("escalate", 2 * n, 3))
    return {"raise": raise_s, "respond": respond_s, "escalate": escalate_s}


def children(engine: Engine, n: int) -> list[str]:
    """`n` children like R100 (iro.ada's, on her team), one for each alert raised: a child
    with an open concern asks the IRO to confirm a separate matter (untimed set-up)."""
    refs = [f"B{i:05d}" for i in range(n)]
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO child (ref, record_id, team_id, iro_id, social_worker_id, active, dob)"
            " SELECT :r, record_id, team_id, iro_id, social_worker_id, active, dob FROM child"
            " WHERE ref = 'R100'"), [{"r": r} for r in refs])
    return refs


def engine_run(engine: Engine, protocol: Protocol, n: int) -> dict[str, float]:
    cal = WorkingCalendar()
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")

    def svc_at(session: Any, minutes: int) -> AlertService:
        return AlertService(session, protocol=protocol, calendar=cal, tz=LONDON,
                            clock=FixedClock(START + timedelta(minutes=minutes)),
                            notifier=notifier)

    ids: list[int] = []
    refs = children(engine, n)

    def raise_all() -> None:
        for i, ref in enumerate(refs):
            with db.transaction(engine) as s:
                ids.append(int(svc_at(s, i).raise_alert("iro.ada", ref, f"A {i}").id or 0))

    def respond_all() -> None:
        for i, aid in enumerate(ids):
            with db.transaction(engine) as s:
                svc_at(s, n + i).respond(aid, "tm.fay", "on it")

    def escalate_all() -> None:
        for i, aid in enumerate(ids):
            with db.transaction(engine) as s:
                svc_at(s, 2 * n + i).escalate(aid, "iro.ada", "no progress")

    return {"raise": timed(raise_all)[0], "respond": timed(respond_all)[0],
            "escalate": timed(escalate_all)[0]}


def main() -> None:
    n = 100 if SMALL else 500
    print(f"commands: {n} of each, one transaction per command")
    failed: list[str] = []
    for kind in backends():
        with database(kind) as (engine, protocol):
            ours = engine_run(engine, protocol, n)
            mail = written(engine, n)
        with database(kind) as (engine, protocol):
            bare_s = bare(engine, n, mail)
        figures: dict[str, float] = {}
        for command in ("raise", "respond", "escalate"):
            ratio = round(ours[command] / bare_s[command], 2)
            figures[f"commands_{kind}_{command}_per_s"] = round(n / ours[command], 1)
            figures[f"commands_{kind}_{command}_bare_sql_per_s"] = round(n / bare_s[command], 1)
            figures[f"commands_{kind}_{command}_over_bare_sql"] = ratio
            if ratio > BOUND:
                failed.append(f"{command} on {kind}: {ratio}x its bare SQL (at most {BOUND}x)")
        record(figures)
    judge("commands", f"raise, respond and escalate each at most {BOUND}x its bare SQL",
          failed)


if __name__ == "__main__":
    main()
