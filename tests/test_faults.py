"""Faults: real processes killed with SIGKILL at awkward moments, then restarted; nothing is lost
and nothing is doubled.

- a command killed inside its transaction leaves no trace, and the same command then runs once;
- a timescale run killed after its first chunk of 200 has committed escalates each due alert
  exactly once when restarted;
- a delivery killed between sending and marking resends that message (same Message-ID) after
  the lease, and every other message goes once;
- an hour without the SMTP server: commands succeed, and every message arrives once afterwards;
- two timescale runs at the same instant in two processes escalate each alert once, and two
  deliveries at once send each message once.

The processes run a small driver (DRIVER below) that builds the runtime from DRP_* variables as
the shells do, does its unit of work, prints READY at the moment named and sleeps until it is
killed."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from sqlmodel import select as sql_select

from drp import db
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol
from drp.models import Action, Alert, Child, Event, OutboxMessage
from drp.notify import Notifier
from notifications.outbox import LEASE, MAX_ATTEMPTS, deliver
from notifications.render import Renderer
from notifications.transports import Outgoing, SmtpTransport, message_id

from .conftest import LONDON, backends
from .smtp import SmtpServer
from .test_cli import Cli

DRIVER = r'''
import json
import sys
import time
from datetime import date
from pathlib import Path

spec = json.loads(sys.argv[1])


def say(word, **info):
    sys.stdout.write(word + " " + json.dumps(info, default=str) + "\n")
    sys.stdout.flush()


def hang(**info):
    """The awkward moment: tell the test, then wait for SIGKILL."""
    say("READY", **info)
    time.sleep(300)
    raise SystemExit("never killed")


def wait_for_go(**info):
    """Ready to act: wait for the starting gun, so two processes act at the same instant."""
    say("SET", **info)
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(0.002)


from drp import db, mail, timescales
from drp.alerts import ActionIn, AlertService
from drp.clock import FixedClock, parse_instant
from drp.runtime import runtime

rt = runtime()
clock = FixedClock(parse_instant(spec["now"], rt.settings.tz))
mode = spec["mode"]

if mode == "command":
    # As `drp alert ...` does: one transaction; killed after the service call, before commit.
    notifier = rt.notifier()
    with db.transaction(rt.engine) as session:
        svc = rt.service(session, clock, notifier)
        if spec["op"] == "escalate":
            alert = svc.escalate(spec["alert"], spec["as"], spec["text"])
        else:
            actions = [ActionIn(t, date.fromisoformat(d), o) for t, d, o in spec["actions"]]
            alert = svc.respond(spec["alert"], spec["as"], spec["text"], actions)
        hang(queued=svc.queued, last_seq=alert.last_seq, stage=alert.stage)

elif mode == "timescales":
    # As the timescale flow's task does; killed after the Nth overdue alert has been acted on.
    # With "go": once the due set is found, wait for the starting gun (duplicate runs).
    counts = {"calls": 0, "attempts": 0, "due": None}
    timescales.BULK = 200  # three chunks of the set-based writer (200, 200, 50)
    from drp.batch import Batch

    original = AlertService.act_on_overdue
    original_decide = Batch._overdue
    original_escalate = AlertService.escalate
    original_find_due = timescales.find_due

    def act_on_overdue(self, alert_id):
        result = original(self, alert_id)
        counts["calls"] += 1
        if counts["calls"] == spec.get("kill_after"):
            hang(calls=counts["calls"])
        return result

    def escalate(self, *args, **kwargs):
        counts["attempts"] += 1  # including those rolled back
        return original_escalate(self, *args, **kwargs)

    def decide(self, *args):  # the set-based writer, an alert at a time before it writes
        result = original_decide(self, *args)
        counts["calls"] += 1
        counts["attempts"] += result is not None
        if counts["calls"] == spec.get("kill_after"):
            hang(calls=counts["calls"])
        return result

    def find_due(*args):
        due = original_find_due(*args)
        if counts["due"] is None:
            counts["due"] = len(due.overdue)
            if spec.get("go"):
                wait_for_go(due=counts["due"])
        return due

    AlertService.act_on_overdue = act_on_overdue
    AlertService.escalate = escalate
    Batch._overdue = decide
    timescales.find_due = find_due
    notifier = rt.notifier()
    today = clock.now().astimezone(rt.settings.tz).date()
    report = timescales.run(rt.engine, lambda s: rt.service(s, clock, notifier), rt.protocol,
                            rt.calendar, today)
    say("DONE", **report.as_dict(), due=counts["due"], attempts=counts["attempts"])

elif mode == "deliver":
    # As `drp outbox send` and the flows do; killed once the Nth message has been accepted by
    # the SMTP server, before its row is marked sent.
    from notifications.transports import SmtpTransport

    sent = 0
    original_send = SmtpTransport.send

    def send(self, out):
        global sent
        original_send(self, out)
        sent += 1
        if sent == spec.get("kill_after"):
            hang(row=out.row_id)

    SmtpTransport.send = send
    if spec.get("go"):
        wait_for_go()
    report = mail.send(rt.engine, rt.settings, clock)
    say("DONE", sent=report.sent)
'''

RAISED_AT = "2027-03-01T10:00"  # at stage 1: due Monday 8 March
RUN_AT = "2027-03-09T08:00"     # Tuesday: every one of them overdue
MANY = 450                      # three chunks of the timescale run (200, 200, 50)

# Who is told of an automatic escalation from stage 1 to stage 2, by child: the head of service
# (responsible now), the team manager (responsible before), the IRO, the IRO manager.
ESCALATION_TO_STAGE2 = {
    "R100": {"hos.ivy", "tm.fay", "iro.ada", "irom.cat"},
    "R101": {"hos.ivy", "tm.fay", "iro.ben", "irom.cat"},
    "R200": {"hos.jon", "tm.gus", "iro.ben", "irom.cat"},
}
IROS = {"R100": "iro.ada", "R101": "iro.ben", "R200": "iro.ben"}


# -- processes --------------------------------------------------------------------------------


class Proc:
    """A driver process: its stdout read line by line with a deadline (never a blind sleep)."""

    def __init__(self, popen: subprocess.Popen[bytes], errfile: Path) -> None:
        self.popen, self.errfile, self.buf = popen, errfile, b""

    def _stderr(self) -> str:
        return self.errfile.read_text()[-3000:]

    def expect(self, word: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the line that starts with `word` and return its JSON."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                first, _, rest = line.decode().partition(" ")
                if first == word:
                    return dict(json.loads(rest or "{}"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {word} from the driver in {timeout}s:\n{self._stderr()}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self.popen.wait(timeout=10)
                    pytest.fail(f"the driver ended ({code}) before {word}:\n{self._stderr()}")
                self.buf += chunk

    def kill(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        assert self.popen.wait(timeout=10) == -signal.SIGKILL

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        """Let it run to the end; its report (the DONE line)."""
        done = self.expect("DONE", timeout)
        code = self.popen.wait(timeout=timeout)
        assert code == 0, self._stderr()
        return done


class Drivers:
    def __init__(self, tmp: Path, db_url: str) -> None:
        self.tmp = tmp
        self.script = tmp / "driver.py"
        self.script.write_text(DRIVER)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DRP_")}
        self.env.update(DRP_DATABASE_URL=db_url, DRP_MAIL_DIR=str(tmp / "mail"),
                        DRP_BASE_URL="https://drp.example")
        self.started: list[Proc] = []

    def start(self, **spec: Any) -> Proc:
        errfile = self.tmp / f"driver{len(self.started)}.err"
        with errfile.open("wb") as err:
            popen = subprocess.Popen(
                [sys.executable, str(self.script), json.dumps(spec)], stdout=subprocess.PIPE,
                stderr=err, env=self.env, cwd=self.tmp)
        proc = Proc(popen, errfile)
        self.started.append(proc)
        return proc

    def run(self, **spec: Any) -> dict[str, Any]:
        return self.start(**spec).finish()

    def close(self) -> None:
        for proc in self.started:  # only the processes this test started, by their id
            if proc.popen.poll() is None:
                os.kill(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()


@pytest.fixture
def drivers(tmp_path: Path, db_url: str) -> Iterator[Drivers]:
    d = Drivers(tmp_path, db_url)
    yield d
    d.close()



# -- the database, read back ------------------------------------------------------------------


def service(session: Session, protocol: Protocol, when: str | datetime,
            notifier: Notifier | None = None) -> AlertService:
    instant = parse_instant(when, LONDON) if isinstance(when, str) else when
    return AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                        clock=FixedClock(instant), tz=LONDON, notifier=notifier)


def notifier() -> Notifier:
    return Notifier(renderer=Renderer(), base_url="https://drp.example")


def snapshot(engine: Engine, aid: int) -> dict[str, Any]:
    """Everything a command on alert `aid` could write."""
    with Session(engine) as s:
        alert = s.get(Alert, aid)
        assert alert is not None
        return {
            "alert": alert.model_dump(),
            "events": [e.model_dump() for e in s.exec(
                sql_select(Event).where(Event.alert_id == aid).order_by(col(Event.seq)))],
            "actions": [a.model_dump() for a in s.exec(
                sql_select(Action).where(Action.alert_id == aid).order_by(col(Action.no)))],
            "outbox": [(o.id, o.key, o.status, o.attempts) for o in s.exec(
                sql_select(OutboxMessage).order_by(col(OutboxMessage.id)))],
        }


def raise_many(engine: Engine, protocol: Protocol, n: int = MANY) -> list[int]:
    """n alerts at stage 1 over the three children (no mail: only the run's mail is counted)."""
    refs = sorted(IROS)
    with db.transaction(engine) as s:
        svc = service(s, protocol, RAISED_AT)
        alerts = [svc.raise_alert(IROS[refs[i % 3]], refs[i % 3], f"Drift {i}", stage="stage1",
                                  separate=True)
                  for i in range(n)]
    return [int(a.id or 0) for a in alerts]


def auto_escalations(engine: Engine) -> int:
    with Session(engine) as s:
        return len(s.exec(sql_select(Event.id).where(Event.kind == "auto_escalated")).all())


def escalated_once(engine: Engine, ids: list[int]) -> list[str]:
    """What is wrong with the ledger after the run (empty: every due alert escalated exactly
    once, events in order with no gaps, one message per (event, recipient) and no other)."""
    wrong: list[str] = []
    with Session(engine) as s:
        alerts = {a.id: a for a in s.exec(sql_select(Alert))}
        refs = {c.id: c.ref for c in s.exec(sql_select(Child))}
        events = s.exec(sql_select(Event).order_by(col(Event.alert_id), col(Event.seq))).all()
        rows = s.exec(sql_select(OutboxMessage)).all()
    by_alert: dict[int, list[Event]] = defaultdict(list)
    for e in events:
        by_alert[e.alert_id].append(e)
    for aid in ids:
        alert, evs = alerts[aid], by_alert[aid]
        seqs, kinds = [e.seq for e in evs], [e.kind for e in evs]
        if seqs != list(range(1, len(evs) + 1)) or alert.last_seq != len(evs):
            wrong.append(f"alert {aid}: seq {seqs}, last_seq {alert.last_seq}")
        if kinds != ["raised", "auto_escalated"] or alert.stage != "stage2":
            wrong.append(f"alert {aid}: {kinds}, now at {alert.stage}")
        if [e.at for e in evs] != sorted(e.at for e in evs):
            wrong.append(f"alert {aid}: events out of order")
    if set(alerts) != set(ids):
        wrong.append(f"alerts {sorted(set(alerts) - set(ids))} should not exist")
    by_id = {e.id: e for e in events}
    expected = {(e.id, who) for e in events if e.kind == "auto_escalated"
                for who in ESCALATION_TO_STAGE2[refs[alerts[e.alert_id].child_id]]}
    got = Counter((int(r.key.split(":")[0]), r.recipient) for r in rows)
    doubled = [k for k, n in got.items() if n > 1]
    if doubled:
        wrong.append(f"messages queued twice: {doubled[:5]}")
    if set(got) != expected:
        wrong.append(f"outbox: {len(set(got) - expected)} unexpected, "
                     f"{len(expected - set(got))} missing")
    for r in rows:
        event = by_id.get(int(r.key.split(":")[0]))
        if event is None or event.alert_id != r.alert_id or r.message != "escalated":
            wrong.append(f"outbox row {r.id} ({r.key}) matches no escalation of alert"
                         f" {r.alert_id}")
    return wrong


# -- 1. a command killed inside its transaction -----------------------------------------------

COMMANDS = {
    "escalate": {
        "spec": {"op": "escalate", "alert": 1, "as": "iro.ada", "text": "No progress"},
        "cli": ["escalate", "1", "--as", "iro.ada", "--reason", "No progress"],
        "kinds": ["escalated"],
        "told": {(0, "tm.fay"), (0, "sw.dan"), (0, "iro.ada"), (0, "irom.cat")},
        "stage": "stage1",
        "actions": 0,
    },
    "respond": {
        "spec": {"op": "respond", "alert": 1, "as": "tm.fay", "text": "We will act",
                 "actions": [["Share the plan", "2027-03-10", "sw.dan"],
                             ["Book the meeting", "2027-03-12", None],
                             ["Send the minutes", "2027-03-15", "iro.ada"]]},
        "cli": ["respond", "1", "--as", "tm.fay", "--message", "We will act",
                "--action", "Share the plan|2027-03-10|sw.dan",
                "--action", "Book the meeting|2027-03-12",
                "--action", "Send the minutes|2027-03-15|iro.ada"],
        "kinds": ["responded", "action_agreed", "action_agreed", "action_agreed"],
        # (the new event, who): the IRO of the response; each owner of an action agreed,
        # by its own event, but not the responder of their own (tests/test_action_mail.py)
        "told": {(0, "iro.ada"), (1, "sw.dan"), (3, "iro.ada")},
        "stage": "informal",
        "actions": 3,
    },
}
COMMAND_AT = "2027-03-02T09:00"


@backends
@pytest.mark.parametrize("op", sorted(COMMANDS))
def test_a_command_killed_inside_its_transaction_leaves_no_trace_and_runs_again_once(
    op: str, org: Engine, protocol: Protocol, db_url: str, drivers: Drivers, tmp_path: Path,
) -> None:
    c = COMMANDS[op]
    with db.transaction(org) as s:
        service(s, protocol, "2027-03-01T09:00", notifier()).raise_alert(
            "iro.ada", "R100", "No plan")
    before = snapshot(org, 1)
    assert len(before["outbox"]) == 3

    proc = drivers.start(mode="command", now=COMMAND_AT, **c["spec"])
    inside = proc.expect("READY")
    # The command has done everything but commit: events and outbox rows written, unseen.
    assert inside == {"queued": len(c["told"]), "last_seq": 1 + len(c["kinds"]),
                      "stage": c["stage"]}
    assert snapshot(org, 1) == before
    proc.kill()
    assert snapshot(org, 1) == before  # no half-written event, no outbox row, same version

    cli = Cli(tmp_path)
    cli.env["DRP_DATABASE_URL"] = db_url
    shown = cli.json("alert", *c["cli"], "--now", COMMAND_AT)
    assert (shown["stage"], len(shown["actions"])) == (c["stage"], c["actions"])
    after = snapshot(org, 1)
    assert after["alert"]["version"] > before["alert"]["version"]  # one bump per flush
    new = after["events"][len(before["events"]):]
    assert after["events"][:len(before["events"])] == before["events"]
    assert [e["kind"] for e in new] == c["kinds"]
    assert [e["seq"] for e in after["events"]] == list(range(1, len(after["events"]) + 1))
    assert after["alert"]["last_seq"] == len(after["events"])
    queued = {key for _, key, _, _ in after["outbox"]} - {key for _, key, _, _ in before["outbox"]}
    assert queued == {f"{new[i]['id']}:{who}" for i, who in c["told"]}
    # The command delivered what it queued (to files: no SMTP host), each once; what waited
    # before is for the deliverers (the web app's, the flows, `drp outbox send`).
    assert {key for _, key, status, _ in after["outbox"] if status == "sent"} == queued
    assert len(list((tmp_path / "mail").glob("*.eml"))) == len(queued)


# -- 2. a timescale run killed after its first chunk ------------------------------------------


@backends
def test_a_timescale_run_killed_after_its_first_chunk_escalates_each_alert_once_on_restart(
    org: Engine, protocol: Protocol, drivers: Drivers,
) -> None:
    ids = raise_many(org, protocol)
    proc = drivers.start(mode="timescales", now=RUN_AT, kill_after=350)
    proc.expect("READY")  # 150 alerts of the second chunk done, not committed
    assert auto_escalations(org) == 200
    proc.kill()
    assert auto_escalations(org) == 200

    restarted = drivers.run(mode="timescales", now="2027-03-09T09:00")  # the next hourly run
    assert restarted["escalated"] == ids[200:]
    assert restarted["problems"] == []
    assert escalated_once(org, ids) == []
    again = drivers.run(mode="timescales", now="2027-03-09T10:00")
    assert again["counts"] == {k: 0 for k in again["counts"]}
    assert escalated_once(org, ids) == []


# -- 3. delivery killed between send and mark -------------------------------------------------

SENT_AT = parse_instant("2027-03-02T09:30", LONDON)


def outbox(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(sql_select(OutboxMessage).order_by(col(OutboxMessage.id))))


def expected_id(row: OutboxMessage) -> str:
    assert row.id is not None and row.to_addr is not None
    return message_id(Outgoing(row_id=row.id, key=row.key, to_addr=row.to_addr,
                               subject=row.subject, text="", html="",
                               created_at=row.created_at, message=row.message),
                      "drp@riverside.example")


def smtp_transport(smtp: SmtpServer) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", smtp.port, "none", None, None, "drp@riverside.example",
                         timeout=5)


def test_delivery_killed_between_send_and_mark_resends_that_message_once_after_the_lease(
    org: Engine, protocol: Protocol, drivers: Drivers, smtp: SmtpServer,
) -> None:
    n = notifier()
    with db.transaction(org) as s:
        svc = service(s, protocol, "2027-03-01T09:00", n)
        first = svc.raise_alert("iro.ada", "R100", "No plan")
        svc.raise_alert("iro.ben", "R200", "No pathway plan")
    with db.transaction(org) as s:
        service(s, protocol, "2027-03-02T09:00", n).escalate(int(first.id or 0), "iro.ada", "No")
    rows = outbox(org)
    assert len(rows) == 10 and {r.status for r in rows} == {"pending"}

    drivers.env.update(DRP_SMTP_HOST="127.0.0.1", DRP_SMTP_PORT=str(smtp.port),
                       DRP_MAIL_FROM="drp@riverside.example")
    proc = drivers.start(mode="deliver", now=SENT_AT.isoformat(), kill_after=3)
    crashed_id = proc.expect("READY")["row"]
    proc.kill()
    assert len(smtp.received) == 3
    statuses = {r.id: r.status for r in outbox(org)}
    assert statuses[crashed_id] == "sending"
    # It had claimed its batch (all ten) in one statement: the rest wait with it.
    assert Counter(statuses.values()) == {"sent": 2, "sending": 8}

    # Within the lease, by the database's clock, what it held is left alone, even by a run
    # "as of" long after.
    report = deliver(org, smtp_transport(smtp), lambda: SENT_AT + LEASE * 2)
    assert (report.sent, report.errors) == (0, [])
    assert {r.id: r.status for r in outbox(org)}[crashed_id] == "sending"
    # After the lease they go; the crashed one again, with the same Message-ID.
    report = deliver(org, smtp_transport(smtp), lambda: SENT_AT, lease=timedelta(0))
    assert report.sent == 8
    assert deliver(org, smtp_transport(smtp), lambda: SENT_AT, lease=timedelta(0)).sent == 0

    rows = outbox(org)
    assert {r.status for r in rows} == {"sent"}
    got = Counter(str(r.message["Message-ID"]) for r in smtp.received)
    crashed = next(r for r in rows if r.id == crashed_id)
    assert got == {expected_id(r): 2 if r.id == crashed_id else 1 for r in rows}
    copies = [r for r in smtp.received if str(r.message["Message-ID"]) == expected_id(crashed)]
    assert [c.rcpt for c in copies] == [[crashed.to_addr]] * 2
    assert copies[0].subject == copies[1].subject == crashed.subject
    assert copies[0].part("plain") == copies[1].part("plain")
    for r in rows:  # each arrived at its own address
        assert {tuple(x.rcpt) for x in smtp.received
                if str(x.message["Message-ID"]) == expected_id(r)} == {(r.to_addr,)}


# -- 4. an hour without the SMTP server -------------------------------------------------------


def test_an_hour_without_the_smtp_server_loses_nothing_and_doubles_nothing(
    org: Engine, protocol: Protocol, smtp: SmtpServer,
) -> None:
    n = notifier()
    clock = [parse_instant("2027-03-01T09:00", LONDON)]

    def now() -> datetime:
        return clock[0]

    def command(fn: Any) -> None:
        """A command as the shells run it: one transaction, then deliver what waits."""
        with db.transaction(org) as s:
            fn(service(s, protocol, now(), n))
        report = deliver(org, smtp_transport(smtp), now)
        assert report.sent == 0 and report.errors and report.failed == 0

    smtp.stop()
    steps: list[Any] = [
        lambda s: s.raise_alert("iro.ada", "R100", "No plan"),
        lambda s: s.raise_alert("iro.ben", "R200", "No pathway plan"),
        lambda s: s.respond(1, "tm.fay", "Looking", []),
        lambda s: s.escalate(1, "iro.ada", "Not enough"),
        lambda s: s.raise_alert("iro.ben", "R101", "Placement drift"),
        lambda s: s.escalate(2, "iro.ben", "No reply"),
        lambda s: s.hold(3, "iro.ben", "Court hearing", until=date(2027, 3, 8)),
        lambda s: s.escalate(1, "iro.ada", "Still nothing"),
        lambda s: s.resume(3, "iro.ben", "Hearing moved"),
        lambda s: s.extend(2, "iro.ben", date(2027, 3, 12), "Leave"),
        lambda s: s.resolve(1, "iro.ada", "Plan agreed"),
        lambda s: s.withdraw(3, "iro.ben", "Raised in error"),
    ]
    for step in steps:  # one command every five minutes for an hour, the server down
        command(step)
        deliver(org, smtp_transport(smtp), now)  # and the scheduled delivery
        clock[0] += timedelta(minutes=5)
    rows = outbox(org)
    assert len(rows) > 30 and {r.status for r in rows} == {"pending"}
    assert max(r.attempts for r in rows) < MAX_ATTEMPTS
    assert smtp.received == []

    smtp.start()  # back after an hour: scheduled deliveries every five minutes
    for _ in range(24):
        deliver(org, smtp_transport(smtp), now)
        if all(r.status == "sent" for r in outbox(org)):
            break
        clock[0] += timedelta(minutes=5)
    rows = outbox(org)
    assert Counter(r.status for r in rows) == {"sent": len(rows)}  # none pending, none failed
    assert Counter(str(r.message["Message-ID"]) for r in smtp.received) == {
        expected_id(r): 1 for r in rows}
    assert sorted(x.rcpt[0] for x in smtp.received) == sorted(str(r.to_addr) for r in rows)


# -- 5. two timescale runs at once ------------------------------------------------------------


@backends
def test_two_timescale_runs_at_the_same_instant_escalate_each_alert_once(
    org: Engine, protocol: Protocol, drivers: Drivers, tmp_path: Path,
) -> None:
    ids = raise_many(org, protocol)
    go = tmp_path / "go"
    procs = [drivers.start(mode="timescales", now=RUN_AT, go=str(go)) for _ in range(2)]
    # Both runs have found the same 450 overdue alerts before either acts.
    assert [proc.expect("SET") for proc in procs] == [{"due": MANY}] * 2
    go.touch()  # both at once
    reports = [proc.finish() for proc in procs]
    tried = [r["attempts"] for r in reports]
    assert escalated_once(org, ids) == [], tried
    # Between them each alert was escalated by exactly one of the runs (the other's attempts,
    # if any, were turned away by the alert's version and rolled back).
    assert sorted(reports[0]["escalated"] + reports[1]["escalated"]) == ids, tried
    for report in reports:
        assert all("was changed" in p for p in report["problems"]), report["problems"]


@backends
def test_two_deliveries_at_once_send_each_message_once(
    org: Engine, protocol: Protocol, drivers: Drivers, smtp: SmtpServer, tmp_path: Path,
) -> None:
    n = notifier()
    with db.transaction(org) as s:
        svc = service(s, protocol, "2027-03-01T09:00", n)
        for ref in ("R100", "R101", "R200", "R100", "R101", "R200"):
            svc.raise_alert(IROS[ref], ref, "Drift", separate=True)
    rows = outbox(org)
    assert len(rows) == 18
    drivers.env.update(DRP_SMTP_HOST="127.0.0.1", DRP_SMTP_PORT=str(smtp.port),
                       DRP_MAIL_FROM="drp@riverside.example")
    go = tmp_path / "go"
    procs = [drivers.start(mode="deliver", now=SENT_AT.isoformat(), go=str(go))
             for _ in range(2)]
    for proc in procs:
        proc.expect("SET")
    go.touch()
    assert sum(proc.finish()["sent"] for proc in procs) == len(rows)
    rows = outbox(org)
    assert {r.status for r in rows} == {"sent"}
    assert Counter(str(r.message["Message-ID"]) for r in smtp.received) == {
        expected_id(r): 1 for r in rows}
