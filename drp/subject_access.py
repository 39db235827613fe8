"""Subject access (UK GDPR Article 15): everything drp holds about one child, for the council
to answer a request with (`drp child export`; docs/data-protection.md).

What it gathers: the child's record (reference, team, IRO, social worker), every alert on the
child (each with its events, agreed actions, any referral to Cafcass, the corrections of its
texts with the originals retention has not yet removed, and the marks of its events handed over
as case notes by `drp export casenotes`), the e-mails sent about those alerts (outbox rows),
and the access-log rows about them (views, lists, searches and refusals naming the child).
Nothing about another child: a link to another child's alert is withheld (its number too),
and another child's reference anywhere in text (a search, a moved alert's event, an e-mail)
is replaced by OTHER_CHILD. The people named (actors,
recipients, owners) are listed apart, by username and name, for the council to redact before
sending; free text may name people too, and only a reader can find those.

Only an IRO manager may export (`access.may_export_child`); anyone else, and an unknown child,
get the same refusal, so the answer says nothing of whether the child exists. Every export
and every refusal is written to the access log (drp.audit)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from . import audit, db
from .errors import NotFound
from .ladder import access
from .models import (
    AccessLog,
    Action,
    Alert,
    AlertLink,
    CasenoteExport,
    Child,
    Correction,
    Event,
    OutboxMessage,
    Person,
    Referral,
    Team,
)

FORMAT_VERSION = 1
OTHER_CHILD = "[another child]"
WITHHELD_LINK = "related to an alert of another child (withheld)"


def as_pdf(document: dict[str, Any], tz: ZoneInfo) -> bytes:
    """The export as a PDF to read and print: the same document, every section, marked
    OFFICIAL-SENSITIVE (drp.casenotes_pdf renders it)."""
    from .casenotes_pdf import subject_access_pdf

    return subject_access_pdf(document, tz)


def refusal(ref: str, username: str) -> NotFound:
    """One refusal for an unknown child and for a person who may not export: the same words."""
    return NotFound(
        f"there is no child {ref[:40]!r} whose record {username} may export; check the"
        " reference (only an IRO manager exports a child's record)")


def export_child(engine: Engine, *, ref: str, username: str, now: datetime,
                 origin: audit.Origin | None = None) -> dict[str, Any]:
    """The child's record as one JSON-ready document, read and recorded in the access log in
    one transaction. A refusal (`refusal(...)`, raised) is recorded too, in its own."""
    with db.transaction(engine) as session:
        person = session.exec(select(Person).where(Person.username == username)).first()
        child = session.exec(select(Child).where(Child.ref == ref)).first()
        actor = (access.load_actor(session, person, now.date())
                 if person is not None and person.active else None)
        allowed = (actor is not None and child is not None
                   and access.may_export_child(actor.roles))
        if not allowed or child is None:
            audit.record(session, origin, at=now, actor=username[:80], action="refused",
                         detail=f"asked for child {ref[:40]!r} (child export)")
        else:
            document = _gather(session, child, now, username)
            alert_ids = [a["id"] for a in document["alerts"]]
            audit.record(session, origin, at=now, actor=username, action="child_export",
                         detail=f"child {child.ref}: {len(alert_ids)} alerts exported")
            for aid in alert_ids:
                audit.record(session, origin, at=now, actor=username, action="exported",
                             alert_id=aid, detail=f"child {child.ref}")
            return document
    raise refusal(ref, username)


# -- gathering -------------------------------------------------------------------------------

def _gather(session: Session, child: Child, now: datetime, username: str) -> dict[str, Any]:
    assert child.id is not None
    people = {p.id: p for p in session.exec(select(Person))}
    usernames = {pid: p.username for pid, p in people.items()}
    named: dict[str, set[str]] = {}

    def who(person_id: int | None, part: str) -> str | None:
        name = usernames.get(person_id) if person_id is not None else None
        if name:
            named.setdefault(name, set()).add(part)
        return name

    def user(name: str | None, part: str) -> str | None:
        if name and name != access.SYSTEM:
            named.setdefault(name, set()).add(part)
        return name

    team = session.get(Team, child.team_id)
    alerts = list(session.exec(select(Alert).where(Alert.child_id == child.id)
                               .order_by(col(Alert.id))))
    ids = [a.id for a in alerts if a.id is not None]
    own = set(ids)
    events = _by_alert(session.exec(select(Event).where(col(Event.alert_id).in_(ids))
                                    .order_by(col(Event.alert_id), col(Event.seq))))
    actions = _by_alert(session.exec(select(Action).where(col(Action.alert_id).in_(ids))
                                     .order_by(col(Action.alert_id), col(Action.no))))
    referrals = {r.alert_id: r for r in session.exec(
        select(Referral).where(col(Referral.alert_id).in_(ids)))}
    links = _by_alert(session.exec(select(AlertLink).where(col(AlertLink.alert_id).in_(ids))
                                   .order_by(col(AlertLink.other_id))))
    corrections = _by_alert(session.exec(select(Correction).where(
        col(Correction.alert_id).in_(ids)).order_by(col(Correction.alert_id), col(Correction.id))))
    seqs = {e.id: e.seq for rows in events.values() for e in rows}
    marks = {m.event_id: m.exported_at for m in session.exec(select(CasenoteExport).where(
        col(CasenoteExport.event_id).in_(sorted(k for k in seqs if k is not None))))}

    out_alerts = []
    for a in alerts:
        assert a.id is not None
        referral = referrals.get(a.id)
        out_alerts.append({
            "id": a.id, "kind": a.kind, "status": a.status, "stage": a.stage,
            "summary": a.summary, "detail": a.detail, "impact": a.impact,
            "outcome_wanted": a.outcome_wanted, "outcome": a.outcome, "theme": a.theme,
            "iro": who(a.iro_id, "the child's IRO"),
            "raised_at": a.raised_at, "stage_entered_at": a.stage_entered_at,
            "stage_due": a.stage_due, "formal_since": a.formal_since,
            "resolution_due": a.resolution_due, "closed_at": a.closed_at,
            "on_hold": a.on_hold, "hold_until": a.hold_until,
            "acknowledged_by": who(a.acknowledged_by_id, "acknowledged an alert"),
            "acknowledged_at": a.acknowledged_at,
            "related": [link.other_id for link in links.get(a.id, [])
                        if link.other_id in own],
            "events": [_event(e, own, user) for e in events.get(a.id, [])],
            "actions": [{
                "no": x.no, "text": x.text, "owner": who(x.owner_id, "owns an agreed action"),
                "due": x.due, "stage": x.stage, "agreed_at": x.agreed_at,
                "done_at": x.done_at, "done_by": who(x.done_by_id, "marked an action done"),
            } for x in actions.get(a.id, [])],
            "corrections": [{
                "field": c.field, "event": seqs.get(c.event_id) if c.event_id else None,
                "original": c.original, "original_removed_at": c.original_removed_at,
                "reason": c.reason, "by": user(c.actor, "corrected a text"), "at": c.at,
                "seq": c.seq, "channel": c.channel, "os_user": c.os_user, "client": c.client,
            } for c in corrections.get(a.id, [])],
            "casenote_exports": [
                {"event": e.seq, "exported_at": marks[e.id]}
                for e in events.get(a.id, []) if e.id in marks],
            "cafcass": None if referral is None else {
                "referred_on": referral.referred_on,
                "referred_by": who(referral.referred_by_id, "referred to Cafcass"),
                "reason": referral.reason, "legal_advice": referral.legal_advice,
                "advised_on": referral.advised_on, "response": referral.response,
                "response_note": referral.response_note, "responded_on": referral.responded_on,
            },
        })

    emails = [{
        "alert": m.alert_id, "message": m.message,
        "recipient": user(m.recipient, "received an e-mail"), "to": m.to_addr,
        "subject": m.subject, "text": m.text_body, "status": m.status,
        "queued_at": m.created_at, "sent_at": m.sent_at,
    } for m in session.exec(select(OutboxMessage).where(col(OutboxMessage.alert_id).in_(ids))
                            .order_by(col(OutboxMessage.id)))]

    mentions = re.compile(rf"(?<![\w-]){re.escape(child.ref)}(?![\w-])")
    log_rows = session.exec(select(AccessLog).where(or_(
        col(AccessLog.alert_id).in_(ids),
        col(AccessLog.alert_id).is_(None) & col(AccessLog.detail).contains(child.ref),
    )).order_by(col(AccessLog.id)))
    access_log = [{
        "at": r.at, "actor": user(r.actor, "in the access log"), "action": r.action,
        "alert": r.alert_id, "detail": r.detail, "channel": r.channel,
        "os_user": r.os_user, "client": r.client,
    } for r in log_rows if r.alert_id is not None or mentions.search(r.detail or "")]

    record = {
        "ref": child.ref, "active": child.active,
        "team": {"key": team.key, "name": team.name} if team else None,
        "iro": who(child.iro_id, "the child's IRO"),
        "social_worker": who(child.social_worker_id, "the child's social worker"),
    }
    others = sorted((r for r in session.exec(select(Child.ref)) if r != child.ref),
                    key=len, reverse=True)
    names = {p.username: p.name for p in people.values()}
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "child": child.ref,
        "exported_at": now, "exported_by": username,
        "record": record, "alerts": out_alerts, "emails": emails, "access_log": access_log,
        "third_parties": [
            {"username": name, "name": names.get(name, ""),
             "appears_as": sorted(parts)} for name, parts in sorted(named.items())],
        "notes": NOTES,
    }
    plain: dict[str, Any] = _plain(_without_others(document, others))
    return plain


NOTES = [
    "Third parties are listed under third_parties by username and name: redact them as the"
    " law requires before sending. Free text (summaries, details, responses, reasons,"
    " outcomes, e-mails) may name people too; read it before sending.",
    "Links to another child's alerts are withheld (the event that made one says so, without"
    " the other alert's number); another child's reference anywhere in text reads "
    + OTHER_CHILD + ".",
    "An alert raised on this child in error and moved to the right child is that child's"
    " record and is not included; one moved here from another child is.",
    "The outstanding-alerts digest e-mails list many children and are not included.",
]


def _by_alert(rows: Iterable[Any]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.alert_id, []).append(row)
    return grouped


def _event(e: Event, own: set[int], user: Any) -> dict[str, Any]:
    comment, data = e.comment, e.data
    if e.kind == "linked" and isinstance(data, dict) and data.get("other") not in own:
        comment, data = WITHHELD_LINK, {"other": None}
    return {
        "seq": e.seq, "at": e.at, "actor": user(e.actor, "acted on an alert"), "kind": e.kind,
        "from_stage": e.from_stage, "to_stage": e.to_stage, "comment": comment, "data": data,
        "team": e.team, "iro": user(e.iro, "the child's IRO"),
        "as_cover_for": user(e.as_cover_for, "was covered for"),
        "channel": e.channel, "os_user": e.os_user, "client": e.client,
    }


def _without_others(value: Any, others: list[str]) -> Any:
    """Every other child's reference, wherever it is in text, replaced by OTHER_CHILD."""
    if not others:
        return value
    pattern = re.compile(
        r"(?<![\w-])(?:" + "|".join(re.escape(r) for r in others) + r")(?![\w-])")

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(OTHER_CHILD, item)
        if isinstance(item, dict):
            return {k: clean(v) for k, v in item.items()}
        if isinstance(item, list):
            return [clean(v) for v in item]
        return item

    return clean(value)


def _plain(value: Any) -> Any:
    """JSON-ready: instants and dates in ISO 8601."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
