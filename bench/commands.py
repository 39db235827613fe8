"""Commands per second through the service layer (raise, respond, escalate: the state machine,
the access policy, the version check, events, outbox rows), one
transaction per command as people make them, against the bare SQL inserts and updates those
commands come to, in the same run and database: the engine's overhead. SQLite and PostgreSQL.
The two run side by side, in turns of a few commands each (two databases of the same kind), so
a machine busy with other work slows both alike and the ratio holds."""

from __future__ import annotations

import functools
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
SEQ = {"respond": 2, "escalate": 3}  # the event's number on its alert
TURN = 10  # commands in each turn, ours then the bare SQL's
BOUND = 3.0  # each command at most this many times the time of its bare SQL (issue 19)


def written(engine: Engine, message: str, commands: int) -> tuple[int, dict[str, Any]]:
    """What `commands` commands wrote to the outbox for `message`: rows per command and one
    row's columns, so the bare SQL writes the same rows (rendered bodies or a context)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT subject, text_body, html_body, context FROM outbox WHERE message = :m"
            " ORDER BY id"), {"m": message}).all()
    assert rows and len(rows) % commands == 0, (message, len(rows), commands)
    return len(rows) // commands, dict(rows[0]._mapping)


class Bare:
    """The rows the three commands write, in hand-written SQL, one transaction each."""

    OUTBOX = text(
        "INSERT INTO outbox (key, message, alert_id, recipient, to_addr, subject, text_body,"
        " html_body, context, status, attempts, created_at, next_attempt_at) VALUES (:k, 'm',"
        " :a, 'x', 'x@riverside.example', :subject, :text_body, :html_body, :context,"
        " 'pending', 0, :at, :at)")
    EVENT = text(
        "INSERT INTO event (alert_id, seq, at, actor, kind, from_stage, to_stage, comment,"
        " data, team, iro, channel) VALUES (:a, :q, :t, 'iro.ada', :k, 'informal',"
        " 'informal', 'c', :d, 'team', 'iro.ada', 'cli') RETURNING id")
    ALERT = text(
        "INSERT INTO alert (child_id, iro_id, kind, status, stage, summary, raised_at,"
        " stage_entered_at, stage_due, resolution_due, on_hold, attention_on, last_seq,"
        " version, theme_confirmed) VALUES (1, 1, 'concern', 'open', 'informal', :s, :t, :t,"
        " :d, :d, false, :d, 1, 1, false) RETURNING id")
    UPDATE = text(
        "UPDATE alert SET stage_responded_at = :t, attention_on = :d, last_seq = :q,"
        " version = version + 1 WHERE id = :a AND version = :v")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ids: list[int] = []
        self.mail: dict[str, tuple[int, dict[str, Any]]] = {}  # by command, from `written`

    def _event_and_mail(self, conn: Any, aid: int, seq: int, command: str,
                        at: datetime) -> None:
        eid = int(conn.execute(self.EVENT, {"a": aid, "q": seq, "t": at, "k": command,
                                            "d": '{"stage_due": "2027-03-08"}'}).scalar_one())
        k, row = self.mail[command]
        conn.execute(self.OUTBOX, [{"k": f"b{eid}:{r}", "a": aid, "at": at, **row}
                                   for r in range(k)])

    def run(self, command: str, numbers: range, offset: int) -> None:
        for i in numbers:
            at = START + timedelta(minutes=offset + i)
            with self.engine.begin() as conn:
                if command == "raise":
                    aid = int(conn.execute(self.ALERT, {"s": f"B {i}", "t": at,
                                                        "d": date(2027, 3, 8)}).scalar_one())
                    self._event_and_mail(conn, aid, 1, command, at)
                    self.ids.append(aid)
                    continue
                aid, seq = self.ids[i], SEQ[command]
                conn.execute(text("SELECT * FROM alert WHERE id = :a"), {"a": aid}).one()
                done = conn.execute(self.UPDATE, {"t": at, "d": date(2027, 3, 8), "q": seq,
                                                  "a": aid, "v": seq - 1})
                assert done.rowcount == 1
                self._event_and_mail(conn, aid, seq, command, at)


class Ours:
    """The same commands through the service layer, as a person's command runs them."""

    def __init__(self, engine: Engine, protocol: Protocol, n: int) -> None:
        self.engine, self.protocol = engine, protocol
        self.cal = WorkingCalendar()
        self.notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
        self.refs = children(engine, n)
        self.ids: list[int] = []

    def run(self, command: str, numbers: range, offset: int) -> None:
        for i in numbers:
            with db.transaction(self.engine) as s:
                svc = AlertService(s, protocol=self.protocol, calendar=self.cal, tz=LONDON,
                                   clock=FixedClock(START + timedelta(minutes=offset + i)),
                                   notifier=self.notifier)
                if command == "raise":
                    self.ids.append(known(svc.raise_alert("iro.ada", self.refs[i], f"A {i}").id))
                elif command == "respond":
                    svc.respond(self.ids[i], "tm.fay", "on it")
                else:
                    svc.escalate(self.ids[i], "iro.ada", "no progress")


def known(value: int | None) -> int:
    assert value is not None
    return value


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


def measure(kind: str, n: int) -> dict[str, tuple[float, float]]:
    """Seconds for `n` of each command, ours and bare, taken in turns of TURN commands."""
    out: dict[str, tuple[float, float]] = {}
    with database(kind) as (engine, protocol), database(kind) as (bare_engine, _):
        ours, bare = Ours(engine, protocol, n), Bare(bare_engine)
        for k, command in enumerate(("raise", "respond", "escalate")):
            mine = theirs = 0.0
            for start in range(0, n, TURN):
                numbers = range(start, min(start + TURN, n))
                mine += timed(functools.partial(ours.run, command, numbers, k * n))[0]
                if command not in bare.mail:
                    bare.mail[command] = written(engine, MESSAGE[command], len(numbers))
                theirs += timed(functools.partial(bare.run, command, numbers, k * n))[0]
            out[command] = (mine, theirs)
    return out


def main() -> None:
    n = 100 if SMALL else 500
    print(f"commands: {n} of each, one transaction per command")
    failed: list[str] = []
    for kind in backends():
        times = measure(kind, n)
        figures: dict[str, float] = {}
        for command, (ours, bare) in times.items():
            ratio = round(ours / bare, 2)
            figures[f"commands_{kind}_{command}_per_s"] = round(n / ours, 1)
            figures[f"commands_{kind}_{command}_bare_sql_per_s"] = round(n / bare, 1)
            figures[f"commands_{kind}_{command}_over_bare_sql"] = ratio
            if ratio > BOUND:
                failed.append(f"{command} on {kind}: {ratio}x its bare SQL (at most {BOUND}x)")
        record(figures)
    judge("commands", f"raise, respond and escalate each at most {BOUND}x its bare SQL",
          failed)


if __name__ == "__main__":
    main()
