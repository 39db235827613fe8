"""Council closure days and short-notice bank holidays: added by an administrator, counted
as non-working days from then on, and the open due dates they fall within recomputed.

2022-09-19 (the state funeral) was announced nine days ahead: a stage due on or after it,
entered before it, lost a working day, so its due date (and the resolution due date, where
the day falls within the formal clock) moves on by one working day. The rule is
`drp.ladder.due.after_closure`; this records the day, and in the same transaction writes
each changed alert, an event saying why, and e-mails to the people the dates concern."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, or_, select

from ..calendar import WorkingCalendar
from ..errors import BadValue, Conflict, NotPermitted
from ..ladder import access, due
from ..ladder.access import SYSTEM_ACTOR, Actor
from ..models import Alert, Closure
from . import inputs
from .unit import UnitOfWork, known_id

REASON_MAX = 500  # Closure.reason
NAMES = {"stage_due": "the stage's due date", "resolution_due": "the resolution due date"}


def closure_days(session: Session) -> dict[date, str]:
    """Every recorded closure day with its reason (one small query)."""
    return {c.day: c.reason for c in session.exec(select(Closure).order_by(col(Closure.day)))}


def with_closures(session: Session, calendar: WorkingCalendar) -> WorkingCalendar:
    """`calendar` with the council's recorded closure days added (itself when there are none
    it lacks)."""
    days = closure_days(session)
    return calendar if set(days) <= calendar.extra else calendar.with_days(days)


@dataclass
class Moved:
    """One alert whose due dates a closure moved: column -> (old, new)."""

    alert_id: int
    dates: dict[str, tuple[date, date]]


@dataclass
class ClosureResult:
    day: date
    reason: str
    created_by: str
    moved: list[Moved] = field(default_factory=list)


@dataclass(frozen=True)
class ClosureView:
    day: date
    reason: str
    created_by: str
    created_at: datetime

    def public(self) -> dict[str, str]:
        return {"day": self.day.isoformat(), "reason": self.reason,
                "created_by": self.created_by, "created_at": self.created_at.isoformat()}


class Closures(UnitOfWork):
    def close_day(self, username: str | None, day: date, reason: str) -> ClosureResult:
        """Record a closure day (an administrator; `username` None or `system`: the command
        line, which acts as one, as for `drp org load` and `drp cover`) and move the open due
        dates it falls within.
        Refused, with nothing written: a day in the past, outside the dates drp accepts,
        already closed, or already not a working day."""
        actor = self._administrator(username)
        text = inputs.text(reason, "the reason", required=True, limit=REASON_MAX) or ""
        inputs.day(day, "the closure day", field="day")
        if day < self.today:
            raise BadValue(f"the closure day {day.isoformat()} is in the past (today is"
                           f" {self.today.isoformat()}); give today or a later day",
                           field="day")
        existing = self._existing(day)
        if existing is not None:
            raise BadValue(f"{day.isoformat()} is already a closure day ({existing.reason},"
                           f" recorded by {existing.created_by}); nothing to add", field="day")
        before = with_closures(self.s, self.cal)
        if not before.is_working_day(day):
            why = before.holiday_name(day) or day.strftime("%A")
            raise BadValue(f"{day.isoformat()} is already not a working day ({why}); only a"
                           " working day can be closed", field="day")
        after = before.with_days({day: text})
        created_by = actor.username if actor else access.SYSTEM
        result = ClosureResult(day, text, created_by)
        try:
            self.s.add(Closure(day=day, reason=text, created_by=created_by,
                               created_at=self.now))
            self.s.flush()
            self.cal = after  # a non-working day from now on, for the rest of this unit too
            for alert in self._within(day):
                moved = self._recompute(alert, before, after, day, text, actor)
                if moved is not None:
                    result.moved.append(moved)
        except IntegrityError:
            self.s.rollback()
            raise BadValue(f"{day.isoformat()} was closed by someone else just now; see"
                           " drp calendar closures", field="day") from None
        except StaleDataError:
            self.s.rollback()
            raise Conflict(f"an alert changed while {day.isoformat()} was being closed;"
                           " nothing was saved: close the day again") from None
        return result

    def closures(self) -> list[ClosureView]:
        """Every closure day, oldest first (no child's record: anyone may read them)."""
        return [ClosureView(c.day, c.reason, c.created_by, c.created_at)
                for c in self.s.exec(select(Closure).order_by(col(Closure.day)))]

    # -- steps --------------------------------------------------------------------------------
    def _administrator(self, username: str | None) -> Actor | None:
        if username is None or username == access.SYSTEM:
            return None
        actor = self.actor(username)
        if not access.may_administer(actor.roles):
            raise NotPermitted(f"{username} may not close a day: only an administrator may"
                               " (the admin role in the organisation file)")
        return actor

    def _existing(self, day: date) -> Closure | None:
        return self.s.get(Closure, day)

    def _within(self, day: date) -> list[Alert]:
        """Open alerts with a due date on or after the day (the rule decides each), locked
        against a concurrent change on PostgreSQL."""
        query = select(Alert).where(
            Alert.status == "open",
            or_(col(Alert.stage_due) >= day, col(Alert.resolution_due) >= day),
        ).order_by(col(Alert.id)).with_for_update()
        return list(self.s.exec(query))

    def _recompute(self, alert: Alert, before: WorkingCalendar, after: WorkingCalendar,
                   day: date, reason: str, actor: Actor | None) -> Moved | None:
        moved = due.after_closure(before, after, alert, day, self.tz)
        if not moved:
            return None
        alert_id = known_id(alert.id)
        _, line = self._load(alert_id, SYSTEM_ACTOR)  # an administrator sees no child's record
        self._not_before_last_event(alert)
        dates = {k: (getattr(alert, k), moved[k]) for k in NAMES if k in moved}
        previous_due, previous_resolution = alert.stage_due, alert.resolution_due
        for column, value in moved.items():
            setattr(alert, column, value)
        words = " and ".join(f"{NAMES[k]} moves from {old.isoformat()} to {new.isoformat()}"
                             for k, (old, new) in dates.items())
        event = self._event(
            alert, actor or SYSTEM_ACTOR, "due_recomputed", from_stage=alert.stage,
            to_stage=alert.stage, line=line,
            comment=f"{day.isoformat()} is a closure day ({reason}): {words}",
            data={"closure_day": day.isoformat(), "reason": reason,
                  "old": {k: old.isoformat() for k, (old, _) in dates.items()},
                  "new": {k: new.isoformat() for k, (_, new) in dates.items()}})
        self._notice(alert, line, event, previous_due=previous_due,
                     previous_resolution_due=previous_resolution, closure_day=day,
                     closure_reason=reason)
        self._commit_point(alert)
        return Moved(alert_id, dates)
