"""E-mail through the outbox against a real SMTP server on loopback: both parts, the right
people, nothing unescaped, nothing lost when the server is down, nothing doubled."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from drp import db
from drp.alerts import ActionIn, AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol
from drp.models import Alert, Event, OutboxMessage
from drp.notify import Notice, Notifier
from notifications.outbox import deliver, enqueue
from notifications.render import Renderer, load_context
from notifications.samples import sample_context
from notifications.transports import FileTransport, Outgoing, SmtpTransport

from .conftest import LONDON, backends
from .smtp import SmtpServer

HOSTILE = "Report missing <script>alert(1)</script> {{ 7*7 }} & more"
ADDR = {u: f"{u.split('.')[1]}@riverside.example" for u in (
    "iro.ada", "iro.ben", "irom.cat", "sw.dan", "sw.eve", "tm.fay", "tm.gus", "sm.hal",
    "hos.ivy", "hos.jon", "ad.kim", "dcs.lou")}



class Mailer:
    def __init__(self, engine: Engine, protocol: Protocol, smtp: SmtpServer) -> None:
        self.engine, self.protocol, self.smtp = engine, protocol, smtp
        # DRP_MAIL_DETAIL=summary: these tests follow the summary into the e-mail (escaped);
        # the default, no free text at all, is tests/test_mail_detail.py's.
        self.notifier = Notifier(renderer=Renderer(detail="summary"),
                                 base_url="https://drp.example/")
        self.when = parse_instant("2027-03-01T09:00", LONDON)

    def transport(self) -> SmtpTransport:
        return SmtpTransport("127.0.0.1", self.smtp.port, "none", None, None,
                             "drp@riverside.example", timeout=5)

    def __call__(self, when: str, fn: Callable[[AlertService], Any]) -> Any:
        self.when = parse_instant(when, LONDON)
        with db.transaction(self.engine) as session:
            result = fn(AlertService(session, protocol=self.protocol,
                                     calendar=WorkingCalendar(), clock=FixedClock(self.when),
                                     tz=LONDON, notifier=self.notifier))
        self.report = self.deliver(self.transport(), lambda: self.when)
        return result

    def deliver(self, transport: Any, now: Callable[[], datetime], **kw: Any) -> Any:
        """Delivery as drp runs it: with the council's renderer (its DRP_MAIL_DETAIL)."""
        return deliver(self.engine, transport, now, renderer=self.notifier.renderer, **kw)

    def rows(self) -> list[OutboxMessage]:
        with Session(self.engine) as s:
            return list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)))  # type: ignore[arg-type]


@pytest.fixture
def mailer(org: Engine, protocol: Protocol, smtp: SmtpServer) -> Mailer:
    return Mailer(org, protocol, smtp)


def test_every_message_renders_both_parts_with_a_clear_subject() -> None:
    renderer = Renderer()
    assert {"alert_raised", "response_received", "escalated", "resolved", "withdrawn", "held",
            "resumed", "extended", "reopened", "referred", "cafcass_response", "reminder",
            "overdue", "cafcass_consider", "action_overdue", "digest"} <= set(renderer.messages())
    for message in renderer.messages():
        # Every message renders with the sample data `drp mail preview` shows.
        assert renderer.render(message, sample_context()).subject.startswith("[drp] ")
        if message in ("digest", "cover_set", "cover_ended", "password_reset"):
            continue  # not about one alert: tests/test_digest.py, the cover tests, test_web_admin
        for role in ("responsible", "iro", "copy", "iro_manager", "owner"):
            r = renderer.render(message, sample_context(role))
            assert r.subject.startswith("[drp] ") and "alert 17 (C1001)" in r.subject
            assert "https://" not in r.subject and "\n" not in r.subject
            assert "http://127.0.0.1:8000/alerts/17" in r.text and r.html.count("/alerts/17") >= 2
            assert "<html" in r.html and "<html" not in r.text


def test_a_council_can_override_the_wording(tmp_path: Path) -> None:
    (tmp_path / "escalated.txt").write_text(
        '{% extends "base.txt" %}{% block subject %}[drp] Escalation: alert {{ alert.id }}'
        ' ({{ alert.child }}){% endblock %}{% block headline %}Our own words{% endblock %}')
    r = Renderer(tmp_path).render("escalated", sample_context())
    assert r.subject == "[drp] Escalation: alert 17 (C1001)"
    assert "Our own words" in r.text and "Our own words" in r.html
    assert Renderer(tmp_path).render("resolved", sample_context()).subject == (
        "[drp] For information: alert 17 (C1001) resolved")


def test_the_html_parts_are_the_messages_own_blocks_whatever_its_layout_prints(
        tmp_path: Path) -> None:
    """A council's layout that leaves out the headline, and has words of its own in `todo`:
    the HTML part still has the message's headline and no todo (a block only the layout has
    is not the message's), and the plain text is what the layout prints."""
    (tmp_path / "base.txt").write_text(
        "{% block body %}{% endblock %}\n\n{% block todo %}Nothing to do.{% endblock %}\n")
    (tmp_path / "note.txt").write_text(
        '{% extends "base.txt" %}{% block subject %}[drp] Note {{ n }}{% endblock %}'
        "{% block headline %}Headline {{ n }}{% endblock %}"
        "{% block body %}{% set m = n + 1 %}First {{ m }}.\n\nSecond.{% endblock %}")
    (tmp_path / "note.html").write_text(
        "{% for k in ['headline', 'body', 'todo'] %}{{ k }}={{ parts[k]|join('|') }};"
        "{% endfor %}{{ m is defined }}")
    renderer = Renderer(tmp_path)
    for _ in range(2):  # the same renderer, again: the same message
        r = renderer.render("note", {"n": 4})
        assert r.subject == "[drp] Note 4"
        assert r.text == "First 5.\n\nSecond.\nNothing to do.\n"  # trim_blocks
        assert r.html == "headline=Headline 4;body=First 5.|Second.;todo=;False"
    with pytest.raises(Exception, match="'n' is undefined"):
        renderer.render("note", {})


def test_a_renderer_kept_running_sees_a_councils_edited_and_new_templates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from notifications import render

    clock = [1000.0]
    monkeypatch.setattr(render.time, "monotonic", lambda: clock[0])
    words = '{% extends "base.txt" %}{% block subject %}[drp] WORDS{% endblock %}'
    page = tmp_path / "escalated.txt"
    page.write_text(words.replace("WORDS", "First words"))
    renderer = Renderer(tmp_path)
    assert renderer.render("escalated", sample_context()).subject == "[drp] First words"
    page.write_text(words.replace("WORDS", "Second words"))
    later = page.stat().st_mtime + 10
    os.utime(page, (later, later))
    (tmp_path / "escalated.html").write_text("<p>Our own HTML: {{ subject }}</p>\n")
    clock[0] += 0.5  # within the second the renderer keeps what it looked up
    assert renderer.render("escalated", sample_context()).subject == "[drp] First words"
    clock[0] += render.RECHECK
    r = renderer.render("escalated", sample_context())
    assert (r.subject, r.html) == ("[drp] Second words",
                                   "<p>Our own HTML: [drp] Second words</p>\n")
    # A renderer made afterwards (compiled templates are kept for the process: CompiledOnce)
    # reads the file as it is now, and so does one made after it is put back.
    assert Renderer(tmp_path).render("escalated", sample_context()).subject == (
        "[drp] Second words")
    page.write_text(words.replace("WORDS", "First words"))
    assert Renderer(tmp_path).render("escalated", sample_context()).subject == (
        "[drp] First words")


@backends
def test_the_ladder_sends_each_message_to_the_right_people(mailer: Mailer) -> None:
    alert = mailer("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", HOSTILE, detail="The child's story stays in drp"))
    aid = int(alert.id)
    got = mailer.smtp.received
    assert sorted(r.rcpt[0] for r in got) == sorted(
        [ADDR["tm.fay"], ADDR["sw.dan"], ADDR["iro.ada"]])
    first = mailer.smtp.to(ADDR["tm.fay"])[0]
    assert first.subject == (
        "[drp] Respond by 8 March: alert 1 (R100) raised at Informal resolution")
    html, text = first.part("html"), first.part("plain")
    assert "<script>" not in html and "&lt;script&gt;" in html and "{{ 7*7 }}" in html
    assert "49" not in text and "<script>alert(1)</script> {{ 7*7 }}" in text
    assert "story" not in text and "story" not in html  # the detail never leaves drp
    assert "https://drp.example/alerts/1" in text
    assert "Respond in drp by 8 March 2027" in text

    def sent_to(when: str, fn: Callable[[AlertService], Any]) -> dict[str, str]:
        before = len(mailer.smtp.received)
        mailer(when, fn)
        return {r.rcpt[0]: r.subject for r in mailer.smtp.received[before:]}

    assert set(sent_to("2027-03-02T09:00", lambda s: s.respond(
        aid, "tm.fay", "Will do", [ActionIn("Share it", date(2027, 3, 12))]))) == {
        ADDR["iro.ada"]}
    escalated = sent_to("2027-03-03T09:00", lambda s: s.escalate(aid, "iro.ada", "No"))
    assert set(escalated) == {ADDR[u] for u in ("tm.fay", "sw.dan", "iro.ada", "irom.cat")}
    escalated = sent_to("2027-03-04T09:00", lambda s: s.escalate(aid, "iro.ada", "No"))
    assert set(escalated) == {ADDR[u] for u in ("hos.ivy", "tm.fay", "iro.ada", "irom.cat")}
    assert escalated[ADDR["hos.ivy"]] == (
        "[drp] Respond by 11 March: alert 1 (R100) escalated to Stage 2")
    assert escalated[ADDR["iro.ada"]] == (
        "[drp] For information: alert 1 (R100) escalated to Stage 2, response due 11 March")
    held = sent_to("2027-03-05T09:00", lambda s: s.hold(aid, "iro.ada", "Court",
                                                         until=date(2027, 3, 12)))
    assert set(held) == {ADDR["hos.ivy"], ADDR["iro.ada"]}
    assert set(sent_to("2027-03-08T09:00", lambda s: s.resume(aid, "iro.ada"))) == set(held)
    assert set(sent_to("2027-03-08T10:00", lambda s: s.extend(
        aid, "iro.ada", date(2027, 3, 19), "Leave"))) == set(held)
    resolved = sent_to("2027-03-09T09:00", lambda s: s.resolve(aid, "iro.ada", "Agreed"))
    assert set(resolved) == {ADDR["hos.ivy"], ADDR["tm.fay"], ADDR["iro.ada"]}
    assert set(sent_to("2027-03-10T09:00", lambda s: s.reopen(aid, "iro.ada", "Not done"))) \
        == set(held)
    referred = sent_to("2027-03-11T09:00", lambda s: s.refer(
        aid, "iro.ada", "Drift since May", legal_advice="Jo Counsel, legal services"))
    # The IRO, the IRO managers and the head of service (not the director: the local
    # process goes on).
    assert set(referred) == {ADDR[u] for u in ("iro.ada", "irom.cat", "hos.ivy")}
    other = mailer("2027-03-11T10:00", lambda s: s.raise_alert("iro.ben", "R200", "West"))
    assert set(sent_to("2027-03-12T09:00", lambda s: s.withdraw(
        int(other.id), "iro.ben", "Duplicate"))) == {ADDR["tm.gus"], ADDR["sw.eve"], ADDR["iro.ben"]}
    # Every message: both parts, once each.
    for r in mailer.smtp.received:
        assert r.message.get_content_type() == "multipart/alternative"
        assert r.part("plain") and r.part("html")
    ids = Counter(str(r.message["Message-ID"]) for r in mailer.smtp.received)
    assert max(ids.values()) == 1
    assert all(row.status == "sent" for row in mailer.rows())


@backends
def test_a_command_queues_its_mail_rendered_at_delivery_naming_who_acted(mailer: Mailer
                                                                         ) -> None:
    # Nothing is rendered in the command's transaction: each row carries its context, with
    # the actor's own name (not the flows' "drp (automatically)"), in the same transaction.
    with db.transaction(mailer.engine) as session:
        AlertService(session, protocol=mailer.protocol, calendar=WorkingCalendar(),
                     clock=FixedClock(mailer.when), tz=LONDON,
                     notifier=mailer.notifier).raise_alert("iro.ada", "R100", "No plan")
        queued = list(session.exec(select(OutboxMessage)))
        assert len(queued) == 3 and len({r.key for r in queued}) == 3
        assert all(r.context and r.subject == r.text_body == r.html_body == ""
                   for r in queued)
        assert all(load_context(r.context or "")["actor"] == "Ada Iro" for r in queued)
    mailer.deliver(mailer.transport(), lambda: mailer.when)
    mail = mailer.smtp.to(ADDR["tm.fay"])[0]
    assert "Ada Iro (the child's IRO) has raised a case alert" in " ".join(
        mail.part("plain").split())
    # Delivery keeps what it sent.
    assert all(r.status == "sent" and "Ada Iro" in r.text_body for r in mailer.rows())


@backends
def test_an_escalation_reads_its_readers_with_the_iro_managers_in_one_statement(
    mailer: Mailer,
) -> None:
    """An escalation's e-mail copies the IRO managers: they are read with the people on the
    alert's line, in the statement that reads those (a round trip fewer on every escalation,
    overdue notice and referral)."""
    from sqlalchemy import event

    aid = int(mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "No")).id)
    seen: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(mailer.engine, "before_cursor_execute", keep)
    try:
        with db.transaction(mailer.engine) as session:
            AlertService(session, protocol=mailer.protocol, calendar=WorkingCalendar(),
                         clock=FixedClock(parse_instant("2027-03-03T09:00", LONDON)),
                         tz=LONDON, notifier=mailer.notifier).escalate(aid, "iro.ada", "No")
    finally:
        event.remove(mailer.engine, "before_cursor_execute", keep)
    # The actor; the alert with its line; its UPDATE; the people with the IRO managers; the
    # event; the outbox rows.
    assert len(seen) == 6, seen
    people = [s for s in seen if s.startswith("SELECT") and "iro_manager" in s]
    assert len(people) == 1 and "person.id IN" in people[0], people
    with Session(mailer.engine) as s:
        to = set(s.exec(select(OutboxMessage.recipient).where(
            OutboxMessage.message == "escalated")))
    assert to == {"tm.fay", "sw.dan", "iro.ada", "irom.cat"}


def test_the_iro_managers_read_once_are_read_again_once_the_roles_change(org: Engine) -> None:
    """A unit of work reads the IRO managers once (with an event's people); loading the
    organisation, which may change who they are, makes it read them again."""
    from drp.directory import Directory
    from drp.models import Person, PersonRole

    with db.transaction(org) as session:
        ids = {p.username: p.id for p in session.exec(select(Person))}
        find = Directory(session)
        find.load([ids["tm.fay"]], managers=True)
        before = find.iro_managers()
        assert ids["irom.cat"] in before and ids["hos.ivy"] not in before
        session.add(PersonRole(person_id=ids["hos.ivy"], role="iro_manager"))
        session.flush()
        assert find.iro_managers() == before  # (read once)
        find.forget_managers()
        assert ids["hos.ivy"] in find.iro_managers()
        session.rollback()


@backends
def test_flow_messages_reach_the_right_people(mailer: Mailer) -> None:
    alert = mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x",
                                                              stage="stage4"))
    mailer("2027-03-02T09:00", lambda s: s.respond(
        int(alert.id), "dcs.lou", "ok", [ActionIn("Act", date(2027, 3, 3), owner="sw.dan")]))
    before = len(mailer.smtp.received)
    with db.transaction(mailer.engine) as s:
        row = s.get(Alert, alert.id)
        assert row is not None
        from drp.ladder.access import Line
        from drp.models import Action, Child
        child = s.get(Child, row.child_id)
        assert child is not None
        line = Line.of(s, child)
        action = s.exec(select(Action)).one()
        for kind, extra in (("reminder", {}), ("overdue", {}), ("cafcass_prompt", {}),
                            ("action_overdue", {"action_no": 1, "action_due": action.due,
                                                "action_owner": "Dan Worker"})):
            row.last_seq += 1
            event = Event(alert_id=row.id, seq=row.last_seq, at=mailer.when, actor="system",
                          kind=kind)
            s.add(event)
            s.flush()
            mailer.notifier.queue(s, mailer.protocol, row, line,
                                  Notice(event, extra=extra, action=action), mailer.when)
    mailer.deliver(mailer.transport(), lambda: mailer.when)
    got = [(r.rcpt[0], r.subject) for r in mailer.smtp.received[before:]]
    late = "alert 1 (R100) overdue, Stage 4 response was due 8 March"
    action = "alert 1 (R100) agreed action 1 overdue (due 3 March)"
    assert sorted(got) == sorted([
        (ADDR["dcs.lou"], "[drp] Respond by 8 March (reminder): alert 1 (R100) at Stage 4"),
        (ADDR["dcs.lou"], f"[drp] Respond today: {late}"),
        (ADDR["iro.ada"], f"[drp] Decide the next step: {late}"),
        # a formal stage: the IRO manager too
        (ADDR["irom.cat"], f"[drp] For your oversight: {late}"),
        (ADDR["iro.ada"], "[drp] Consider referral to Cafcass: alert 1 (R100) overdue at the"
                          " last stage"),
        (ADDR["irom.cat"], "[drp] Consider referral to Cafcass with the IRO: alert 1 (R100)"
                           " overdue at the last stage"),
        (ADDR["sw.dan"], f"[drp] Complete your agreed action: {action}"),
        (ADDR["iro.ada"], f"[drp] Check with the owner: {action}"),
    ])


def test_with_the_server_down_commands_succeed_and_mail_waits(mailer: Mailer) -> None:
    mailer.smtp.stop()
    a = mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    mailer("2027-03-01T10:00", lambda s: s.escalate(int(a.id), "iro.ada", "y"))
    assert mailer.report.sent == 0 and mailer.report.errors
    rows = mailer.rows()
    assert len(rows) == 7 and all(r.status == "pending" for r in rows)
    assert sum(r.attempts for r in rows) == 2  # one try per delivery run, not one per message
    mailer.smtp.start()
    # Messages never tried go at once; the one that failed waits for its backoff...
    report = mailer.deliver(mailer.transport(), lambda: mailer.when)
    assert report.sent == 6
    # ...and goes later, exactly once.
    later = mailer.when + timedelta(hours=1)
    report = mailer.deliver(mailer.transport(), lambda: later)
    assert report.sent == 1
    report = mailer.deliver(mailer.transport(), lambda: later + timedelta(hours=1))
    assert report.sent == 0
    assert len(mailer.smtp.received) == 7
    assert len({str(r.message["Message-ID"]) for r in mailer.smtp.received}) == 7


def test_a_crash_between_sending_and_marking_resends_with_the_same_message_id(
    mailer: Mailer,
) -> None:
    mailer.smtp.stop()
    mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    mailer.smtp.start()

    class CrashAfterSend(SmtpTransport):
        def send(self, out: Outgoing) -> None:
            super().send(out)
            raise SystemExit("killed between send and mark")

    t = mailer.when + timedelta(minutes=5)
    crashing = CrashAfterSend("127.0.0.1", mailer.smtp.port, "none", None, None,
                              "drp@riverside.example")
    with pytest.raises(SystemExit):
        mailer.deliver(crashing, lambda: t)
    assert len(mailer.smtp.received) == 1
    crashed = [r for r in mailer.rows() if r.status == "sending"]
    assert len(crashed) == 1
    # Within the lease nobody touches it (even a run "as of" 11 minutes later: leases go by
    # the database's clock); after the lease it is sent again, same Message-ID.
    assert mailer.deliver(mailer.transport(), lambda: t).sent == 2
    assert mailer.deliver(mailer.transport(), lambda: t + timedelta(minutes=11)).sent == 0
    assert mailer.deliver(mailer.transport(), lambda: t, lease=timedelta(0)).sent == 1
    assert len(mailer.smtp.received) == 4
    ids = Counter(str(r.message["Message-ID"]) for r in mailer.smtp.received)
    assert sorted(ids.values()) == [1, 1, 2]
    assert all(r.status == "sent" for r in mailer.rows())


def test_a_message_is_queued_once_per_event_and_recipient(org: Engine) -> None:
    from notifications.render import Rendered

    rendered = Rendered("s", "t", "<p>h</p>")
    now = parse_instant("2027-03-01T09:00", LONDON)
    with db.transaction(org) as s:
        assert enqueue(s, key="1:x", message="m", alert_id=None, recipient="x",
                       to_addr="x@example.org", rendered=rendered, now=now) is not None
        assert enqueue(s, key="1:x", message="m", alert_id=None, recipient="x",
                       to_addr="x@example.org", rendered=rendered, now=now) is None


def test_after_the_bounded_attempts_a_message_fails_and_can_be_retried(
    mailer: Mailer,
) -> None:
    from notifications.outbox import MAX_ATTEMPTS, retry

    mailer.smtp.stop()
    mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    t = mailer.when
    for _ in range(MAX_ATTEMPTS + 2):
        t += timedelta(hours=5)
        mailer.deliver(mailer.transport(), lambda t=t: t)
    rows = mailer.rows()
    assert [r.status for r in rows].count("failed") >= 1
    assert all(r.status in ("failed", "pending") for r in rows)
    mailer.smtp.start()
    assert retry(mailer.engine, t) >= 1
    mailer.deliver(mailer.transport(), lambda: t, due_only=False)
    assert all(r.status == "sent" for r in mailer.rows())


def test_a_person_without_an_address_is_reported_not_skipped(
    org: Engine, protocol: Protocol, tmp_path: Path
) -> None:
    from drp.models import Person

    with db.transaction(org) as s:
        fay = s.exec(select(Person).where(Person.username == "tm.fay")).one()
        fay.email = None
        s.add(fay)
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
    with db.transaction(org) as s:
        AlertService(s, protocol=protocol, calendar=WorkingCalendar(),
                     clock=FixedClock(parse_instant("2027-03-01T09:00", LONDON)), tz=LONDON,
                     notifier=notifier).raise_alert("iro.ada", "R100", "x")
    assert len(notifier.missing) == 1 and "tm.fay has no e-mail address" in notifier.missing[0]
    with Session(org) as s:
        row = s.exec(select(OutboxMessage).where(OutboxMessage.recipient == "tm.fay")).one()
        assert row.status == "failed" and "no e-mail address" in (row.last_error or "")


def test_the_file_transport_writes_one_eml_per_message(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    out = Outgoing(row_id=3, key="9:tm.fay", to_addr="fay@example.org", subject="[drp] Hi",
                   text="plain", html="<p>html</p>", created_at=datetime(2027, 3, 1, tzinfo=UTC),
                   message="escalated")
    transport = FileTransport(tmp_path, "drp@example.org")
    transport.send(out)
    transport.send(out)  # a resend after a crash replaces the file, never adds one
    files = list(tmp_path.glob("*.eml"))
    assert len(files) == 1
    msg = message_from_bytes(files[0].read_bytes(), policy=default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Message-ID"].startswith("<drp.3.") and msg["Message-ID"].endswith("@example.org>")


def test_an_escalation_after_the_resolution_date_says_that_date_has_passed() -> None:
    from datetime import date

    context = sample_context("responsible")
    context["alert"] = {**context["alert"], "resolution_due": date(2026, 2, 27)}
    text = Renderer().render("escalated", context).text
    assert ("The formal process should have been over by 27 February 2026 (20 working days"
            " from its first formal stage): that date has passed.") in " ".join(text.split())
    context["resolution_working_days"] = 15
    context["alert"]["resolution_due"] = date(2026, 3, 30)
    text = " ".join(Renderer().render("escalated", context).text.split())
    assert ("The IRO Handbook expects the formal process to be over by 30 March 2026 (15"
            " working days from its first formal stage).") in text
    assert "should have been" not in text


def _mail(mailer: Mailer, when: str, fn: Callable[[AlertService], Any]) -> dict[str, str]:
    """Run one unit of work; the plain-text part each address was sent, words on one line."""
    before = len(mailer.smtp.received)
    mailer(when, fn)
    return {r.rcpt[0]: " ".join(f"{r.subject} {r.part('plain')}".split())
            for r in mailer.smtp.received[before:]}


@backends
def test_an_informal_alert_is_never_given_a_handbook_date_a_formal_one_is(
        mailer: Mailer) -> None:
    informal = _mail(mailer, "2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "No plan", due_on=date(2027, 3, 4)))
    assert set(informal) == {ADDR[u] for u in ("tm.fay", "sw.dan", "iro.ada")}
    for text in informal.values():
        assert "Handbook" not in text and "formal process" not in text
        assert "the IRO asks for it to be resolved informally by 4 March 2027" in text
    response = _mail(mailer, "2027-03-02T09:00", lambda s: s.respond(1, "tm.fay", "Soon"))
    assert "formal process" not in response[ADDR["iro.ada"]]

    # Raised straight at a formal stage: the formal clock starts that day, 20 working days
    # (Good Friday and Easter Monday 2027 not counted).
    formal = _mail(mailer, "2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ben", "R200", "No visits", stage="stage1"))
    assert set(formal) == {ADDR[u] for u in ("tm.gus", "sw.eve", "iro.ben")}
    assert WorkingCalendar().add(date(2027, 3, 1), 20) == date(2027, 3, 31)
    for text in formal.values():
        assert ("It starts at Stage 1: Team manager, a formal stage. The IRO Handbook expects"
                " the formal process to be over by 31 March 2027 (20 working days).") in text

    # Escalating the informal one starts its clock on the day of escalation.
    escalated = _mail(mailer, "2027-03-03T09:00", lambda s: s.escalate(1, "iro.ada", "No"))
    assert ("The IRO Handbook expects the formal process to be over by 2 April 2027 (20"
            " working days from its first formal stage).") in escalated[ADDR["tm.fay"]]


@backends
def test_a_referral_and_cafcass_response_tell_the_iro_managers_and_head_of_service_the_minimum(
        mailer: Mailer) -> None:
    mailer("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "Plan drift UNIQUESUMMARY", detail="Private story"))
    referred = _mail(mailer, "2027-03-02T09:00", lambda s: s.refer(
        1, "iro.ada", "Reason UNIQUEREASON", legal_advice="Jo Counsel UNIQUEADVICE",
        advised_on=date(2027, 3, 1)))
    assert set(referred) == {ADDR[u] for u in ("iro.ada", "irom.cat", "hos.ivy")}
    for addr, text in referred.items():
        assert text.startswith("[drp] Record Cafcass's response: alert 1 (R100) referred to"
                               " Cafcass " if addr == ADDR["iro.ada"] else
                               "[drp] For information: alert 1 (R100) referred to Cafcass ")
        assert ("Ada Iro has referred the case of child R100 to Cafcass, under section 25B(3)"
                " of the Children Act 1989, after taking legal advice. The referral runs"
                " alongside the local process: the alert stays open at Informal resolution."
                ) in text
        # The minimum: no reason, no legal advice, no summary or detail in an e-mail.
        for secret in ("UNIQUE", "Private", "Jo Counsel"):
            assert secret not in text, addr
    assert "For your oversight: the IRO will record Cafcass's response" in referred[
        ADDR["irom.cat"]]
    assert "Record Cafcass's response in drp when it comes" in referred[ADDR["iro.ada"]]
    assert "You receive this as a copy for information" in referred[ADDR["hos.ivy"]]

    answered = _mail(mailer, "2027-03-09T09:00", lambda s: s.cafcass_response(
        1, "iro.ada", "proceedings", note="Hearing UNIQUENOTE"))
    assert set(answered) == set(referred)
    for text in answered.values():
        assert text.startswith("[drp] For information: alert 1 (R100) Cafcass's response"
                               " recorded ")
        assert ("Ada Iro has recorded Cafcass's response to the referral of child R100's case:"
                " Cafcass has issued proceedings.") in text
        assert "UNIQUE" not in text


@backends
def test_overdue_at_the_stage3_pause_point_asks_the_iro_and_iro_manager_to_decide(
        mailer: Mailer) -> None:
    mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x", stage="stage3"))
    # Due 8 March; on the 9th the timescale run reminds, and does not escalate.
    overdue = _mail(mailer, "2027-03-09T07:00", lambda s: s.act_on_overdue(1))
    assert set(overdue) == {ADDR[u] for u in ("ad.kim", "iro.ada", "irom.cat")}
    for text in overdue.values():
        assert "[drp] " in text and ": alert 1 (R100) overdue, Stage 3 response was due 8 March " in text
        assert "has been at Stage 3: Assistant director since 1 March 2027" in text
    assert ("Decide what happens next: escalate the alert, agree an extension with a reason,"
            " or resolve it") in overdue[ADDR["iro.ada"]]
    assert ("For your oversight: drp does not take the alert further by itself at this stage."
            " The IRO decides") in overdue[ADDR["irom.cat"]]
    assert "Respond in drp today." in overdue[ADDR["ad.kim"]]
    assert overdue[ADDR["ad.kim"]].startswith("[drp] Respond today: ")
    assert overdue[ADDR["iro.ada"]].startswith("[drp] Decide the next step: ")
    assert overdue[ADDR["irom.cat"]].startswith("[drp] For your oversight: ")
    with Session(mailer.engine) as s:
        alert = s.get(Alert, 1)
        assert alert is not None and alert.stage == "stage3"
        assert [e.kind for e in s.exec(select(Event).order_by(Event.seq))] == [  # type: ignore[arg-type]
            "raised", "overdue"]


@backends
def test_while_the_iro_is_covered_the_deputy_refers_and_gets_the_iros_mail(
        mailer: Mailer) -> None:
    from drp.models import Cover, Person

    mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    with db.transaction(mailer.engine) as s:
        ids = {p.username: p.id for p in s.exec(select(Person))}
        s.add(Cover(person_id=ids["iro.ada"], deputy_id=ids["iro.ben"], starts=date(2027, 3, 2),
                    ends=date(2027, 3, 12), created_by="admin.max",
                    created_at=mailer.when))
    referred = _mail(mailer, "2027-03-03T09:00", lambda s: s.refer(
        1, "iro.ben", "Drift", legal_advice="Jo Counsel"))
    # The deputy, not the absent IRO; the IRO managers and head of service as ever.
    assert set(referred) == {ADDR[u] for u in ("iro.ben", "irom.cat", "hos.ivy")}
    assert "Ben Iro has referred the case of child R100" in referred[ADDR["iro.ben"]]
    assert "You receive this as cover for the child's IRO" in referred[ADDR["iro.ben"]]
    with Session(mailer.engine) as s:
        event = s.exec(select(Event).where(Event.kind == "referred")).one()
        assert (event.actor, event.as_cover_for, event.iro) == ("iro.ben", "iro.ada", "iro.ada")


def test_an_alert_already_referred_is_not_asked_to_consider_cafcass_again(
        mailer: Mailer) -> None:
    """The last stage overdue prompts the IRO to consider a referral; where the referral
    was made (alongside the local process), the prompt says so instead."""
    aid = mailer("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "Placement breaking down", stage="stage4").id)
    mailer("2027-03-02T09:00", lambda s: s.refer(
        aid, "iro.ada", "No plan after four stages", legal_advice="Counsel, Smith Chambers"))
    before = len(mailer.smtp.received)
    # stage4's 5 working days from Mon 1 March: due Mon 8 March, so late on Tue 9 March.
    assert mailer("2027-03-09T07:00", lambda s: s.act_on_overdue(aid)) == "cafcass_prompt"
    prompts = [m for m in mailer.smtp.received[before:] if "Cafcass" in m.subject]
    assert prompts and all("referred to Cafcass on 2 March 2027" in " ".join(
        m.part("plain").split()) for m in prompts)
    assert not any("Consider whether to refer" in m.part("plain") for m in prompts)


# -- dates in the council's local time, with the year where it is not this year's --------------
@backends
def test_dates_in_emails_are_the_councils_local_dates(mailer: Mailer) -> None:
    """An alert raised at 00:30 BST on 1 June (23:30 UTC on 31 May) was raised on 1 June."""
    mailer("2027-06-01T00:30", lambda s: s.raise_alert("iro.ada", "R100", "x", stage="stage3"))
    mailer("2027-06-01T00:40", lambda s: s.raise_alert("iro.ben", "R200", "y", stage="stage4"))
    # stage3 and stage4 due Tue 8 June; late on the 9th.
    overdue = _mail(mailer, "2027-06-09T07:00", lambda s: s.act_on_overdue(1))
    assert "has been at Stage 3: Assistant director since 1 June 2027" in overdue[ADDR["iro.ada"]]
    prompt = _mail(mailer, "2027-06-09T07:05", lambda s: s.act_on_overdue(2))
    assert "was raised on 1 June 2027" in prompt[ADDR["iro.ben"]]
    for text in (*overdue.values(), *prompt.values()):
        assert "31 May" not in text


def test_an_instant_never_reaches_a_template_as_a_date() -> None:
    """Only local dates go into a message: an instant would print its UTC day."""
    from datetime import UTC, datetime

    context = {**sample_context("iro"), "stage_entered": datetime(2027, 5, 31, 23, 30,
                                                                  tzinfo=UTC)}
    with pytest.raises(TypeError, match="local date"):
        Renderer().render("overdue", context)


@backends
def test_a_date_in_another_year_carries_its_year(mailer: Mailer) -> None:
    mailer("2027-12-20T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    got = _mail(mailer, "2027-12-21T09:00", lambda s: s.extend(
        1, "iro.ada", date(2028, 1, 7), "Christmas"))
    assert got[ADDR["tm.fay"]].startswith(
        "[drp] Respond by 7 January 2028: alert 1 (R100) given more time at Informal resolution")
    assert got[ADDR["iro.ada"]].startswith("[drp] For information: alert 1 (R100) given more"
                                           " time, Informal resolution response due 7 January"
                                           " 2028")
    # This year's dates need no year in a subject.
    raised = _mail(mailer, "2027-12-21T10:00", lambda s: s.raise_alert("iro.ben", "R200", "y"))
    assert raised[ADDR["tm.gus"]].startswith("[drp] Respond by 30 December: alert 2 (R200)")
    # Rendered at delivery (the timescale run's path): the year is the event's, not the
    # delivery's.
    context = {**sample_context("responsible"), "today": date(2025, 12, 30)}
    assert Renderer().render("reminder", context).subject.startswith(
        "[drp] Respond by 9 March 2026 (reminder): alert 17 (C1001)")


# -- counts --------------------------------------------------------------------------------------
@backends
def test_a_hold_that_moved_nothing_says_so(mailer: Mailer) -> None:
    mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    mailer("2027-03-02T09:00", lambda s: s.hold(1, "iro.ada", "Court",
                                                until=date(2027, 3, 12)))
    same_day = _mail(mailer, "2027-03-02T15:00", lambda s: s.resume(1, "iro.ada"))
    text = same_day[ADDR["tm.fay"]]
    assert "0 working day" not in text
    assert ("The alert for child R100 is no longer on hold. No working day passed while it was"
            " on hold, so its due dates have not moved: the Informal resolution response is due"
            " 8 March 2027.") in text
    mailer("2027-03-03T09:00", lambda s: s.hold(1, "iro.ada", "Court",
                                                until=date(2027, 3, 12)))
    one_day = _mail(mailer, "2027-03-04T09:00", lambda s: s.resume(1, "iro.ada"))
    assert ("Its due dates have moved on by the 1 working day it was held: the Informal"
            " resolution response is now due 9 March 2027.") in one_day[ADDR["tm.fay"]]


def test_counts_of_one_and_none_read_as_english() -> None:
    renderer = Renderer()

    def text(message: str, **values: Any) -> str:
        return " ".join(renderer.render(message, {**sample_context("iro"), **values})
                        .text.split())

    assert "1 agreed action with dates was recorded" in text(
        "response_received", actions_agreed=1)
    assert "agreed action" not in text("response_received", actions_agreed=0)
    assert "(1 working day from its first formal stage)" in text(
        "escalated", resolution_working_days=1)
    assert "(1 working day)" in text("alert_raised", resolution_working_days=1)
    assert "1 agreed action is still to be completed" in text("resolved", outstanding_actions=1)


# -- subjects: what the reader must do -----------------------------------------------------------
# Each (message, reader) the ladder sends, and how its subject begins.
SUBJECT_LEADS = {
    "alert_raised": {"responsible": "Respond by 9 March:", "iro": "Raised:",
                     "copy": "For information:"},
    "response_received": {"iro": "Resolve or escalate:"},
    "escalated": {"responsible": "Respond by 9 March:", "copy": "For information:",
                  "iro": "For information:", "iro_manager": "For information:"},
    "resolved": {"copy": "For information:", "iro": "For information:",
                 "owner": "Complete your agreed action:"},
    "withdrawn": {"copy": "For information:", "iro": "For information:",
                  "owner": "For information:"},
    "held": {"responsible": "For information:", "iro": "For information:"},
    "resumed": {"responsible": "Respond by 9 March:", "iro": "For information:"},
    "extended": {"responsible": "Respond by 9 March:", "iro": "For information:"},
    "reopened": {"responsible": "Respond by 9 March:", "iro": "For information:"},
    "reminder": {"responsible": "Respond by 9 March (reminder):"},
    "overdue": {"responsible": "Respond today:", "iro": "Decide the next step:",
                "iro_manager": "For your oversight:"},
    "cafcass_consider": {"iro": "Consider referral to Cafcass:",
                         "iro_manager": "Consider referral to Cafcass with the IRO:"},
    "referred": {"iro": "Record Cafcass's response:", "iro_manager": "For information:",
                 "copy": "For information:"},
    "cafcass_response": {"iro": "For information:", "iro_manager": "For information:",
                         "copy": "For information:"},
    "ack_reminder": {"responsible": "Acknowledge, then respond by 9 March:"},
    "due_changed": {"responsible": "Respond by 9 March:", "iro": "For information:"},
    "good_practice": {"copy": "For information:"},
    "moved": {"responsible": "Respond by 9 March:", "iro": "For information:"},
    "transferred": {"responsible": "Acknowledge, then respond by 9 March:",
                    "iro": "Now your alert as IRO:"},
    "action_overdue": {"owner": "Complete your agreed action:", "iro": "Check with the owner:"},
    "action_assigned": {"owner": "Action due 13 March:"},
    "action_due": {"owner": "Action due 13 March (reminder):"},
}


def test_each_readers_subject_says_what_they_must_do() -> None:
    from drp.notify import MESSAGE_FOR_EVENT

    renderer = Renderer()
    assert set(SUBJECT_LEADS) == set(MESSAGE_FOR_EVENT.values())
    for message, leads in SUBJECT_LEADS.items():
        for role, lead in leads.items():
            subject = renderer.render(message, sample_context(role)).subject
            assert subject.startswith(f"[drp] {lead} alert 17 (C1001)"), (message, role, subject)
            # The minimum: the child by reference, no names of anyone.
            for name in ("Helen", "Asha", "Tom Jones", "Smith"):
                assert name not in subject, (message, role, subject)
    # Cover periods name the staff concerned (no child): the deputy acts, the absent person
    # is told.
    assert renderer.render("cover_set", {**sample_context(), "role": "deputy"}).subject == (
        "[drp] Act as cover for Helen Smith, 2 March to 13 March")
    assert renderer.render("cover_set", {**sample_context(), "role": "absent"}).subject == (
        "[drp] For information: Ravi Shah covers for you, 2 March to 13 March")
    assert renderer.render("cover_ended", {**sample_context(), "role": "deputy"}).subject == (
        "[drp] For information: you no longer cover for Helen Smith")
    assert renderer.render("cover_ended", {**sample_context(), "role": "absent"}).subject == (
        "[drp] For information: Ravi Shah no longer covers for you")


@backends
def test_the_manager_is_asked_to_respond_and_the_iro_told_it_is_raised(mailer: Mailer) -> None:
    raised = _mail(mailer, "2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    assert raised[ADDR["tm.fay"]].startswith(
        "[drp] Respond by 8 March: alert 1 (R100) raised at Informal resolution ")
    assert raised[ADDR["iro.ada"]].startswith(
        "[drp] Raised: alert 1 (R100) at Informal resolution, response due 8 March ")
    # Informal resolution is with the social worker too.
    assert raised[ADDR["sw.dan"]].startswith("[drp] Respond by 8 March: ")
    formal = _mail(mailer, "2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ben", "R200", "y", stage="stage1"))
    assert formal[ADDR["tm.gus"]].startswith(
        "[drp] Respond by 8 March: alert 2 (R200) raised at Stage 1 ")
    assert formal[ADDR["sw.eve"]].startswith(  # told, at a formal stage, not asked
        "[drp] For information: alert 2 (R200) raised at Stage 1, response due 8 March ")


def test_a_cover_periods_subject_gives_the_year_only_when_it_is_not_this_one(
        mailer: Mailer) -> None:
    told = _mail(mailer, "2027-12-20T09:00", lambda s: s.set_cover(
        "irom.cat", "iro.ada", "iro.ben", date(2027, 12, 21), date(2028, 1, 7)))
    assert told[ADDR["iro.ben"]].startswith(
        "[drp] Act as cover for Ada Iro, 21 December to 7 January 2028 ")
    assert told[ADDR["iro.ada"]].startswith(
        "[drp] For information: Ben Iro covers for you, 21 December to 7 January 2028 ")


# -- who is asked: the inbox's rule (access.awaits_response_from), not the reader's role --------
@backends
def test_a_manager_who_owns_an_agreed_action_is_asked_to_complete_it_when_resolved(
        mailer: Mailer) -> None:
    mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    mailer("2027-03-02T09:00", lambda s: s.respond(
        1, "tm.fay", "Will do", [ActionIn("Share the plan", date(2027, 3, 22))]))
    resolved = _mail(mailer, "2027-03-03T09:00", lambda s: s.resolve(1, "iro.ada", "Agreed"))
    # Fay is responsible at the stage (a copy) and the action's owner: the owner's mail.
    assert resolved[ADDR["tm.fay"]].startswith(
        "[drp] Complete your agreed action: alert 1 (R100) resolved ")
    assert "Complete what you agreed to do and mark it done in drp." in resolved[ADDR["tm.fay"]]
    assert resolved[ADDR["sw.dan"]].startswith("[drp] For information: alert 1 (R100) resolved ")


@backends
def test_respond_by_only_while_the_stage_still_awaits_the_response(mailer: Mailer) -> None:
    mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    mailer("2027-03-01T09:30", lambda s: s.raise_alert("iro.ben", "R101", "y"))
    mailer("2027-03-02T09:00", lambda s: s.respond(1, "tm.fay", "Plan shared on Friday"))
    mailer("2027-03-03T09:00", lambda s: s.hold(1, "iro.ada", "Court", until=date(2027, 3, 5)))
    resumed = _mail(mailer, "2027-03-04T09:00", lambda s: s.resume(1, "iro.ada"))
    fay = resumed[ADDR["tm.fay"]]
    # Answered on 2 March: nothing to respond to, and no response said to be due.
    assert fay.startswith("[drp] For information: alert 1 (R100) resumed at Informal resolution ")
    assert "Respond" not in fay and "response is" not in fay
    assert "The response at Informal resolution has been recorded" in fay
    assert resumed[ADDR["sw.dan"]].startswith("[drp] For information: ")
    extended = _mail(mailer, "2027-03-04T10:00", lambda s: s.extend(
        1, "iro.ada", date(2027, 3, 19), "Leave"))
    assert extended[ADDR["tm.fay"]].startswith(
        "[drp] For information: alert 1 (R100) given more time at Informal resolution ")
    assert "Respond" not in extended[ADDR["tm.fay"]]
    # The timescale run's resumes (e-mails rendered at delivery): the unanswered alert still
    # asks, the answered one does not.
    for aid, iro in ((1, "iro.ada"), (2, "iro.ben")):
        mailer("2027-03-05T09:00", lambda s, aid=aid, iro=iro: s.hold(
            aid, iro, "Court", until=date(2027, 3, 12)))
    before = len(mailer.smtp.received)
    mailer.when = parse_instant("2027-03-12T07:00", LONDON)
    from drp import timescales
    timescales.run(mailer.engine, lambda session: AlertService(
        session, protocol=mailer.protocol, calendar=WorkingCalendar(),
        clock=FixedClock(mailer.when), tz=LONDON, notifier=mailer.notifier),
        mailer.protocol, WorkingCalendar(), date(2027, 3, 12))
    mailer.deliver(mailer.transport(), lambda: mailer.when)
    auto = sorted(r.subject for r in mailer.smtp.received[before:]
                  if r.rcpt[0] == ADDR["tm.fay"] and "resumed" in r.subject)
    assert auto == ["[drp] For information: alert 1 (R100) resumed at Informal resolution",
                    "[drp] Respond by 15 March: alert 2 (R101) resumed at Informal resolution"]


@backends
def test_the_timescale_runs_mail_carries_what_each_reader_is_asked(mailer: Mailer) -> None:
    """Rows the run queues in bulk are rendered at delivery from their stored context: each
    reader's own flags are in it (a council's wording may use them)."""
    import json

    from drp import timescales

    mailer("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    when = parse_instant("2027-03-05T07:00", LONDON)
    timescales.run(mailer.engine, lambda session: AlertService(
        session, protocol=mailer.protocol, calendar=WorkingCalendar(), clock=FixedClock(when),
        tz=LONDON, notifier=mailer.notifier), mailer.protocol, WorkingCalendar(),
        date(2027, 3, 5))
    asked = {row.recipient: {k: v for k, v in json.loads(row.context or "{}").items()
                             if k.startswith("asked_")}
             for row in mailer.rows() if row.message == "reminder"}
    assert asked == {
        "tm.fay": {"asked_to_respond": True, "asked_to_acknowledge": True},
        "sw.dan": {"asked_to_respond": True, "asked_to_acknowledge": False}}


def test_a_row_queued_before_the_readers_flags_existed_still_renders_as_it_did() -> None:
    """Rows the timescale run queued before an upgrade carry no asked_* keys: the templates
    fall back to the reader's role (StrictUndefined would fail their delivery)."""
    renderer = Renderer()
    for message in renderer.messages():
        for role in ("responsible", "iro", "copy", "iro_manager", "owner"):
            old = {k: v for k, v in sample_context(role).items()
                   if k not in ("asked_to_respond", "asked_to_acknowledge", "newly_asked",
                                "stage_answered")}
            assert renderer.render(message, old).subject == renderer.render(
                message, sample_context(role)).subject, (message, role)


def test_compiled_templates_are_kept_only_for_environments_of_one_set_of_options() -> None:
    """CompiledOnce keeps compiled code by template and source: an environment whose options
    change what a template compiles to (here trim_blocks) is refused, not served another's."""
    from jinja2 import DictLoader, Environment

    from notifications.render import CompiledOnce

    cache = CompiledOnce()
    loader = DictLoader({"t": "{% if x %}\nyes{% endif %}"})
    first = Environment(loader=loader, bytecode_cache=cache).get_template("t")
    again = Environment(loader=loader, bytecode_cache=cache).get_template("t")  # served
    assert first.render(x=1) == again.render(x=1) == "\nyes"
    with pytest.raises(ValueError, match="one set of options"):
        Environment(loader=loader, bytecode_cache=cache, trim_blocks=True).get_template("t")
