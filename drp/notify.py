"""Who is told what: recipients from the organisation and the ladder, and the context each
message is rendered with. The service layer calls this inside its transaction; the outbox
rows it writes commit (or roll back) with the event. Every path (a person's command, the
timescale run) queues the message's context, rendered once at delivery
(notifications/outbox.py), so no template runs in the command's transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlmodel import Session, col, select

from notifications.models import OutboxMessage
from notifications.outbox import row_values
from notifications.render import Renderer, dump_context

from .clock import local_date
from .directory import Directory
from .ladder import access
from .ladder.access import Line
from .ladder.protocol import Protocol, Role
from .models import Action, Alert, Event, Person, Referral
from .settings import Settings

_string = json.encoder.encode_basestring_ascii  # a JSON string, as json.dumps writes it
SYSTEM_NAME = "drp (automatically)"  # who the e-mails say acted, for the flows

# Which message each event sends.
MESSAGE_FOR_EVENT = {
    "raised": "alert_raised",
    "responded": "response_received",
    "escalated": "escalated",
    "auto_escalated": "escalated",
    "resolved": "resolved",
    "withdrawn": "withdrawn",
    "held": "held",
    "resumed": "resumed",
    "extended": "extended",
    "reopened": "reopened",
    "referred": "referred",
    "cafcass_response": "cafcass_response",
    "reminder": "reminder",
    "overdue": "overdue",
    "cafcass_prompt": "cafcass_consider",
    "action_overdue": "action_overdue",
    "action_agreed": "action_assigned",
    "action_reminder": "action_due",
    "transferred": "transferred",
    "due_recomputed": "due_changed",
    "ack_reminder": "ack_reminder",
    "good_practice": "good_practice",
    "moved": "moved",
}

PARTS = {
    "responsible": "the person asked to respond",
    "iro": "the child's IRO",
    "copy": "a copy for information",
    "iro_manager": "an IRO manager",
    "owner": "the owner of the agreed action",
}


@dataclass
class Recipient:
    person: Person
    role: str
    part: str | None = None  # how they are addressed, when not by their role's PARTS

    @property
    def addressed_as(self) -> str:
        return self.part or PARTS[self.role]


@dataclass
class Notice:
    """What one event asks to be sent; turned into outbox rows at the unit of work's end."""

    event: Event
    previous_stage: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    action: Action | None = None


# The messages whose readers may include the IRO managers (`Notifier.recipients`' managers()):
# for these an event's people are read with the managers (`Directory.load`). Only a hint to
# read them early: a message that copies them and is not named here reads them when asked.
READ_WITH_MANAGERS = frozenset({"escalated", "overdue", "cafcass_consider", "referred",
                                "cafcass_response"})


def reads_iro_managers(event_kind: str) -> bool:
    """Are the IRO managers likely among the readers of this event's e-mail?"""
    return MESSAGE_FOR_EVENT.get(event_kind) in READ_WITH_MANAGERS


# The council's time zone when none is given: the settings' own default (Europe/London).
DEFAULT_TZ = ZoneInfo(Settings.model_fields["timezone"].default)


@dataclass
class Notifier:
    renderer: Renderer
    base_url: str
    missing: list[str] = field(default_factory=list)
    tz: ZoneInfo = DEFAULT_TZ  # the council's (settings.tz): whose days the e-mails give

    def local_day(self, instant: datetime) -> date:
        """The one place an instant becomes a date in an e-mail: the council's local day, so
        an alert raised at 00:30 BST on 1 June was raised on 1 June, not on 31 May (UTC). The
        renderer refuses instants, so no other path prints a UTC day."""
        if instant.tzinfo is None:
            raise ValueError(f"a naive instant ({instant.isoformat()}) given for an e-mail")
        return local_date(instant, self.tz)

    def alert_url(self, alert_id: int) -> str:
        return f"{self.base_url.rstrip('/')}/alerts/{alert_id}"

    # -- recipients -----------------------------------------------------------------------------
    def _people(self, session: Session, ids: list[tuple[int | None, str]],
                directory: Directory | None = None) -> list[Recipient]:
        find = directory or Directory(session)
        out: list[Recipient] = []
        seen: dict[int, Recipient] = {}
        for pid, role in ids:
            if pid is None:
                continue
            if pid in seen:
                # One message each, in the part that asks the most of them: a copy gives way
                # (the manager told of a resolution who owns an agreed action completes it).
                if seen[pid].role == "copy":
                    seen[pid].role = role
                continue
            person = find.person(pid)
            if person is None or not person.active:
                continue
            seen[pid] = Recipient(person, role)
            out.append(seen[pid])
        return out

    def recipients(self, session: Session, protocol: Protocol, message: str, alert: Alert,
                   line: Line, notice: Notice, directory: Directory | None = None
                   ) -> list[Recipient]:
        find = directory or Directory(session)

        def stage_people(stage_key: str | None, role: str) -> list[tuple[int | None, str]]:
            return [(pid, role) for pid in access.responders(protocol, stage_key, line)]

        def notify_roles(stage_key: str) -> list[tuple[int | None, str]]:
            if stage_key not in protocol.keys:
                return []
            return [(line.acting(r), "copy") for r in protocol.stage(stage_key).also_notify]

        # The allocated IRO, or their recorded cover.
        iro: list[tuple[int | None, str]] = [(access.iro_of(alert, line), "iro")]
        # (an absent IRO manager's mail goes to their recorded cover; read only when told)
        def managers() -> list[tuple[int | None, str]]:
            return [(line.covered(pid), "iro_manager") for pid in find.iro_managers()]

        now_stage = stage_people(alert.stage, "responsible")
        ids: list[tuple[int | None, str]]
        if message == "alert_raised":
            ids = now_stage + iro + notify_roles(alert.stage)
        elif message == "response_received":
            ids = iro
        elif message == "escalated":
            ids = (now_stage + [(p, "copy") for p, _ in stage_people(notice.previous_stage, "")]
                   + iro + managers())
        elif message in ("resolved", "withdrawn"):
            owners = session.exec(select(Action.owner_id).where(
                Action.alert_id == alert.id, col(Action.done_at).is_(None))).all()
            owned: list[tuple[int | None, str]] = [(o, "owner") for o in owners]
            ids = [(p, "copy") for p, _ in now_stage] + owned + iro
        elif message in ("held", "resumed", "extended", "reopened", "reminder"):
            ids = now_stage + ([] if message == "reminder" else iro)
        elif message == "overdue":
            # A pause point at a formal stage: the IRO decides, with the IRO manager.
            formal = protocol.is_formal(alert.stage)
            ids = now_stage + iro + (managers() if formal else [])
        elif message == "cafcass_consider":
            ids = iro + managers()
        elif message in ("referred", "cafcass_response"):
            # The IRO manager and the head of service are told; the local process goes on.
            ids = iro + managers() + [(line.acting(Role.head_of_service), "copy")]
        elif message == "ack_reminder":
            # Whoever does the responsible post's work today (the holder, or their cover).
            ids = [(access.responsible_id(protocol, alert.stage, line), "responsible")]
        elif message == "due_changed":
            ids = now_stage + iro
        elif message == "good_practice":
            # No ladder: the team manager and head of service are told, for information.
            ids = [(line.acting(Role.team_manager), "copy"),
                   (line.acting(Role.head_of_service), "copy")]
        elif message == "moved":
            # A misfiled alert on its right child: that child's IRO, and whoever is asked to
            # respond on its line while it is open.
            ids = iro + (now_stage if alert.status == "open" else [])
        elif message == "transferred":
            # A reloaded organisation file moved the child or replaced a person: the new IRO
            # and whoever is now asked to respond (the old IRO no longer sees the alert).
            ids = iro + now_stage
        elif message == "action_overdue":
            assert notice.action is not None
            ids = [(notice.action.owner_id, "owner"), *iro]
        elif message == "action_due":
            assert notice.action is not None
            ids = [(notice.action.owner_id, "owner")]
        elif message == "action_assigned":
            # The owner, unless they agreed it themselves (they know already).
            assert notice.action is not None
            owner = find.person(notice.action.owner_id)
            mine = owner is not None and owner.username == notice.event.actor
            ids = [] if mine else [(notice.action.owner_id, "owner")]
        else:  # pragma: no cover - every message is listed above
            raise KeyError(message)
        # Everyone this message may go to, and whom it names, read in one query.
        find.load([pid for pid, _ in ids] + [access.responsible_id(protocol, alert.stage, line)])
        people = self._people(session, ids, find)
        for r in people:  # the IRO's recorded cover is told they receive it as such
            if r.role == "iro" and r.person.id != alert.iro_id:
                r.part = "cover for the child's IRO"
        return people

    # -- what the reader is asked to do ------------------------------------------------------------
    def asks(self, protocol: Protocol, alert: Alert, line: Line, notice: Notice,
             person: Person, asked: tuple[frozenset[int], int | None] | None = None,
             ) -> dict[str, bool]:
        """What this reader is asked to do at the alert's stage now, by the inbox's own rules
        (`access.asked`, which the inbox's `awaits_response_from` asks):
        every "Respond by" and "Acknowledge" a message says tests these, not the reader's
        role alone, so a stage already answered (or on hold) asks nobody, and a social worker
        who may respond is not asked to acknowledge. `newly_asked`: the event gave them the
        stage's work; a transfer that left it in the same hands tells them, it does not ask
        them again. `asked`: `access.asked` for this alert, where the caller has it (a
        message's readers share it)."""
        respond_ids, acknowledge_id = asked or access.asked(protocol, alert, line)
        pid = person.id
        respond = pid is not None and pid in respond_ids
        return {
            "asked_to_respond": respond,
            "asked_to_acknowledge": pid is not None and pid == acknowledge_id,
            "newly_asked": respond and _newly_asked(protocol, alert, line, notice, pid),
        }

    # -- context ----------------------------------------------------------------------------------
    def context(self, session: Session, protocol: Protocol, alert: Alert, line: Line,
                notice: Notice, actor_name: str, now: datetime,
                directory: Directory | None = None) -> dict[str, Any]:
        """The message's context, the same for every reader: what is each reader's alone (who
        they are, what they are asked: `READER_KEYS`) `deferred` adds to each row."""
        assert alert.id is not None
        find = directory or Directory(session)
        title = protocol.title(alert.stage)
        responsible_id = access.responsible_id(protocol, alert.stage, line)
        responsible = find.person(responsible_id) if responsible_id else None
        council = line.council if line.council is not None else find.council()
        stage = protocol.stage(alert.stage) if alert.stage in protocol.keys else None
        previous = notice.previous_stage
        url = self.alert_url(alert.id)
        context: dict[str, Any] = {
            "council": council.name if council else "drp",
            "alert": {
                "id": alert.id, "child": line.child.ref, "team": line.team.name,
                "stage": alert.stage, "stage_title": title,
                "stage_short": title.split(":")[0].strip(),
                "stage_due": alert.stage_due, "resolution_due": alert.resolution_due,
                "summary": alert.summary, "url": url,
            },
            "link": url, "link_text": f"View alert {alert.id}",
            # The stage's response is recorded: no response is due from anyone at it.
            "stage_answered": alert.stage_responded_at is not None,
            "actor": actor_name,
            "responsible": responsible.name if responsible else "the responsible manager",
            "from_title": protocol.title(previous) if previous else "",
            "automatic": notice.event.kind == "auto_escalated",
            "when_overdue": stage.when_overdue.value if stage else "",
            "stage_entered": self.local_day(alert.stage_entered_at),
            "resolution_working_days": protocol.resolution_working_days,
            "raised_on": self.local_day(alert.raised_at),
            # The message's own day: a date in another year carries its year (rendered at
            # delivery, the year is still the event's).
            "today": self.local_day(now),
            "formal": protocol.is_formal(alert.stage),
            "cafcass_response": "",
            "actions_agreed": 0, "first_action_due": None, "outstanding_actions": 0,
            "hold_until": alert.hold_until, "held_working_days": 0, "previous_due": None,
            "action_no": None, "action_due": None, "action_owner": "",
        }
        if notice.event.kind == "cafcass_prompt":
            # The last stage is overdue: an alert already referred is not asked to consider
            # a referral again, but told where the referral stands.
            referral = session.exec(select(Referral).where(Referral.alert_id == alert.id)).first()
            context["referred_on"] = referral.referred_on if referral else None
            context["cafcass_answer"] = referral.response if referral else None
        if notice.action is not None:
            # An agreed action by its number and date only: its text is a response's free
            # text, which stays behind the sign-in as the response's own does.
            owner = find.person(notice.action.owner_id)
            context.update(action_no=notice.action.no, action_due=notice.action.due,
                           action_owner=owner.name if owner else "")
        if notice.extra:
            context.update(notice.extra)
            for name in ("recipient", "role", *READER_KEYS):  # (each reader's, not the event's)
                context.pop(name, None)
        return context

    # -- writing: outbox rows carrying their context, rendered at delivery -------------------------
    def _no_address(self, username: str, message: str, alert_id: int) -> None:
        self.missing.append(
            f"{username} has no e-mail address, so was not sent '{message}' for alert"
            f" {alert_id}; add one in the organisation file, then"
            " `drp outbox retry --all-failed`")

    def deferred(self, session: Session, protocol: Protocol, alert: Alert, line: Line,
                 notice: Notice, now: datetime, directory: Directory | None = None,
                 actor_name: str = SYSTEM_NAME) -> list[dict[str, Any]]:
        """The outbox rows (as column values) for one event, carrying the message's context
        (as DRP_MAIL_DETAIL lets it through) to be rendered once, at delivery: the e-mail
        reads as if rendered now. `actor_name`: who the e-mails say acted."""
        message = MESSAGE_FOR_EVENT.get(notice.event.kind)
        if message is None:
            return []
        people = self.recipients(session, protocol, message, alert, line, notice, directory)
        if not people:
            return []
        # The context is the same for every recipient but for who they are: build it and
        # encode it once, then add each recipient's part.
        context = self.context(session, protocol, alert, line, notice, actor_name, now,
                               directory)
        # Kept only as the e-mail may use it: no free text the setting keeps out of mail.
        shared = dump_context(self.renderer.minimise(context))[:-1]
        rows = []
        asked = access.asked(protocol, alert, line)
        for r in people:
            address = r.person.email
            asks = self.asks(protocol, alert, line, notice, r.person, asked)
            if not address:
                self._no_address(r.person.username, message, _known(alert.id))
            rows.append(row_values(
                key=outbox_key(notice.event.id, r.person.username), message=message,
                alert_id=alert.id, recipient=r.person.username, to_addr=address, now=now,
                context=f"{shared},{_reader_json(r, asks)}}}"))
        return rows

    def queue(self, session: Session, protocol: Protocol, alert: Alert, line: Line,
              notice: Notice, now: datetime, *, actor_name: str | None = None,
              directory: Directory | None = None) -> int:
        """Write the outbox rows for one event, in the caller's transaction, in one
        statement; returns how many. Rendered at delivery, from the context as it stands now
        (`deferred`). `actor_name`: the acting person's name, when the caller has it."""
        if notice.event.kind not in MESSAGE_FOR_EVENT:
            return 0
        with session.no_autoflush:
            if actor_name is None:
                actor_name = session.exec(select(Person.name).where(
                    Person.username == notice.event.actor)).first() or SYSTEM_NAME
            rows = self.deferred(session, protocol, alert, line, notice, now, directory,
                                 actor_name)
        # Each key is new: the event was written in this transaction (and a key queued twice
        # is refused by the outbox's unique key, never sent twice). One statement.
        insert_rows(session, rows)
        return len(rows)


# session.info key: the list `drp.mail.queued_ids` fills with the ids of the rows written.
QUEUED = "drp.mail.queued"
_INSERT = insert(OutboxMessage.__table__).returning(col(OutboxMessage.id))  # type: ignore[attr-defined]


def insert_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write outbox rows (`row_values`' columns) now, in the session's transaction, as one
    multi-row INSERT on each database (the rows' alert and event are flushed already); their
    ids go to `drp.mail.queued_ids`."""
    if not rows:
        return
    ids = session.execute(_INSERT, rows).scalars().all()
    found = session.info.get(QUEUED)
    if found is not None:
        found.extend(ids)


# The context's keys that differ between the readers of one message (with recipient, role).
READER_KEYS = ("asked_to_respond", "asked_to_acknowledge", "newly_asked")


def _newly_asked(protocol: Protocol, alert: Alert, line: Line, notice: Notice,
                 person_id: int | None) -> bool:
    """Did this event give the reader the stage's work? Every event that asks does, but a
    transfer (`drp org load`) only when it changed hands: the responsible post's holder
    changed (the event records who held it before), or, for the others asked (a social
    worker), the child moved to another team."""
    if notice.event.kind != "transferred":
        return True
    data = getattr(notice.event, "data", None) or {}
    was, now = data.get("from") or {}, data.get("to") or {}
    if person_id == access.responsible_id(protocol, alert.stage, line):
        return bool(was.get("responsible") != now.get("responsible"))
    return bool(was.get("team") != now.get("team"))


def _reader_json(r: Recipient, asks: dict[str, bool]) -> str:
    """One reader's part of a message's context, as JSON members (strings and booleans only:
    written directly, as `dump_context` would)."""
    return _reader_members(r.person.name, r.addressed_as, r.role, asks["asked_to_respond"],
                           asks["asked_to_acknowledge"], asks["newly_asked"])


@lru_cache(maxsize=4096)  # (a run's messages go to a few hundred people, each in a few parts)
def _reader_members(name: str, part: str, role: str, respond: bool, acknowledge: bool,
                    newly: bool) -> str:
    return (f'"recipient":{{"name":{_string(name)},"part":{_string(part)}}},'
            f'"role":{_string(role)},' + ",".join(
                f'"{k}":{"true" if a else "false"}'
                for k, a in zip(READER_KEYS, (respond, acknowledge, newly), strict=True)))


def _known(value: int | None) -> int:
    assert value is not None
    return value


def outbox_key(event_id: int | None, username: str) -> str:
    """One message per event and recipient: the outbox's unique key, whichever path queues."""
    return f"{event_id}:{username}"
