"""Delivery from the outbox (issue 14): leases on the database's clock, a file transport safe
for concurrent writers, a refused recipient as that message's failure, a queue drained in
batches over one connection, web actions that never wait for the mail server, and two
deliverer processes with one killed mid-run, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from drp import db
from notifications.models import OutboxMessage
from notifications.outbox import MAX_ATTEMPTS, NewMessage, deliver, enqueue_many, row_values
from notifications.render import Rendered
from notifications.transports import (
    FileTransport,
    Outgoing,
    SmtpTransport,
    TransientError,
    message_id,
)

from .conftest import ROOT, backends
from .smtp import Recorder, SmtpServer, free_port
from .support import databases
from .test_cli import Cli

SENDER = "drp@riverside.example"
AS_OF = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def queue(engine: Engine, addresses: list[str], prefix: str = "m",
          as_of: datetime = AS_OF) -> list[int]:
    """One rendered message to each address, queued as of `as_of`; their outbox ids."""
    with db.transaction(engine) as s:
        rows = enqueue_many(s, [
            NewMessage(f"{prefix}:{i}", "alert_raised", None, f"user{i}", addr,
                       Rendered(f"[drp] Message {i}", f"Text {i}", f"<p>Text {i}</p>"))
            for i, addr in enumerate(addresses)], as_of)
        s.flush()
        return [int(r.id or 0) for r in rows if r is not None]


def rows(engine: Engine) -> dict[int, OutboxMessage]:
    with Session(engine) as s:
        return {int(r.id or 0): r for r in s.exec(select(OutboxMessage))}


class Recording:
    """A transport that records what it is given (for the clock and batching tests)."""

    def __init__(self, during: Any = None) -> None:
        self.sent: list[int] = []
        self.closed = 0
        self.during = during

    def send(self, out: Outgoing) -> None:
        if self.during is not None:
            during, self.during = self.during, None
            during()
        self.sent.append(out.row_id)

    def close(self) -> None:
        self.closed += 1


# -- 1. leases on the database's clock ----------------------------------------------------------


@backends
def test_a_deliverer_an_hour_ahead_does_not_take_a_claim_made_a_second_ago(
        engine: Engine) -> None:
    ids = queue(engine, [f"p{i}@riverside.example" for i in range(5)])
    ahead = Recording()

    def meanwhile() -> None:  # while the first deliverer holds its claims, a flow "as of"
        # an hour later delivers too
        deliver(engine, ahead, lambda: AS_OF + timedelta(hours=1), due_only=False)

    first = Recording(during=meanwhile)
    report = deliver(engine, first, lambda: AS_OF, due_only=False)
    assert set(first.sent) & set(ahead.sent) == set()  # nothing sent twice
    assert sorted(first.sent + ahead.sent) == ids and report.sent == len(first.sent)
    assert {r.status for r in rows(engine).values()} == {"sent"}
    # The claim was stamped by the database's clock, not the logical one (a year and more ago).
    stamped = [r.claimed_at for r in rows(engine).values()]
    assert all(c is not None and c > datetime.now(UTC) - timedelta(minutes=5) for c in stamped)


# -- 2. the file transport ------------------------------------------------------------------------


def outgoing(row_id: int, to: str = "a@riverside.example") -> Outgoing:
    return Outgoing(row_id=row_id, key=f"k{row_id}", to_addr=to, subject="s", text="t",
                    html="<p>t</p>", created_at=AS_OF, message="alert_raised")


def test_concurrent_writers_of_one_message_never_collide(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "mail", SENDER)
    problems: list[Exception] = []
    start = threading.Barrier(3)

    def write() -> None:
        start.wait()
        for _ in range(60):
            try:
                transport.send(outgoing(7))
            except Exception as exc:
                problems.append(exc)

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    assert [p.name for p in (tmp_path / "mail").iterdir()] == ["00000007-alert_raised.eml"]


@pytest.mark.parametrize(("subject", "text", "html"), [
    ("[drp] Respond by 8 March: alert 1 (R100)", "Hello\nLine two\n", "<p>Hi</p>\n"),
    ("[drp] " + "a long subject " * 8, "No newline at the end", "<p>x</p>"),
    ("[drp] Zoë\u2019s alert, " + "folded " * 12, "Zoë wrote: ✓\n\n.\nFrom here\n", "<p>Zoë</p>\n"),
    ("[drp] x", "", ""),
])
def test_the_written_message_reads_as_the_email_package_builds_it(
        subject: str, text: str, html: str) -> None:
    from email import message_from_bytes
    from email.policy import default

    from notifications.transports import build_email, email_bytes

    out = Outgoing(row_id=7, key="k", to_addr="a@riverside.example", subject=subject,
                   text=text, html=html, created_at=AS_OF, message="escalated")

    def read(raw: bytes) -> Any:
        m = message_from_bytes(raw, policy=default)
        return ({k: str(m[k]) for k in ("From", "To", "Subject", "Date", "Message-ID",
                                          "Auto-Submitted", "X-drp-Message")},
                [(p.get_content_type(), p.get_content()) for p in m.walk()
                 if not p.is_multipart()], [p.defects for p in m.walk()])

    sender = "drp <drp@riverside.example>"
    assert read(email_bytes(out, sender)) == read(bytes(build_email(out, sender)))
    assert b"\r\n" not in email_bytes(out, sender)  # files: the platform's line ends
    assert b"\n" not in email_bytes(out, sender, "\r\n").replace(b"\r\n", b"")  # SMTP


@backends
def test_a_local_write_error_is_that_messages_failure_and_delivery_goes_on(
        engine: Engine, tmp_path: Path) -> None:
    ids = queue(engine, [f"p{i}@riverside.example" for i in range(4)])
    folder = tmp_path / "mail"
    (folder / f"{ids[1]:08d}-alert_raised.eml").mkdir(parents=True)  # cannot be replaced
    with pytest.raises(TransientError) as raised:
        FileTransport(folder, SENDER).send(outgoing(ids[1]))
    assert not raised.value.connection
    report = deliver(engine, FileTransport(folder, SENDER), lambda: AS_OF)
    assert (report.sent, report.retrying, report.errors) == (3, 1, [])
    after = rows(engine)
    assert after[ids[1]].status == "pending" and "cannot write" in str(after[ids[1]].last_error)
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))


# -- 3. a refused recipient -------------------------------------------------------------------


class Refusing(Recorder):
    """Refuses RCPT to refused@ (550) and defers busy@ (450)."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("refused@"):
            return "550 5.1.1 no such mailbox here"
        if address.startswith("busy@"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class NoUtf8(SmtpServer):
    """A server that does not offer SMTPUTF8 (many do not)."""

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=False)
        self.controller.start()


@pytest.fixture
def refusing() -> Iterator[SmtpServer]:
    server = NoUtf8()
    server.recorder = Refusing()
    server.start()
    yield server
    server.stop()


def smtp_to(server: SmtpServer) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", server.port, "none", None, None, SENDER, timeout=5)


def test_a_refused_recipient_fails_alone_and_delivery_goes_on(
        engine: Engine, refusing: SmtpServer, tmp_path: Path) -> None:
    addresses = ["a@riverside.example", "refused@riverside.example", "b@riverside.example",
                 "zoë@riverside.example", "busy@riverside.example", "c@riverside.example"]
    ids = dict(zip(addresses, queue(engine, addresses), strict=True))
    report = deliver(engine, smtp_to(refusing), lambda: AS_OF)
    assert sorted(r.rcpt[0] for r in refusing.received) == [
        "a@riverside.example", "b@riverside.example", "c@riverside.example"]
    assert (report.sent, report.failed, report.retrying) == (3, 2, 1)
    after = rows(engine)
    refused, accented, busy = (after[ids[a]] for a in (
        "refused@riverside.example", "zoë@riverside.example", "busy@riverside.example"))
    assert refused.status == "failed" and "550" in str(refused.last_error)
    assert accented.status == "failed" and "SMTPUTF8" in str(accented.last_error)
    assert busy.status == "pending" and "450" in str(busy.last_error)
    assert busy.next_attempt_at == AS_OF + timedelta(minutes=1)  # backoff, then retried

    when = AS_OF
    for _ in range(MAX_ATTEMPTS):  # each retry waits longer; after the last it is dead
        when += timedelta(hours=5)
        deliver(engine, smtp_to(refusing), lambda when=when: when)
    busy = rows(engine)[ids["busy@riverside.example"]]
    assert (busy.status, busy.attempts) == ("failed", MAX_ATTEMPTS)
    assert "450" in str(busy.last_error) and "gave up" in str(busy.last_error)
    assert len(refusing.received) == 3

    failed = Cli(tmp_path).json("outbox", "list", "--failed")  # the engine's SQLite file
    assert {m["address"]: m["error"][:30] for m in failed} == {
        "refused@riverside.example": str(refused.last_error)[:30],
        "zoë@riverside.example": str(accented.last_error)[:30],
        "busy@riverside.example": str(busy.last_error)[:30]}


# -- 4. the queue drained in batches over one connection --------------------------------------


class Peers(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.peers: set[Any] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.peers.add(session.peer)
        return await super().handle_DATA(server, session, envelope)


def test_delivery_drains_the_queue_in_batches_over_one_connection(engine: Engine) -> None:
    with db.transaction(engine) as s:  # more than one run used to send (1,000)
        s.execute(insert(OutboxMessage), [row_values(
            key=f"bulk:{i}", message="alert_raised", alert_id=None, recipient=f"user{i}",
            to_addr=f"p{i}@riverside.example", now=AS_OF,
            rendered=Rendered("[drp] s", "t", "<p>t</p>")) for i in range(1230)])
    counted = Recording()
    report = deliver(engine, counted, lambda: AS_OF)
    assert report.sent == 1230 and sorted(counted.sent) == sorted(rows(engine))
    assert counted.closed == 1

    more = queue(engine, [f"q{i}@riverside.example" for i in range(25)], prefix="q")
    server = SmtpServer()
    server.recorder = Peers()
    server.start()
    try:
        report = deliver(engine, smtp_to(server), lambda: AS_OF, batch=10)
    finally:
        server.stop()
    assert report.sent == 25 and len(server.received) == 25
    assert len(server.recorder.peers) == 1  # type: ignore[attr-defined]
    assert {rows(engine)[i].status for i in more} == {"sent"}


# -- 5. actions never wait for the mail server -----------------------------------------------


class HeldProxy:
    """A mail server that accepts connections and says nothing until released; then each
    connection is passed through to the real server behind it."""

    def __init__(self, target: int) -> None:
        self.port, self.target = free_port(), target
        self.connected, self.release = threading.Event(), threading.Event()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, fn: Any, *args: Any) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connected.set()
            self.release.wait()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:  # the server behind has gone (the test is over): hang up
                client.close()
                continue
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._pipe, upstream, client)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.release.set()
        self.listener.close()


def test_a_web_action_returns_while_the_mail_server_is_silent(
        drp_env: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer) -> None:
    from fastapi.testclient import TestClient

    from drp import runtime as runtime_module
    from drp.web.app import create_app
    from drp.web.auth import Auth

    from .conftest import MovableClock, forget_settings

    silent = HeldProxy(smtp.port)
    monkeypatch.setenv("DRP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DRP_SMTP_PORT", str(silent.port))
    monkeypatch.setenv("DRP_MAIL_FROM", SENDER)
    forget_settings()
    rt = runtime_module.runtime()
    databases.migrate(rt.engine, "org")  # tests/data/org.yaml, as the template has it
    arrived = threading.Event()
    original = smtp.recorder.handle_DATA

    async def handle(server: Any, session: Any, envelope: Any) -> str:
        answer = await original(server, session, envelope)
        if len(smtp.received) >= 3:
            arrived.set()
        return answer

    smtp.recorder.handle_DATA = handle  # type: ignore[method-assign]
    try:
        clock = MovableClock()
        with TestClient(create_app(rt, clock), base_url="https://drp.example") as c:
            token = Auth(rt.engine, rt.settings).new_api_token("iro.ada", "test", clock.now())
            r = c.post("/api/alerts", json={"child": "R100", "summary": "No plan"},
                       headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 201, r.text
            # The action is done and answered; its mail is still waiting for the server.
            assert silent.connected.wait(10)
            assert not silent.release.is_set() and smtp.received == []
            silent.release.set()  # the server answers: the mail goes, without another click
            assert arrived.wait(20)
    finally:
        silent.close()
        rt.engine.dispose()
    assert len(smtp.received) == 3
    assert {r.status for r in rows(rt.engine).values()} == {"sent"}


def test_the_background_deliverer_logs_its_failures_and_stops_while_the_server_is_silent(
        drp_env: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    from drp import mail
    from drp import runtime as runtime_module
    from drp.clock import FixedClock

    from .conftest import forget_settings

    silent = HeldProxy(smtp.port)  # never released
    monkeypatch.setenv("DRP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DRP_SMTP_PORT", str(silent.port))
    forget_settings()
    rt = runtime_module.runtime()
    broken = mail.Deliverer(rt.engine, rt.settings, FixedClock(AS_OF))
    assert broken.deliver_once() is None  # no schema yet: logged, not lost
    assert "mail delivery failed" in caplog.text and "no such table" in caplog.text

    db.upgrade(rt.engine)
    [row_id] = queue(rt.engine, ["a@riverside.example"])
    deliverer = mail.Deliverer(rt.engine, rt.settings, FixedClock(AS_OF), poll=600)
    deliverer.start()
    thread = deliverer._thread
    deliverer.start()  # an app started again: the one thread it has goes on
    assert deliverer._thread is thread
    assert [t.name for t in threading.enumerate()].count("drp-mail") == 1
    deliverer.wake()
    try:
        assert silent.connected.wait(10)
        deliverer.stop(timeout=10)  # ends the send that waits on the silent server
        assert thread is not None and not thread.is_alive()
    finally:
        silent.close()
    row = rows(rt.engine)[row_id]
    assert row.status == "pending" and "SMTP server" in str(row.last_error)
    assert "mail delivery: cannot reach the SMTP server" in caplog.text
    rt.engine.dispose()


def test_a_command_delivers_only_what_it_queued(drp_env: Path) -> None:
    from drp import runtime as runtime_module
    from drp.cli.shared import service

    rt = runtime_module.runtime()
    databases.migrate(rt.engine, "org")  # tests/data/org.yaml, as the template has it
    waiting = queue(rt.engine, ["someone@riverside.example"], prefix="earlier",  # and due
                    as_of=datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    with service("2026-03-02T09:00") as alerts:  # as `drp alert raise` runs it
        alerts.raise_alert("iro.ada", "R100", "x")
    assert len(list((drp_env / "mail").glob("*.eml"))) == 3
    assert rows(rt.engine)[waiting[0]].status == "pending"  # for the deliverer or the flows
    rt.engine.dispose()


# -- 6. two deliverer processes, one killed -----------------------------------------------------

DELIVERER = r'''
import json, sys, time
from datetime import UTC, datetime
from drp import db
from drp.org import load_org
from notifications.outbox import deliver
from notifications.transports import SmtpTransport

spec = json.loads(sys.argv[1])
engine = db.make_engine(spec["url"])

class Transport(SmtpTransport):
    count = 0

    def send(self, out):
        Transport.count += 1
        if Transport.count == spec.get("hang_at"):  # killed here, before sending this one
            print("READY", flush=True)
            time.sleep(600)
        super().send(out)

report = deliver(engine, Transport("127.0.0.1", spec["port"], "none", None, None,
                                   "drp@riverside.example", timeout=10),
                 lambda: datetime.now(UTC), due_only=False, batch=spec["batch"])
print("DONE", report.sent, flush=True)
'''


def deliverer(db_url: str, port: int, **spec: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", DELIVERER, json.dumps({"url": db_url, "port": port, **spec})],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


@backends
def test_two_deliverer_processes_and_a_kill_send_each_message_once(
        engine: Engine, db_url: str, smtp: SmtpServer) -> None:
    ids = queue(engine, [f"p{i}@riverside.example" for i in range(60)])
    victim = deliverer(db_url, smtp.port, batch=20, hang_at=6)
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == "READY"
        survivor = deliverer(db_url, smtp.port, batch=20)
        out, _ = survivor.communicate(timeout=60)
        assert out.split() == ["DONE", str(60 - 20)]  # all but the victim's claims
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    held = [r for r in rows(engine).values() if r.status == "sending"]
    assert len(held) == 20 - 5  # the victim's, not taken by the survivor within the lease
    assert len(smtp.received) == 45
    # A later run, once the lease has passed, sends the rest.
    report = deliver(engine, smtp_to(smtp), lambda: AS_OF, lease=timedelta(0))
    assert report.sent == 15
    after = rows(engine)
    assert {r.status for r in after.values()} == {"sent"}
    got = Counter(str(r.message["Message-ID"]) for r in smtp.received)
    assert got == Counter({message_id(Outgoing(
        row_id=i, key=after[i].key, to_addr="", subject="", text="", html="",
        created_at=AS_OF, message=""), SENDER): 1 for i in ids})
