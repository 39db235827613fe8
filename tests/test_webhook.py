"""The webhook (DRP_WEBHOOK_URL): each new case note is queued in the outbox in the transaction
that writes its event, and POSTed by the outbox's delivery to a real HTTP server on loopback,
signed (X-Drp-Signature: sha256=HMAC of the body) with an Idempotency-Key; the receiver gets
each note exactly once across its outage, e-mail goes on meanwhile, and a refusal fails the
note without losing it."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import audit, db, mail, timescales
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol
from drp.models import Event, OutboxMessage
from drp.settings import Settings
from notifications.outbox import deliver

from .conftest import LONDON, backends

SECRET = "a-shared-secret-of-32-characters"


class Receiver:
    """An HTTP server in a thread that records each POST (headers and body) and answers
    with the next of `answers` (200 once they run out)."""

    def __init__(self, port: int, answers: list[int] | None = None) -> None:
        self.port, self.answers = port, list(answers or [])
        self.posts: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers.items()), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server: ThreadingHTTPServer | None = None
        self.handler = Handler

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def notes(self) -> list[dict[str, Any]]:
        return [json.loads(body)["note"] for _, body in self.posts]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port())
    yield found
    found.stop()


def settings_for(port: int, tmp_path: Path) -> Settings:
    return Settings(webhook_url=f"http://127.0.0.1:{port}/drp/notes", webhook_secret=SECRET,
                    mail_dir=tmp_path / "mail", base_url="https://drp.example")


def stepper(engine: Engine, protocol: Protocol, settings: Settings
            ) -> Callable[[str, Callable[[AlertService], Any]], Any]:
    def step(when: str, fn: Callable[[AlertService], Any]) -> Any:
        with db.transaction(engine) as session, audit.coming_from(audit.Origin.cli("test")):
            return fn(AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                                   clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON,
                                   notifier=mail.notifier(settings)))
    return step


def send(engine: Engine, settings: Settings, when: datetime) -> Any:
    return deliver(engine, mail.transport(settings), lambda: when)


def webhook_rows(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(
            OutboxMessage.message == "webhook").order_by(col(OutboxMessage.id))))


@backends
def test_each_note_reaches_the_receiver_once_across_its_outage(
        org: Engine, protocol: Protocol, receiver: Receiver, tmp_path: Path) -> None:
    settings = settings_for(receiver.port, tmp_path)
    step = stepper(org, protocol, settings)
    step("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "Plan not shared"))
    step("2027-03-01T11:00", lambda s: s.acknowledge(1, "tm.fay"))  # no note
    step("2027-03-02T09:00", lambda s: s.respond(1, "tm.fay", "We will share it"))
    assert [r.key for r in webhook_rows(org)] == ["drp-1", "drp-3"]  # the events' notes

    start = parse_instant("2027-03-02T10:00", LONDON)
    down = send(org, settings, start)  # the receiver is down
    assert down.retrying == 2 and down.sent > 0  # the e-mails went all the same
    assert list((tmp_path / "mail").glob("*.eml"))
    assert send(org, settings, start + timedelta(seconds=30)).retrying == 0  # not due yet
    assert send(org, settings, start + timedelta(minutes=2)).retrying == 2   # still down
    assert [r.attempts for r in webhook_rows(org)] == [2, 2]
    receiver.start()
    up = send(org, settings, start + timedelta(minutes=10))
    assert up.sent == 2 and up.retrying == 0
    assert send(org, settings, start + timedelta(hours=5)).sent == 0
    assert [n["type"] for n in receiver.notes()] == ["iro_dispute_raised",
                                                     "iro_dispute_response"]
    assert {r.status for r in webhook_rows(org)} == {"sent"}
    for headers, body in receiver.posts:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Drp-Signature"] == f"sha256={expected}"
        assert headers["Idempotency-Key"] == json.loads(body)["note"]["note_id"]
        assert headers["Content-Type"].startswith("application/json")
    first = receiver.notes()[0]
    assert (first["record_id"], first["author"], first["alert_id"]) == ("R100", "Ada Iro", 1)
    assert first["date"] == "2027-03-01T09:00:00+00:00"
    assert "Summary: Plan not shared" in first["text"]


@backends
def test_an_answer_to_try_later_is_retried_and_a_refusal_fails_the_note_kept(
        org: Engine, protocol: Protocol, receiver: Receiver, tmp_path: Path) -> None:
    from notifications.outbox import retry

    settings = settings_for(receiver.port, tmp_path)
    receiver.answers = [503, 200, 401]
    receiver.start()
    step = stepper(org, protocol, settings)
    step("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "Plan not shared"))
    start = parse_instant("2027-03-01T10:00", LONDON)
    assert send(org, settings, start).retrying == 1
    assert send(org, settings, start + timedelta(minutes=1)).sent >= 1
    step("2027-03-02T09:00", lambda s: s.respond(1, "tm.fay", "We will share it"))
    refused = send(org, settings, start + timedelta(days=1))
    assert refused.failed == 1 and "refused the note (401)" in refused.errors[0]
    assert [r.status for r in webhook_rows(org)] == ["sent", "failed"]
    assert retry(org, start + timedelta(days=1)) == 1  # `drp outbox retry --all-failed`
    assert send(org, settings, start + timedelta(days=1, minutes=1)).sent == 1
    assert [n["type"] for n in receiver.notes()] == [
        "iro_dispute_raised", "iro_dispute_raised", "iro_dispute_response",
        "iro_dispute_response"]  # each attempt the receiver answered, in order
    assert [s for s in (r.status for r in webhook_rows(org))] == ["sent", "sent"]


@backends
def test_the_note_is_queued_with_its_event_or_not_at_all(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    settings = settings_for(free_port(), tmp_path)
    step = stepper(org, protocol, settings)

    def raise_then_fail(s: AlertService) -> None:
        s.raise_alert("iro.ada", "R100", "Plan not shared")
        raise RuntimeError("the unit of work fails after the event")

    with pytest.raises(RuntimeError):
        step("2027-03-01T09:00", raise_then_fail)
    with Session(org) as session:
        assert session.exec(select(Event)).all() == []
    assert webhook_rows(org) == []
    # Without the setting, no note is queued at all.
    plain = Settings(mail_dir=tmp_path / "mail")
    stepper(org, protocol, plain)("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "Plan not shared"))
    assert webhook_rows(org) == []


@backends
def test_the_timescale_runs_automatic_escalation_is_a_note_too(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    settings = settings_for(free_port(), tmp_path)
    step = stepper(org, protocol, settings)
    step("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "Plan not shared", stage="stage1"))
    when = "2027-03-22T07:00"
    instant = parse_instant(when, LONDON)
    report = timescales.run(
        org, lambda session: AlertService(
            session, protocol=protocol, calendar=WorkingCalendar(), clock=FixedClock(instant),
            tz=LONDON, notifier=mail.notifier(settings)),
        protocol, WorkingCalendar(), date(2027, 3, 22))
    assert report.escalated == [1]
    rows = webhook_rows(org)
    assert len(rows) == 2
    note = json.loads(rows[1].text_body)["note"]
    assert note["type"] == "iro_dispute_escalated" and note["author"] == "drp (automatically)"
    assert "escalated automatically (the response was overdue)" in note["text"]


def test_a_webhook_needs_its_secret_and_an_http_address(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DRP_WEBHOOK_SECRET"):
        Settings(webhook_url="https://lcs.example/notes")
    with pytest.raises(ValidationError, match="not an http"):
        Settings(webhook_url="ftp://lcs.example/notes", webhook_secret=SECRET)
    assert Settings(webhook_url="", webhook_secret=None).webhook_url is None


def test_a_webhook_row_waits_rather_than_goes_by_mail_when_the_setting_is_gone(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    settings = settings_for(free_port(), tmp_path)
    stepper(org, protocol, settings)("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "Plan not shared"))
    unset = Settings(mail_dir=tmp_path / "mail")
    report = send(org, unset, parse_instant("2027-03-01T10:00", LONDON))
    assert report.retrying == 1
    assert [r.status for r in webhook_rows(org)] == ["pending"]
    assert not [p for p in (tmp_path / "mail").glob("*.eml") if "webhook" in p.name]
