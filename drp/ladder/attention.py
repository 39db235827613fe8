"""The due index: the first day on which an alert next needs the timescale run.

The run acts on an alert (or one of its agreed actions) when one of the rules in
`drp.ladder.due` holds on the run's day: a hold ended (`hold_ended`), a stage overdue
(`on_overdue`), a reminder before the stage's due date (`reminder_due`), a reminder to
acknowledge (`ack_reminder_due`), an agreed action overdue or due its reminder
(`action_overdue_due`, `action_reminder_due`). Each holds from a day that the alert's own
columns fix, given the protocol and the calendar; `next_attention` is the earliest of them, kept
in `Alert.attention_on` by every writer (drp/due_index.py) so that the run reads only alerts
whose day has come, and a run with nothing due is one index probe.

Every rule is a matter of days (the run acts once a working day, "today" in the council's
zone; the acknowledgement's instant is the end of a working day), so the next instant is the
start of a day and the index holds that day.

The day is never later than the first day a rule holds (the run would miss it); it may be
earlier only where a window has closed unseen (a reminder whose days passed without a run):
`from_day`, the run's day, drops windows that closed before it. When anything cannot be
computed (a date beyond the calendar, a row no code path expects), EARLIEST: the run looks at
the alert and its rules decide, as before the index."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..calendar import WorkingCalendar
from . import due
from .protocol import OverduePolicy, Protocol

EARLIEST = date(1970, 1, 1)  # "look at it now": any run's day is later
DAY = timedelta(days=1)
_SCAN = 400  # days searched for a window's first day (a lead of working days is far less)


def next_attention(protocol: Protocol, calendar: WorkingCalendar, tz: ZoneInfo, alert: Any,
                   actions: Iterable[Any] = (), *, from_day: date | None = None
                   ) -> date | None:
    """The first day on which the timescale run has something to do for `alert` (anything
    with the alert's columns) and its agreed `actions` (those not done; others are ignored),
    or None if nothing will fall due until someone changes the alert. `from_day`: the run's
    day; a reminder's window that closed before it is over."""
    try:
        days = [_alert_day(protocol, calendar, tz, alert, from_day)]
        if due.action_tracked(alert):
            days += [_action_day(calendar, tz, a, from_day) for a in actions]
    except Exception:  # a row the rules cannot date: the run looks at it
        return EARLIEST
    return min((d for d in days if d is not None), default=None)


def window_start(calendar: WorkingCalendar, due_date: date, lead: int) -> date:
    """The first day `t` with `t <= due_date <= calendar.add(t, lead)`: a reminder's window
    runs from it to the due date (`add` never goes backwards as `t` grows)."""
    start = due_date
    for _ in range(_SCAN):
        earlier = start - DAY
        if calendar.add(earlier, lead) < due_date:
            return start
        start = earlier
    return start


def ack_day(calendar: WorkingCalendar, tz: ZoneInfo, entered: datetime) -> date:
    """The first day whose run finds a stage entered at `entered` unacknowledged for a
    working day (`due.ack_reminder_after` of that day's midnight is after `entered`)."""
    day = entered.astimezone(tz).date()
    for _ in range(_SCAN):
        day += DAY
        if due.ack_reminder_after(calendar, datetime.combine(day, time(0), tzinfo=tz)) > entered:
            return day
    return day


def _alert_day(protocol: Protocol, calendar: WorkingCalendar, tz: ZoneInfo, alert: Any,
               from_day: date | None) -> date | None:
    if alert.status != "open":
        return None
    if alert.on_hold:  # `hold_ended`; nothing else runs while held
        return alert.hold_until  # type: ignore[no-any-return]
    if not due.awaiting_response(protocol, alert):
        return None
    stage_due: date = alert.stage_due
    stage = protocol.stage(alert.stage)
    days: list[date] = []
    if (stage.when_overdue is OverduePolicy.escalate
            or alert.overdue_notified_for != stage_due):  # `on_overdue`
        days.append(stage_due + DAY)
    if alert.reminded_for != stage_due and (from_day is None or from_day <= stage_due):
        days.append(window_start(calendar, stage_due, stage.reminder_lead_working_days))
    if alert.acknowledged_at is None and alert.ack_reminded_for != stage_due:
        days.append(ack_day(calendar, tz, alert.stage_entered_at))
    return min(days, default=None)


def _action_day(calendar: WorkingCalendar, tz: ZoneInfo, action: Any,
                from_day: date | None) -> date | None:
    if action.done_at is not None:
        return None
    days: list[date] = []
    if action.overdue_notified_at is None:  # `action_overdue_due`
        days.append(action.due + DAY)
    if action.reminded_at is None and (from_day is None or from_day <= action.due):
        # `action_reminder_due`: within the lead, and not on the day it was agreed.
        start = max(window_start(calendar, action.due, due.ACTION_REMINDER_LEAD_WORKING_DAYS),
                    action.agreed_at.astimezone(tz).date() + DAY)
        if start <= action.due:
            days.append(start)
    return min(days, default=None)
