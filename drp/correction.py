"""Correction (UK GDPR Article 16, rectification): the alert's IRO (or their recorded cover)
or an IRO manager replaces an inaccurate text with a reason. The text is replaced where it
stands (the alert's field; a response's event; the raise's own event, which repeats the
summary), the original is kept in the `correction` record (until retention removes it,
`retention_correction_years` later: drp.retention), and the correction is an event of its own
on the timeline, after the others: no event moves, no date or stage changes, so the figures
do not change either.

The event table is append-only; an event's text changes only inside `purpose(session,
"correction")` (migration 0014's triggers refuse it anywhere else)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import col, select

from . import audit
from .alerts import inputs
from .alerts.inputs import DETAIL_MAX, SUMMARY_MAX, TEXT_MAX
from .alerts.unit import UnitOfWork, known_id
from .errors import BadValue, NotPermitted
from .ladder import access
from .models import Alert, Child, Correction, Event
from .retention import purpose

# What may be corrected: the alert's fields (name -> what it is called, its limit), and a
# response ("response", with the response's number on the timeline).
FIELDS: dict[str, tuple[str, int]] = {
    "summary": ("the summary", SUMMARY_MAX),
    "detail": ("the detail", DETAIL_MAX),
    "impact": ("the impact", TEXT_MAX),
    "outcome_wanted": ("the outcome wanted", TEXT_MAX),
    "response": ("the response", DETAIL_MAX),
}
REASON_MAX = 2000
# The events that repeat the summary as they were written (their comment is the summary).
SUMMARY_EVENTS = ("raised", "good_practice")


def _typed(value: str, what: str, field: str, limit: int) -> str:
    """Typed text by the service layer's rule, a refusal naming its input."""
    try:
        typed = inputs.text(value, what, required=True, limit=limit)
    except BadValue as exc:
        raise BadValue(exc.message, field=field) from None
    assert typed is not None
    return typed


def typed_text(field: str, text: str | None) -> str:
    """The corrected text of `field`, by the service layer's rule (its limit, its words)."""
    what, limit = FIELDS.get(field, ("the text", DETAIL_MAX))
    return _typed(text or "", f"the corrected {what.removeprefix('the ')}", "text", limit)


def typed_reason(reason: str | None) -> str:
    return _typed(reason or "", "the reason", "reason", REASON_MAX)


@dataclass(frozen=True)
class Corrected:
    alert_id: int
    field: str
    seq: int  # the correction's own event
    correction_id: int


def correct(unit: UnitOfWork, alert_id: int, username: str, field: str, text: str,
            reason: str, *, response: int | None = None) -> Corrected:
    """Replace `field` of alert `alert_id` (or, field "response", the text of the response
    numbered `response` on its timeline) with `text`, because `reason`; in the unit's
    transaction."""
    actor = unit.actor(username)
    alert, line = unit._load(alert_id, actor)
    if field not in FIELDS:
        raise BadValue(f"{field!r} cannot be corrected; choose one of {', '.join(FIELDS)}",
                       field="field")
    what = FIELDS[field][0]
    if not access.may_correct(actor, alert, line.child):
        raise NotPermitted(f"{username} may not correct alert {alert_id}:"
                           f" {access.WHO_CORRECTS}")
    new, why = typed_text(field, text), typed_reason(reason)

    target: Event | None = None
    if field == "response":
        if response is None:
            raise BadValue("say which response to correct: its number on the timeline",
                           field="response")
        target = unit.s.exec(select(Event).where(
            Event.alert_id == alert.id, Event.seq == response)).first()
        if target is None or target.kind != "responded":
            raise BadValue(f"alert {alert_id} has no response numbered {response}; give the"
                           " number of a response on its timeline", field="response")
        original = target.comment
    else:
        if response is not None:
            raise BadValue("a response number goes only with the field response",
                           field="response")
        original = getattr(alert, field)
        if field == "summary":  # the raise's event repeats it: corrected with it
            target = unit.s.exec(select(Event).where(
                Event.alert_id == alert.id, col(Event.kind).in_(SUMMARY_EVENTS),
                Event.comment == original).order_by(col(Event.seq))).first()
    if not original:
        raise BadValue(f"alert {alert_id} has no {what.removeprefix('the ')} to correct",
                       field="field")
    if original == new:
        raise BadValue(f"the corrected text is the same as {what} now; change what is wrong",
                       field="text")

    unit._not_before_last_event(alert, actor)
    if field != "response":
        setattr(alert, field, new)
    event = unit._event(alert, actor, "corrected", from_stage=alert.stage,
                        to_stage=alert.stage, comment=why,
                        data={"field": field, "event": target.seq if target else None})
    unit.s.flush()
    if target is not None:
        with purpose(unit.s, "correction"):
            unit.s.execute(update(Event).where(col(Event.id) == target.id).values(comment=new))
        unit.s.expire(target)
    record = Correction(alert_id=known_id(alert.id), event_id=target.id if target else None,
                        field=field, original=original, reason=why, actor=actor.username,
                        at=unit.now, seq=event.seq, **audit.columns(unit.origin))
    unit.s.add(record)
    unit._commit_point(alert)
    return Corrected(alert_id=known_id(alert.id), field=field, seq=event.seq,
                     correction_id=known_id(record.id))


def may_correct_alert(unit: UnitOfWork, alert_id: int, username: str) -> bool:
    """Whether the page offers `username` the correction form for this alert (asked after
    the page has loaded it: the person may see it)."""
    actor = unit.actor(username)
    alert = unit.s.get(Alert, alert_id)
    child = unit.s.get(Child, alert.child_id) if alert is not None else None
    return alert is not None and child is not None and access.may_correct(actor, alert, child)


def field_choice(value: str) -> tuple[str, int | None]:
    """A form's choice of text: a field's name, or `response:N` for response number N."""
    name, _, number = value.partition(":")
    if name == "response" and number.isdigit() and 0 < int(number) < 2**31:
        return name, int(number)
    return name, None
