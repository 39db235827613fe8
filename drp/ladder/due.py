"""When things fall due: the one home of the ladder's clocks.

- **Entering a stage** (`stage_entry`): the stage's due date is its timescale in working days
  from the day it is entered; its response clock starts again.
- **The resolution clock** (`resolution_due_from`): the protocol's `resolution_working_days`
  from the day the alert is raised.
- **A hold** stops both clocks (`after_hold`): on resuming, each moves on by the working days
  held.
- **Overdue** (`is_overdue`): an open alert not on hold whose stage has gone unanswered past
  its due date, or which is past its resolution due date. "Past" is the day after.
- **What the timescale run does** (`reminder_due`, `on_overdue`, `hold_ended`,
  `action_overdue`): the Python rule for one alert, and beside each its SQL twin
  (`*_where`) that the run uses to find candidates in sets. `tests/test_due.py` checks each
  twin row for row against its rule on SQLite and PostgreSQL.

Everything here is pure: `alert` is anything with the alert's columns as attributes (a model
instance, a row, a report's replayed snapshot)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_
from sqlmodel import col

from ..calendar import WorkingCalendar
from ..models import Action, Alert
from .protocol import OverduePolicy, Protocol, Stage


# -- the clocks ---------------------------------------------------------------------------------
def stage_due_from(protocol: Protocol, calendar: WorkingCalendar, stage_key: str,
                   entered: date) -> date:
    """When stage `stage_key` falls due, entered on `entered`."""
    return calendar.add(entered, protocol.stage(stage_key).timescale_working_days)


def stage_entry(protocol: Protocol, calendar: WorkingCalendar, stage_key: str, *,
                now: datetime, today: date) -> dict[str, Any]:
    """The alert's columns on entering a stage (raising, escalating, reopening)."""
    return {"stage_entered_at": now,
            "stage_due": stage_due_from(protocol, calendar, stage_key, today),
            "stage_responded_at": None}


def resolution_due_from(protocol: Protocol, calendar: WorkingCalendar, raised: date) -> date:
    """When the whole dispute should be resolved, raised on `raised`."""
    return calendar.add(raised, protocol.resolution_working_days)


def after_hold(calendar: WorkingCalendar, alert: Any, today: date
               ) -> tuple[date | None, date, int]:
    """(stage due, resolution due, working days held) on resuming today: working days on
    hold do not count, so both clocks move on by the days held."""
    held = max(0, calendar.between(alert.held_since, today))
    stage_due = calendar.add(alert.stage_due, held) if alert.stage_due is not None else None
    return stage_due, calendar.add(alert.resolution_due, held), held


def clocks(alert: Any, stage_due: date | None = None) -> dict[str, Any]:
    """The clocks as they stand after an event, kept in its data so reports can replay an
    alert's state at any instant (due dates move with holds and extensions)."""
    due = stage_due if stage_due is not None else alert.stage_due
    return {"stage_due": due.isoformat() if due else None,
            "resolution_due": alert.resolution_due.isoformat(), "on_hold": alert.on_hold}


# -- overdue --------------------------------------------------------------------------------------
def stage_late(*, open_: bool, on_hold: bool, stage_due: date | None, responded: bool,
               today: date) -> bool:
    """The stage's responsible person has not responded and its due date has passed."""
    return (open_ and not on_hold and stage_due is not None and not responded
            and not on_time(today, stage_due))


def is_overdue(*, open_: bool, on_hold: bool, stage_due: date | None, responded: bool,
               resolution_due: date | None, today: date) -> bool:
    """The one definition of an overdue alert, for lists, pages, the digest and reports."""
    if not open_ or on_hold:
        return False
    late_overall = resolution_due is not None and not on_time(today, resolution_due)
    return late_overall or stage_late(open_=open_, on_hold=on_hold, stage_due=stage_due,
                                      responded=responded, today=today)


def alert_overdue(alert: Any, today: date) -> bool:
    """`is_overdue` for a row or model with the alert's columns."""
    return is_overdue(open_=alert.status == "open", on_hold=alert.on_hold,
                      stage_due=alert.stage_due,
                      responded=alert.stage_responded_at is not None,
                      resolution_due=alert.resolution_due, today=today)


def on_time(day: date, due: date) -> bool:
    """Done (resolved, responded, completed) on or before its due date: late is the day
    after."""
    return day <= due


def action_late(due: date, done: bool, today: date) -> bool:
    """An agreed action not done by its date."""
    return not done and not on_time(today, due)


# -- what the timescale run does, one alert at a time ----------------------------------------------
def awaiting_response(protocol: Protocol, alert: Any) -> bool:
    """Open, not on hold, and its stage's response not yet given: the stage clock runs."""
    return bool(alert.status == "open" and not alert.on_hold and alert.stage_due is not None
                and alert.stage_responded_at is None and alert.stage in protocol.keys)


def reminder_due(protocol: Protocol, calendar: WorkingCalendar, today: date, alert: Any
                 ) -> bool:
    """The reminder before a stage's due date: within the stage's lead, once per due date."""
    if not awaiting_response(protocol, alert) or alert.reminded_for == alert.stage_due:
        return False
    lead = protocol.stage(alert.stage).reminder_lead_working_days
    return bool(today <= alert.stage_due <= calendar.add(today, lead))


def on_overdue(protocol: Protocol, today: date, alert: Any) -> str | None:
    """What the protocol orders when a stage's response is late: "escalated", an "overdue"
    notice (a pause point) or a "cafcass_prompt", each notice once per due date; else None."""
    if not awaiting_response(protocol, alert) or not today > alert.stage_due:
        return None
    when = protocol.stage(alert.stage).when_overdue
    if when is OverduePolicy.escalate:
        return "escalated"
    if alert.overdue_notified_for == alert.stage_due:
        return None
    return "cafcass_prompt" if when is OverduePolicy.consider_cafcass else "overdue"


def hold_ended(alert: Any, today: date) -> bool:
    """A hold with an end date that has come."""
    return bool(alert.status == "open" and alert.on_hold and alert.hold_until is not None
                and alert.hold_until <= today)


def action_overdue_due(alert: Any, action: Any, today: date) -> bool:
    """An agreed action past its date, not yet notified, on an alert that is not on hold."""
    return bool(action.overdue_notified_at is None and action_late(
        action.due, action.done_at is not None, today) and not alert.on_hold
        and alert.status in ("open", "resolved"))


def escalation_reason(stage: Stage, due: date) -> str:
    return f"No response at {stage.title} by {due.isoformat()}, its due date"


# -- the same rules as SQL, for finding candidates in sets ----------------------------------------
def _awaiting_where(protocol: Protocol) -> ColumnElement[bool]:
    return and_(col(Alert.status) == "open", col(Alert.on_hold).is_(False),
                col(Alert.stage_due).is_not(None), col(Alert.stage_responded_at).is_(None),
                col(Alert.stage).in_(protocol.keys))


def on_overdue_where(protocol: Protocol, today: date) -> ColumnElement[bool]:
    """`on_overdue(...) is not None` as a WHERE clause over Alert."""
    escalating = [s.key for s in protocol.stages if s.when_overdue is OverduePolicy.escalate]
    return and_(_awaiting_where(protocol), col(Alert.stage_due) < today,
                or_(col(Alert.stage).in_(escalating),
                    col(Alert.overdue_notified_for).is_(None),
                    col(Alert.overdue_notified_for) != col(Alert.stage_due)))


def reminder_due_where(protocol: Protocol, calendar: WorkingCalendar, today: date
                       ) -> ColumnElement[bool]:
    """`reminder_due(...)` as a WHERE clause over Alert. Each stage has its own lead, so the
    bound is per stage; `furthest` bounds them all, so the index on stage_due serves."""
    per_stage = [and_(col(Alert.stage) == s.key,
                      col(Alert.stage_due) <= calendar.add(today, s.reminder_lead_working_days))
                 for s in protocol.stages]
    furthest = calendar.add(today, max(s.reminder_lead_working_days for s in protocol.stages))
    return and_(_awaiting_where(protocol), col(Alert.stage_due) >= today,
                col(Alert.stage_due) <= furthest, or_(*per_stage) if per_stage else false(),
                or_(col(Alert.reminded_for).is_(None),
                    col(Alert.reminded_for) != col(Alert.stage_due)))


def hold_ended_where(today: date) -> ColumnElement[bool]:
    """`hold_ended(...)` as a WHERE clause over Alert. "on_hold = true" (not "IS true") so the
    planner may use the partial index of held alerts."""
    return and_(col(Alert.status) == "open", col(Alert.on_hold) == True,  # noqa: E712
                col(Alert.hold_until).is_not(None), col(Alert.hold_until) <= today)


def action_overdue_where(today: date) -> ColumnElement[bool]:
    """`action_overdue_due(...)` as a WHERE clause over Action joined to Alert."""
    return and_(col(Action.done_at).is_(None), col(Action.overdue_notified_at).is_(None),
                col(Action.due) < today, col(Alert.status).in_(("open", "resolved")),
                col(Alert.on_hold).is_(False))
