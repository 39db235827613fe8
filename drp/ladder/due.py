"""When things fall due: the one home of the ladder's clocks.

- **Two clocks** (IRO Handbook 2010, para 6.2). The informal stage's due date is the IRO's
  choice when raising (`informal_due`: the stage's timescale by default, at most its
  `max_timescale_working_days`), outside the 20. The formal clock (`formal_start`) starts the
  day the alert first enters a formal stage: its resolution due date is the protocol's
  `resolution_working_days` from then; an informal alert has none.
- **Entering a stage** (`stage_entry`): the stage's due date is its timescale in working days
  from the day it is entered, and a formal stage's never later than the resolution due date;
  its response clock and its acknowledgement start again.
- **A hold** (`hold_until_limit`) needs an end date at most `max_hold_working_days` away and
  stops both clocks (`after_hold`): on resuming, each moves on by the working days held.
- **An extension** (`extension_limit`) moves a due date on by at most
  `max_extension_working_days`, never into the past; the informal date may also be brought
  forward. An extension past the resolution due date moves that too (it is agreed).
- **Overdue** (`is_overdue`): an open alert not on hold whose stage has gone unanswered past
  its due date, or which is past its resolution due date. "Past" is the day after.
- **What the timescale run does** (`reminder_due`, `on_overdue`, `hold_ended`,
  `action_overdue_due`, `action_reminder_due`): the Python rule for one alert (or action),
  and beside each its SQL twin (`*_where`) that the run uses to find candidates in sets.
  `tests/test_due.py` checks each twin row for row against its rule on SQLite and PostgreSQL.

Everything here is pure: `alert` is anything with the alert's columns as attributes (a model
instance, a row, a report's replayed snapshot)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_
from sqlmodel import col

from ..calendar import WorkingCalendar
from ..errors import BadValue
from ..models import Action, Alert
from .protocol import OverduePolicy, Protocol, Stage

# -- the clocks ---------------------------------------------------------------------------------



def stage_due_from(protocol: Protocol, calendar: WorkingCalendar, stage_key: str,
                   entered: date, resolution_due: date | None = None) -> date:
    """When stage `stage_key` falls due, entered on `entered`: its timescale, and a formal
    stage never after the resolution due date (entered after that date: due the day it is
    entered, or the next working day when entered on a weekend or holiday)."""
    due = calendar.add(entered, protocol.stage(stage_key).timescale_working_days)
    if resolution_due is not None and protocol.is_formal(stage_key):
        due = min(due, max(resolution_due, calendar.next_working_day(entered)))
    return due


def latest_informal_due(protocol: Protocol, calendar: WorkingCalendar, today: date) -> date:
    """The latest informal due date the IRO may give when raising today."""
    return calendar.add(today, protocol.stages[0].max_working_days)


def latest_hold_until(protocol: Protocol, calendar: WorkingCalendar, today: date) -> date:
    """The latest end date a hold begun today may have."""
    return calendar.add(today, protocol.max_hold_working_days)


def latest_extension(protocol: Protocol, calendar: WorkingCalendar, current: date) -> date:
    """The latest date one extension may move a due date of `current` to."""
    return calendar.add(current, protocol.max_extension_working_days)


def informal_due(protocol: Protocol, calendar: WorkingCalendar, today: date,
                 chosen: date | None) -> date:
    """The informal stage's due date: the IRO's choice, or the stage's default timescale.
    Refuses (BadValue) a date not after today, not a working day, or beyond the maximum."""
    stage = protocol.stages[0]
    if chosen is None:
        return calendar.add(today, stage.timescale_working_days)
    latest = latest_informal_due(protocol, calendar, today)
    if chosen <= today:
        raise BadValue(f"the informal due date {chosen.isoformat()} is not after today"
                       f" ({today.isoformat()}); give a later date", field="due")
    if chosen > latest:
        raise BadValue(f"the informal due date {chosen.isoformat()} is more than"
                       f" {stage.max_working_days} working days away (the protocol's most);"
                       f" give a date up to {latest.isoformat()}", field="due")
    if not calendar.is_working_day(chosen):
        raise BadValue(f"the informal due date {chosen.isoformat()} is not a working day;"
                       f" give a working day such as"
                       f" {calendar.next_working_day(chosen).isoformat()}", field="due")
    return chosen


def formal_start(protocol: Protocol, calendar: WorkingCalendar, alert: Any, stage_key: str,
                 today: date) -> dict[str, Any]:
    """The formal clock's columns when the alert enters `stage_key`: set the first time it
    enters a formal stage, unchanged after (nothing while informal)."""
    if alert.formal_since is not None or not protocol.is_formal(stage_key):
        return {}
    return {"formal_since": today,
            "resolution_due": calendar.add(today, protocol.resolution_working_days)}


def stage_entry(protocol: Protocol, calendar: WorkingCalendar, alert: Any, stage_key: str, *,
                now: datetime, today: date, informal: date | None = None) -> dict[str, Any]:
    """The alert's columns on entering a stage (raising, escalating, reopening): the formal
    clock if it starts now, the stage's due date (`informal`: the IRO's date for the
    informal stage), a fresh response clock and acknowledgement."""
    values = formal_start(protocol, calendar, alert, stage_key, today)
    resolution = values.get("resolution_due", alert.resolution_due)
    if informal is not None and not protocol.is_formal(stage_key):
        stage_due = informal
    else:
        stage_due = stage_due_from(protocol, calendar, stage_key, today, resolution)
    return {**values, "stage_entered_at": now, "stage_due": stage_due,
            "stage_responded_at": None, "acknowledged_by_id": None, "acknowledged_at": None}


def resolution_due_from(protocol: Protocol, calendar: WorkingCalendar, formal_since: date
                        ) -> date:
    """When the formal process should be over, begun on `formal_since`."""
    return calendar.add(formal_since, protocol.resolution_working_days)


def hold_until_limit(protocol: Protocol, calendar: WorkingCalendar, today: date,
                     until: date | None) -> date:
    """A hold's end date: required, after today, at most `max_hold_working_days` away."""
    if until is None:
        raise BadValue("a hold needs an end date (--until YYYY-MM-DD): the day to look at it"
                       " again, such as the day after a court hearing", field="until")
    latest = latest_hold_until(protocol, calendar, today)
    if until <= today:
        raise BadValue(f"the hold would end {until.isoformat()}, which is not after today"
                       f" ({today.isoformat()}); give a later date", field="until")
    if until > latest:
        raise BadValue(f"the hold would end {until.isoformat()}, more than"
                       f" {protocol.max_hold_working_days} working days away (the protocol's"
                       f" most); give a date up to {latest.isoformat()}, and hold again then"
                       " if still needed", field="until")
    return until


def extension_limit(protocol: Protocol, calendar: WorkingCalendar, alert: Any, today: date,
                    until: date) -> None:
    """Refuse (BadValue) an extension of the stage's due date to `until`: never into the
    past, at most `max_extension_working_days` after the current due date; only the informal
    date may be brought forward."""
    current = alert.stage_due
    if current is not None:
        latest = latest_extension(protocol, calendar, current)
        if latest < today:  # no date is both allowed and not past: say so, not both halves
            raise BadValue(
                f"the due date {current.isoformat()} passed more than"
                f" {protocol.max_extension_working_days} working days ago, the most an"
                " extension may move it, so it cannot be extended; escalate, resolve or hold"
                " the alert instead", field="until")
    if until < today:
        raise BadValue(f"the new due date {until.isoformat()} is in the past; give a date"
                       f" from {today.isoformat()}", field="until")
    if current is not None:
        if until > latest:
            raise BadValue(
                f"the new due date {until.isoformat()} is more than"
                f" {protocol.max_extension_working_days} working days after the current one"
                f" ({current.isoformat()}), the protocol's most; give a date up to"
                f" {latest.isoformat()}", field="until")
        if until == current or (until < current and protocol.is_formal(alert.stage)):
            raise BadValue(
                f"the new due date {until.isoformat()} is not after the current one"
                f" ({current.isoformat()}); an extension must be later (only the informal"
                " stage's date may be brought forward)", field="until")


def after_extension(alert: Any, until: date) -> date | None:
    """The resolution due date after the stage is extended to `until`: an agreed extension
    past it moves it too."""
    current: date | None = alert.resolution_due
    if current is not None and until > current:
        return until
    return current


def after_hold(calendar: WorkingCalendar, alert: Any, today: date
               ) -> tuple[date | None, date | None, int]:
    """(stage due, resolution due, working days held) on resuming today: working days on
    hold do not count, so both clocks move on by the days held."""
    held = max(0, calendar.between(alert.held_since, today))
    stage_due = calendar.add(alert.stage_due, held) if alert.stage_due is not None else None
    resolution = (calendar.add(alert.resolution_due, held)
                  if alert.resolution_due is not None else None)
    return stage_due, resolution, held


def after_closure(calendar_before: WorkingCalendar, calendar: WorkingCalendar, alert: Any,
                  day: date, tz: tzinfo | None = None) -> dict[str, date]:
    """The due dates a new closure day moves: each open due date the day falls within (after
    the clock started, up to the date) moves on by the working day lost. A stage already
    answered has no open due date; an acknowledgement reminder sent for the old date is not
    sent again for the new one. `tz`: the council's, whose day the stage was entered on."""
    if not calendar_before.is_working_day(day) or calendar.is_working_day(day):
        return {}
    entered = (alert.stage_entered_at.astimezone(tz) if tz else alert.stage_entered_at).date()
    moved: dict[str, date] = {}
    if (alert.stage_due is not None and alert.stage_responded_at is None
            and entered < day <= alert.stage_due):
        moved["stage_due"] = calendar.add(alert.stage_due, 1)
        if alert.ack_reminded_for == alert.stage_due:
            moved["ack_reminded_for"] = moved["stage_due"]
    if (alert.resolution_due is not None and alert.formal_since is not None
            and alert.formal_since < day <= alert.resolution_due):
        moved["resolution_due"] = calendar.add(alert.resolution_due, 1)
    return moved


def clocks(alert: Any, stage_due: date | None = None) -> dict[str, Any]:
    """The clocks as they stand after an event, kept in its data so reports can replay an
    alert's state at any instant (due dates move with holds and extensions)."""
    due = stage_due if stage_due is not None else alert.stage_due
    resolution = alert.resolution_due
    return {"stage_due": due.isoformat() if due else None,
            "resolution_due": resolution.isoformat() if resolution else None,
            "on_hold": alert.on_hold}


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


def ack_reminder_after(calendar: WorkingCalendar, now: datetime) -> datetime:
    """A stage entered before this instant and still unacknowledged has gone a working day
    without it: the end (local midnight) of the working day before `now`'s day. So the
    reminder goes with the first run of the next working day (entered Monday at any time:
    Tuesday morning; on Friday or at the weekend: Monday or Tuesday morning), and later runs
    that day find nothing new, like the run's other reminders."""
    previous = calendar.add(now.date(), -1)
    return datetime.combine(previous + timedelta(days=1), time(0), tzinfo=now.tzinfo)


def ack_reminder_due(protocol: Protocol, alert: Any, before: datetime) -> bool:
    """The reminder to acknowledge: awaiting a response, not acknowledged, the stage entered
    before `before` (`ack_reminder_after`), once per stage due date."""
    return bool(awaiting_response(protocol, alert) and alert.acknowledged_at is None
                and alert.stage_entered_at < before
                and alert.ack_reminded_for != alert.stage_due)


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
        action.due, action.done_at is not None, today) and action_tracked(alert))


# An agreed action's owner is reminded this many working days before its due date (the
# stages' own leads are the protocol's `reminder_lead_working_days`).
ACTION_REMINDER_LEAD_WORKING_DAYS = 2


def action_tracked(alert: Any) -> bool:
    """An alert whose agreed actions are followed up (reminded before, told when overdue):
    open or resolved (tracked to completion), not on hold; a withdrawn alert's are not."""
    return bool(alert.status in ("open", "resolved") and not alert.on_hold)


def action_reminder_due(calendar: WorkingCalendar, today: date, alert: Any, action: Any,
                        day_start: datetime) -> bool:
    """The reminder before an agreed action's due date: not done, due within the lead
    (`ACTION_REMINDER_LEAD_WORKING_DAYS` working days, today included), once per action.
    `day_start`: the instant today began (the council's midnight); an action agreed since
    then is not reminded today, its owner has just been told it is theirs."""
    lead = calendar.add(today, ACTION_REMINDER_LEAD_WORKING_DAYS)
    return bool(action.done_at is None and action.reminded_at is None
                and today <= action.due <= lead and action.agreed_at < day_start
                and action_tracked(alert))


def escalation_reason(stage: Stage, due: date) -> str:
    return f"No response at {stage.title} by {due.isoformat()}, its due date"


# -- the same rules as SQL, for finding candidates in sets ----------------------------------------
def awaiting_response_where(protocol: Protocol) -> ColumnElement[bool]:
    """`awaiting_response` as a WHERE clause over Alert."""
    return and_(col(Alert.status) == "open", col(Alert.on_hold).is_(False),
                col(Alert.stage_due).is_not(None), col(Alert.stage_responded_at).is_(None),
                col(Alert.stage).in_(protocol.keys))


def on_overdue_where(protocol: Protocol, today: date) -> ColumnElement[bool]:
    """`on_overdue(...) is not None` as a WHERE clause over Alert."""
    escalating = [s.key for s in protocol.stages if s.when_overdue is OverduePolicy.escalate]
    return and_(awaiting_response_where(protocol), col(Alert.stage_due) < today,
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
    return and_(awaiting_response_where(protocol), col(Alert.stage_due) >= today,
                col(Alert.stage_due) <= furthest, or_(*per_stage) if per_stage else false(),
                or_(col(Alert.reminded_for).is_(None),
                    col(Alert.reminded_for) != col(Alert.stage_due)))


def ack_reminder_where(protocol: Protocol, before: datetime) -> ColumnElement[bool]:
    """`ack_reminder_due(...)` as a WHERE clause over Alert."""
    return and_(awaiting_response_where(protocol), col(Alert.acknowledged_at).is_(None),
                col(Alert.stage_entered_at) < before,
                or_(col(Alert.ack_reminded_for).is_(None),
                    col(Alert.ack_reminded_for) != col(Alert.stage_due)))


def hold_ended_where(today: date) -> ColumnElement[bool]:
    """`hold_ended(...)` as a WHERE clause over Alert. "on_hold = true" (not "IS true") so the
    planner may use the partial index of held alerts."""
    return and_(col(Alert.status) == "open", col(Alert.on_hold) == True,  # noqa: E712
                col(Alert.hold_until).is_not(None), col(Alert.hold_until) <= today)


def action_tracked_where() -> ColumnElement[bool]:
    return and_(col(Alert.status).in_(("open", "resolved")), col(Alert.on_hold).is_(False))


def action_overdue_where(today: date) -> ColumnElement[bool]:
    """`action_overdue_due(...)` as a WHERE clause over Action joined to Alert."""
    return and_(col(Action.done_at).is_(None), col(Action.overdue_notified_at).is_(None),
                col(Action.due) < today, action_tracked_where())


def action_reminder_where(calendar: WorkingCalendar, today: date, day_start: datetime
                          ) -> ColumnElement[bool]:
    """`action_reminder_due(...)` as a WHERE clause over Action joined to Alert."""
    return and_(col(Action.done_at).is_(None), col(Action.reminded_at).is_(None),
                col(Action.due) >= today,
                col(Action.due) <= calendar.add(today, ACTION_REMINDER_LEAD_WORKING_DAYS),
                col(Action.agreed_at) < day_start, action_tracked_where())
