"""DRP_MAIL_DETAIL: by default (`reference`) no e-mail carries free text, only the child's
reference, the alert's number and stage, what to do and the link; `summary` lets the alert's
summary through, and nothing else. The rule is the renderer's (notifications.render.minimise),
so a council's own template cannot print what it is not given."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from drp import db, timescales
from drp.alerts import ActionIn, AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol
from drp.models import OutboxMessage
from drp.notify import Notifier
from drp.settings import Settings
from notifications.outbox import deliver
from notifications.render import FREE_TEXT, MAIL_DETAIL, Renderer
from notifications.samples import sample_context
from notifications.transports import FileTransport

from .conftest import LONDON, backends
from .support.cli import Cli

# The messages whose wording gives the alert's summary when the council lets it through.
WITH_SUMMARY = {"ack_reminder", "alert_raised", "escalated", "good_practice", "reminder",
                "resolved", "response_received", "transferred", "withdrawn"}


def marker(key: str) -> str:
    return f"Z{key.upper().replace('_', '')}Q <b>&</b>"


def hostile_context(role: str) -> dict[str, Any]:
    """The sample context with hostile text under every free-text name, wherever a message
    could carry one: top level, the alert, the cover period, each digest row."""
    context = copy.deepcopy(sample_context(role))
    for key in FREE_TEXT:
        context[key] = marker(key)
        context["alert"][key] = marker(key)
        context["cover"][key] = marker(key)
        for row in context["rows"]:
            row[key] = marker(key)
    return context


def everything(rendered: Any) -> str:
    return "\n".join((rendered.subject, rendered.text, rendered.html))


def found(text: str, key: str) -> bool:
    """The marker, or its first word (what survives escaping and line folding)."""
    return marker(key).split()[0] in text


@pytest.mark.parametrize("role", ["responsible", "iro", "copy", "iro_manager", "owner"])
def test_by_default_no_message_carries_any_free_text(role: str) -> None:
    renderer = Renderer()
    assert renderer.detail == "reference"
    for message in renderer.messages():
        text = everything(renderer.render(message, hostile_context(role)))
        leaked = [key for key in FREE_TEXT if found(text, key)]
        assert not leaked, (message, leaked)
        # ...and still names the reference, the alert, and links to it.
        if message not in ("digest", "cover_set", "cover_ended", "password_reset"):
            assert "C1001" in text and "alert 17" in text.lower()
            assert "http://127.0.0.1:8000/alerts/17" in text


@pytest.mark.parametrize("role", ["responsible", "iro", "copy"])
def test_with_summary_the_summary_appears_and_no_other_free_text(role: str) -> None:
    renderer = Renderer(detail="summary")
    showing = set()
    for message in renderer.messages():
        text = everything(renderer.render(message, hostile_context(role)))
        if found(text, "summary"):
            showing.add(message)
        leaked = [key for key in FREE_TEXT - {"summary"} if found(text, key)]
        assert not leaked, (message, leaked)
    assert showing == WITH_SUMMARY


def test_a_councils_own_template_cannot_print_what_it_is_not_given(tmp_path: Path) -> None:
    (tmp_path / "escalated.txt").write_text(
        '{% extends "base.txt" %}{% block subject %}[drp] {{ alert.summary }} {{ reason }}'
        '{% endblock %}{% block body %}{{ alert.detail }} {{ cover.reason }}{% endblock %}')
    rendered = Renderer(tmp_path).render("escalated", hostile_context("copy"))
    assert rendered.subject == "[drp]"
    assert not [key for key in FREE_TEXT if found(everything(rendered), key)]


def test_the_setting_defaults_to_reference_and_refuses_anything_else(tmp_path: Path) -> None:
    assert Settings().mail_detail == "reference"
    assert Settings(mail_detail="summary").mail_detail == "summary"
    with pytest.raises(ValidationError):
        Settings(mail_detail="full")
    with pytest.raises(ValueError):
        Renderer(detail="everything")
    assert MAIL_DETAIL == ("reference", "summary")
    # At start-up: one line, exit 1, before anything is done.
    cli = Cli(tmp_path)
    cli.env["DRP_MAIL_DETAIL"] = "full"
    assert cli.refused("init") == (
        "drp: DRP_MAIL_DETAIL: 'full' is not a level of detail for e-mails; use reference"
        " or summary")
    assert not (tmp_path / "drp.db").exists()


# -- through the service, the outbox and the file transport --------------------------------

def _step(engine: Engine, protocol: Protocol, notifier: Notifier, when: str,
          fn: Callable[[AlertService], Any]) -> Any:
    instant = parse_instant(when, LONDON)
    with db.transaction(engine) as session:
        return fn(AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                               clock=FixedClock(instant), tz=LONDON, notifier=notifier))


def _timescales(engine: Engine, protocol: Protocol, notifier: Notifier, when: str) -> None:
    instant = parse_instant(when, LONDON)

    def make(session: Session) -> AlertService:
        return AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                            clock=FixedClock(instant), tz=LONDON, notifier=notifier)

    timescales.run(engine, make, protocol, WorkingCalendar(), instant.date())


def _mail_a_case(engine: Engine, protocol: Protocol, detail: str, folder: Path) -> str:
    """A case through most of the ladder, with hostile text in every input a person types;
    every message delivered as a file. Returns all the mail's decoded text, and the outbox's
    stored columns."""
    notifier = Notifier(renderer=Renderer(detail=detail), base_url="https://drp.example")

    def step(when: str, fn: Callable[[AlertService], Any]) -> Any:
        return _step(engine, protocol, notifier, when, fn)

    step("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", marker("summary"), detail=marker("detail"),
        impact=marker("impact"), outcome_wanted=marker("outcome")))
    step("2027-03-02T09:00", lambda s: s.respond(
        1, "tm.fay", marker("response"), [ActionIn(marker("action_text"), date(2027, 3, 12))]))
    step("2027-03-03T09:00", lambda s: s.escalate(1, "iro.ada", marker("reason")))
    step("2027-03-04T09:00", lambda s: s.hold(1, "iro.ada", marker("reason"),
                                              until=date(2027, 3, 10)))
    step("2027-03-05T09:00", lambda s: s.resume(1, "iro.ada", marker("comment")))
    step("2027-03-05T10:00", lambda s: s.refer(1, "iro.ada", marker("reason"),
                                               legal_advice=marker("legal_advice")))
    step("2027-03-05T11:00", lambda s: s.cafcass_response(1, "iro.ada", "accepted",
                                                          note=marker("note")))
    step("2027-03-08T09:00", lambda s: s.raise_alert(
        "iro.ben", "R200", marker("summary"), detail=marker("detail")))
    # The timescale run's messages (rendered at delivery from a stored context).
    for day in ("2027-03-11", "2027-03-12", "2027-03-16"):
        _timescales(engine, protocol, notifier, f"{day}T07:00")
    step("2027-03-17T09:00", lambda s: s.resolve(1, "iro.ada", marker("outcome")))
    step("2027-03-18T09:00", lambda s: s.record_good_practice(
        "iro.ada", "R100", marker("summary"), detail=marker("detail")))
    step("2027-03-18T11:00", lambda s: s.withdraw(2, "iro.ben", marker("reason")))
    report = deliver(engine, FileTransport(folder, "drp@riverside.example"),
                     lambda: parse_instant("2027-03-18T12:00", LONDON),
                     renderer=Renderer(detail=detail))
    assert report.sent > 10 and not report.failed, report
    texts = []
    for path in sorted(folder.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=default)
        texts.append(str(message["Subject"]))
        texts += [part.get_content() for part in message.walk()
                  if part.get_content_type() in ("text/plain", "text/html")]
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage)).all()
        assert {r.message for r in rows} >= {
            "alert_raised", "response_received", "escalated", "held", "resumed", "referred",
            "cafcass_response", "resolved", "withdrawn", "good_practice", "action_overdue",
            "reminder"}
        assert any(r.context for r in rows)  # some were rendered at delivery
        for r in rows:
            texts += [r.subject, r.text_body, r.html_body, r.context or ""]
    return "\n".join(texts)


@backends
def test_the_mail_of_a_whole_case_names_references_only(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    mail = _mail_a_case(org, protocol, "reference", tmp_path / "mail")
    assert "R100" in mail and "R200" in mail and "https://drp.example/alerts/1" in mail
    leaked = [key for key in FREE_TEXT if found(mail, key)]
    assert not leaked


@backends
def test_with_summary_the_case_mail_gives_the_summary_and_nothing_else_typed(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    mail = _mail_a_case(org, protocol, "summary", tmp_path / "mail")
    assert found(mail, "summary")
    leaked = [key for key in FREE_TEXT - {"summary"} if found(mail, key)]
    assert not leaked
