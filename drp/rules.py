"""The timescale rules for one alert as of a day, and the pieces of what the run writes: used
by the service layer's system methods (AlertService.remind, .act_on_overdue) and by the run's
set-based writer (batch.py) alike, so the two cannot drift apart. `alert` is anything with the
alert's columns as attributes: a model instance or a row."""

from __future__ import annotations

from datetime import date
from typing import Any

from .access import Line
from .calendar import WorkingCalendar
from .errors import InvalidTransition
from .protocol import Protocol, Stage


def clocks(alert: Any, stage_due: date | None = None) -> dict[str, Any]:
    """The clocks as they stand after an event, kept in its data so reports can replay an
    alert's state at any instant (due dates move with holds and extensions)."""
    due = stage_due if stage_due is not None else alert.stage_due
    return {"stage_due": due.isoformat() if due else None,
            "resolution_due": alert.resolution_due.isoformat(), "on_hold": alert.on_hold}


def reminder_due(protocol: Protocol, calendar: WorkingCalendar, today: date, alert: Any
                 ) -> bool:
    """The reminder before a stage's due date: within the stage's lead, once per due date."""
    if (alert.status != "open" or alert.on_hold or alert.stage_due is None
            or alert.stage_responded_at is not None or alert.reminded_for == alert.stage_due
            or alert.stage not in protocol.keys):
        return False
    lead = protocol.stage(alert.stage).reminder_lead_working_days
    return bool(today <= alert.stage_due <= calendar.add(today, lead))


def on_overdue(protocol: Protocol, today: date, alert: Any) -> str | None:
    """What the protocol orders when a stage's response is late: "escalated", an "overdue"
    notice (a pause point) or a "cafcass_prompt", each notice once per due date; else None."""
    if not (alert.status == "open" and not alert.on_hold and alert.stage_due is not None
            and alert.stage_responded_at is None and today > alert.stage_due
            and alert.stage in protocol.keys):
        return None
    when = protocol.stage(alert.stage).when_overdue
    if when == "escalate":
        return "escalated"
    if alert.overdue_notified_for == alert.stage_due:
        return None
    return "cafcass_prompt" if when == "consider_cafcass" else "overdue"


def escalation_reason(stage: Stage, due: date) -> str:
    return f"No response at {stage.title} by {due.isoformat()}, its due date"


def require_responsible(protocol: Protocol, stage_key: str, line: Line) -> None:
    """Refuse to move an alert to a stage whose responsible post nobody holds."""
    responsible = protocol.stage(stage_key).responsible
    if line.holder(responsible) is None:
        role = responsible.value.replace("_", " ")
        raise InvalidTransition(
            f"nobody holds the post of {role} for child {line.child.ref} (team"
            f" {line.team.key}, service {line.service.key}), who is responsible at"
            f" {stage_key}; name one in the organisation file and run `drp org load`"
        )
