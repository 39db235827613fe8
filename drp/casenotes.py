"""Case notes for the child's file in the council's case-management system (Liquidlogic LCS,
Mosaic: docs/casenotes.md): each alert's raising, responses, escalations, outcome and referral
to Cafcass, one note per event, read from the event log (the one record of what happened).

A note is keyed by the child's record id in the council's system (`record_id` in the
organisation file; the child's reference where none is given), with its author (by name), its
instant, its type and its text. Three ways out, one note:

- the feed, `drp export casenotes` (`export`): every note not yet exported, each marked as
  exported (`CasenoteExport`) in the transaction that hands it over, so a rerun gives nothing
  new unless asked `again`;
- the webhook (`webhook_rows`): when DRP_WEBHOOK_URL is set, each new note queued in the
  outbox in the transaction that writes its event, and POSTed, signed, by the outbox's own
  delivery (notifications/webhook.py);
- the printable note (`note_text`, and drp/casenotes_pdf.py).

Notes carry the free text: they go to the child's file, where it belongs, not to a mailbox
(DRP_MAIL_DETAIL limits e-mails only)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from notifications.outbox import row_values
from notifications.render import Rendered

from . import audit, db
from .alerts.commands import CAFCASS_RESPONSES
from .alerts.records import EVENT_WORDS
from .casenotes_marks import CasenoteExport
from .ladder.protocol import Protocol
from .models import Alert, Child, Event, Person

FORMAT_VERSION = 1
WEBHOOK_MESSAGE = "webhook"  # the outbox's kind of message for a note sent by HTTP POST

# Which events are notes, and the note's type: a short code for the council's own list of
# case-note types (docs/casenotes.md maps them). Its title says the event in the timeline's
# words (drp.alerts.records.EVENT_WORDS).
NOTE_TYPES: dict[str, str] = {
    "raised": "iro_dispute_raised",
    "good_practice": "iro_good_practice",
    "responded": "iro_dispute_response",
    "escalated": "iro_dispute_escalated",
    "auto_escalated": "iro_dispute_escalated",
    "resolved": "iro_dispute_outcome",
    "withdrawn": "iro_dispute_outcome",
    "referred": "iro_cafcass_referral",
    "cafcass_response": "iro_cafcass_referral",
}
FIELDS = ("note_id", "record_id", "child_ref", "alert_id", "type", "title", "author",
          "author_username", "date", "text")


@dataclass(frozen=True)
class Note:
    note_id: str  # stable: "drp-<event id>"
    event_id: int
    record_id: str  # the child's record id in the council's system, else its reference
    child_ref: str
    alert_id: int
    type: str
    title: str
    author: str  # by name
    author_username: str
    date: datetime
    text: str

    def public(self, tz: ZoneInfo) -> dict[str, Any]:
        """As the feed and the webhook give it: the instant in ISO 8601, the council's offset."""
        out = asdict(self)
        out.pop("event_id")
        out["date"] = self.date.astimezone(tz).isoformat()
        return out


def title(kind: str, alert: Alert) -> str:
    """A note's one-line heading: the alert (or good-practice record), then what happened in
    the timeline's words, such as "IRO dispute, alert 12: Escalated"."""
    what = ("IRO good practice, record" if alert.kind == "good_practice"
            else "IRO dispute, alert")
    return f"{what} {alert.id}: {EVENT_WORDS.get(kind, kind)}"


def note_id(event_id: int) -> str:
    return f"drp-{event_id}"


# -- reading notes from the event log ---------------------------------------------------------

class _Reader:
    """Turns events into notes, reading each alert, child and person once."""

    def __init__(self, session: Session, protocol: Protocol, tz: ZoneInfo) -> None:
        self.s, self.protocol, self.tz = session, protocol, tz
        self.alerts: dict[int, Alert] = {}
        self.children: dict[int, Child] = {}
        self.names: dict[str, str] | None = None

    def name(self, username: str | None) -> str:
        if not username:
            return ""
        if username == "system":
            return "drp (automatically)"
        if self.names is None:
            self.names = dict(self.s.exec(select(Person.username, Person.name)).all())
        return self.names.get(username, username)

    def alert(self, alert_id: int) -> tuple[Alert, Child]:
        alert = self.alerts.get(alert_id) or self.s.get(Alert, alert_id)
        assert alert is not None
        self.alerts[alert_id] = alert
        child = self.children.get(alert.child_id) or self.s.get(Child, alert.child_id)
        assert child is not None
        self.children[alert.child_id] = child
        return alert, child

    def note(self, event: Event) -> Note:
        assert event.id is not None and event.kind in NOTE_TYPES
        alert, child = self.alert(event.alert_id)
        code = NOTE_TYPES[event.kind]
        return Note(
            note_id=note_id(event.id), event_id=event.id,
            record_id=child.record_id or child.ref, child_ref=child.ref, alert_id=alert.id or 0,
            type=code, title=title(event.kind, alert), author=self.name(event.actor),
            author_username=event.actor, date=event.at, text=self.text(event, alert))

    def stage(self, key: str | None) -> str:
        return self.protocol.title(key) if key else ""

    def text(self, event: Event, alert: Alert) -> str:
        """What the note says: what happened, by whom (and for whom), at which stage, and the
        words recorded with it. Only what the event and its alert hold."""
        who = self.name(event.actor)
        if event.as_cover_for:
            who += f" (as cover for {self.name(event.as_cover_for)})"
        when = event.at.astimezone(self.tz).strftime("%-d %B %Y %H:%M")
        data = event.data if isinstance(event.data, dict) else {}
        kind, comment = event.kind, event.comment or ""
        lines: list[str] = []
        if kind == "raised":
            lines = [f"Alert {alert.id} raised by {who} on {when}, at"
                     f" {self.stage(event.to_stage)}.", "", f"Summary: {comment}"]
            for label, value in (("What happened", alert.detail),
                                 ("Impact on the child", alert.impact),
                                 ("Outcome wanted", alert.outcome_wanted)):
                if value:
                    lines += ["", f"{label}: {value}"]
        elif kind == "good_practice":
            lines = [f"Good practice recorded by {who} on {when} (record {alert.id}).", "",
                     comment]
            if alert.detail:
                lines += ["", alert.detail]
        elif kind == "responded":
            lines = [f"Response to alert {alert.id} by {who} on {when}, at"
                     f" {self.stage(event.to_stage)}.", "", comment]
        elif kind in ("escalated", "auto_escalated"):
            how = ("automatically (the response was overdue)" if kind == "auto_escalated"
                   else f"by {who}")
            lines = [f"Alert {alert.id} escalated {how} on {when}, from"
                     f" {self.stage(event.from_stage)} to {self.stage(event.to_stage)}."]
            if comment:
                lines += ["", f"Reason: {comment}"]
        elif kind in ("resolved", "withdrawn"):
            lines = [f"Alert {alert.id} {kind} by {who} on {when}, at"
                     f" {self.stage(event.from_stage)}.", "",
                     f"{'Outcome' if kind == 'resolved' else 'Reason'}: {comment}"]
        elif kind == "referred":
            advice = data.get("legal_advice") or ""
            advised = data.get("advised_on")
            lines = [f"Alert {alert.id} referred to Cafcass by {who} on {when}, at"
                     f" {self.stage(event.from_stage)}; the local process continues.", "",
                     f"Reason: {comment}", "", f"Legal advice: {advice}"
                     + (f" (given on {advised})" if advised else "")]
        elif kind == "cafcass_response":
            answer = CAFCASS_RESPONSES.get(str(data.get("response")), str(data.get("response")))
            lines = [f"Cafcass {answer} (alert {alert.id}); recorded by {who} on {when}."]
            if comment:
                lines += ["", f"Note: {comment}"]
        return "\n".join(lines).strip()


def _note_events(since: datetime | None, alert_ids: Iterable[int] | None = None) -> Any:
    query = select(Event).where(col(Event.kind).in_(NOTE_TYPES))
    if since is not None:
        query = query.where(col(Event.at) >= since)
    if alert_ids is not None:
        query = query.where(col(Event.alert_id).in_(list(alert_ids)))
    return query.order_by(col(Event.at), col(Event.id))


def notes_of_alert(session: Session, protocol: Protocol, tz: ZoneInfo, alert_id: int
                   ) -> list[Note]:
    """An alert's notes, oldest first (the printable note; the caller has checked who may
    see it)."""
    reader = _Reader(session, protocol, tz)
    return [reader.note(e) for e in session.exec(_note_events(None, [alert_id]))]


def note_text(notes: list[Note], tz: ZoneInfo) -> str:
    """Notes as plain text to paste into a case-management system, one after another."""
    parts = []
    for n in notes:
        day = n.date.astimezone(tz).strftime("%-d %B %Y %H:%M")
        parts.append(f"{n.title}\nChild: {n.record_id}" + (
            f" (drp reference {n.child_ref})" if n.record_id != n.child_ref else "")
            + f"\nAuthor: {n.author}\nDate: {day}\nType: {n.type}\n\n{n.text}\n")
    return "\n".join(parts)


# -- the feed ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Exported:
    notes: list[Note]
    again: bool


EXPORT_LOCK = 0x64727001  # `db.one_at_a_time`'s key for the case notes' export


def export(engine: Engine, protocol: Protocol, tz: ZoneInfo, *, since: datetime | None,
           now: datetime, again: bool, write: Callable[[list[Note]], None],
           origin: audit.Origin | None = None) -> Exported:
    """Every note since `since` not yet exported (`again`: exported or not), handed to
    `write` and marked exported in one transaction: if writing fails nothing is marked, and a
    note marked has been written (a failure of the commit after writing may give a note
    twice, never lose one). Two exports at once: the second waits for the first, then gives
    only what the first did not (`db.one_at_a_time`). Recorded in the access log (one row,
    and an `exported` row per alert)."""
    with db.transaction(engine) as session:
        db.one_at_a_time(session, EXPORT_LOCK, CasenoteExport.__table__)  # type: ignore[attr-defined]
        query = _note_events(since)
        if not again:
            done = select(CasenoteExport.event_id)
            query = query.where(col(Event.id).not_in(done))
        reader = _Reader(session, protocol, tz)
        notes = [reader.note(e) for e in session.exec(query)]
        if notes:
            marked = set(session.exec(select(CasenoteExport.event_id).where(
                col(CasenoteExport.event_id).in_([n.event_id for n in notes])))) if again \
                else set()
            for n in notes:
                if n.event_id in marked:
                    session.get(CasenoteExport, n.event_id).exported_at = now  # type: ignore[union-attr]
                else:
                    session.add(CasenoteExport(event_id=n.event_id, exported_at=now))
            session.flush()
        write(notes)
        alerts = sorted({n.alert_id for n in notes})
        scope = f"since {since.isoformat()}" if since else "all"
        audit.record(session, origin, at=now, actor="system", action="casenotes_export",
                     detail=f"{len(notes)} case notes on {len(alerts)} alerts ({scope}"
                            f"{', again' if again else ''})")
        for alert_id in alerts:
            audit.record(session, origin, at=now, actor="system", action="exported",
                         alert_id=alert_id, detail="case notes")
    return Exported(notes, again)


def as_json(notes: list[Note], tz: ZoneInfo, now: datetime) -> str:
    return json.dumps({"format_version": FORMAT_VERSION,
                       "exported_at": now.astimezone(tz).isoformat(),
                       "notes": [n.public(tz) for n in notes]},
                      indent=2, ensure_ascii=False) + "\n"


def as_csv(notes: list[Note], tz: ZoneInfo) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for n in notes:
        writer.writerow({k: _cell(v) for k, v in n.public(tz).items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A spreadsheet must not run a cell as a formula (=, +, -, @ first): quoted with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# -- the webhook: queued with the event -------------------------------------------------------

def webhook_row(session: Session, protocol: Protocol, tz: ZoneInfo, *, event_id: int,
                kind: str, url: str, now: datetime) -> dict[str, Any] | None:
    """The outbox row (column values) that POSTs this event's note to `url`, or None when the
    event is no note. Its outbox key is the note's id (an e-mail's is "event:username"): the
    note is queued once, and the receiver sees the same id as the Idempotency-Key of every
    attempt. The body is the note as JSON, written now, and kept as sent."""
    if kind not in NOTE_TYPES:
        return None
    event = session.get(Event, event_id)
    assert event is not None
    note = _Reader(session, protocol, tz).note(event)
    body = json.dumps({"format_version": FORMAT_VERSION, "note": note.public(tz)},
                      ensure_ascii=False, sort_keys=True)
    return row_values(key=note.note_id, message=WEBHOOK_MESSAGE,
                      alert_id=note.alert_id, recipient=WEBHOOK_MESSAGE, to_addr=url, now=now,
                      rendered=Rendered(subject=note.title[:300], text=body, html=""))
