"""What the flows do (actor `system`), one alert at a time: each re-checks that it is still
due by the rules in `drp.ladder.due`, so a rerun never acts twice. The timescale run's set-based
writer (drp/batch.py) applies the same rules to many alerts at once and falls back to these."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import select

from ..ladder import due
from ..ladder.access import SYSTEM_ACTOR
from ..ladder.machine import CLOSED as RECORDED
from ..ladder.protocol import TERMINAL
from ..models import Action, Event, Person
from ..notify import Notice
from .commands import Commands
from .unit import reports_conflicts

if TYPE_CHECKING:
    from ..classifier import Suggestion

CLOSED = (*TERMINAL, RECORDED)  # nobody acts on such an alert's theme any more


class SystemActions(Commands):
    @reports_conflicts
    def suggest_theme(self, alert_id: int, suggestion: Suggestion) -> bool | None:
        """The themes flow: give an alert with no theme the classifier's suggestion, once.
        An alert with an earlier suggestion (sure or unsure) waits for its IRO, its text never
        changes; a closed one (resolved, withdrawn, a good-practice record) is left alone.
        Returns whether the suggestion was sure, None when nothing was written."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        if (alert.theme is not None or alert.theme_confirmed or alert.status in CLOSED
                or self.s.exec(select(Event.id).where(
                    Event.alert_id == alert.id, Event.kind == "theme_suggested")).first()):
            return None
        self._fire(alert, SYSTEM_ACTOR, line, "set_theme")
        alert.theme_suggested = suggestion.theme
        alert.theme_confidence = round(suggestion.confidence, 3)
        if not suggestion.unsure:
            alert.theme = suggestion.theme
        self._event(alert, SYSTEM_ACTOR, "theme_suggested", from_stage=alert.stage,
                    to_stage=alert.stage, comment=suggestion.theme,
                    data={"suggested": suggestion.theme,
                          "confidence": round(suggestion.confidence, 3),
                          "unsure": suggestion.unsure, "because": list(suggestion.because)})
        self._commit_point(alert)
        return not suggestion.unsure

    @reports_conflicts
    def remind(self, alert_id: int) -> bool:
        """The reminder before a stage's due date, once per due date."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        due_date = alert.stage_due
        if due_date is None or not due.reminder_due(self.protocol, self.cal, self.today, alert):
            return False
        self._fire(alert, SYSTEM_ACTOR, line, "remind")
        alert.reminded_for = due_date
        event = self._event(alert, SYSTEM_ACTOR, "reminder", from_stage=alert.stage,
                            to_stage=alert.stage, data={"due": due_date.isoformat()})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return True

    @property
    def ack_before(self) -> datetime:
        """Stages entered before this instant have gone a working day (`due.ack_reminder_after`)."""
        return due.ack_reminder_after(self.cal, self.now.astimezone(self.tz))

    @reports_conflicts
    def remind_acknowledge(self, alert_id: int) -> bool:
        """The reminder to the person responsible (or their cover) to acknowledge a stage
        that has gone a working day without it, once per stage due date."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        due_date = alert.stage_due
        if due_date is None or not due.ack_reminder_due(self.protocol, alert, self.ack_before):
            return False
        self._fire(alert, SYSTEM_ACTOR, line, "remind")
        alert.ack_reminded_for = due_date
        event = self._event(alert, SYSTEM_ACTOR, "ack_reminder", from_stage=alert.stage,
                            to_stage=alert.stage, data={"due": due_date.isoformat()})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return True

    @reports_conflicts
    def act_on_overdue(self, alert_id: int) -> str | None:
        """What the protocol orders when a stage's response is late: escalate, remind the IRO
        (a pause point) or prompt the IRO to consider Cafcass. Returns what was done."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        what = due.on_overdue(self.protocol, self.today, alert)
        due_date = alert.stage_due
        if what is None or due_date is None:
            return None
        if what == "escalated":
            self.escalate(alert_id, SYSTEM_ACTOR.username,
                          due.escalation_reason(self.protocol.stage(alert.stage), due_date))
            return what
        self._fire(alert, SYSTEM_ACTOR, line, "remind")
        alert.overdue_notified_for = due_date
        event = self._event(alert, SYSTEM_ACTOR, what, from_stage=alert.stage,
                            to_stage=alert.stage, data={"due": due_date.isoformat()})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return what

    @reports_conflicts
    def end_hold(self, alert_id: int) -> bool:
        """Resume an alert whose hold has reached its end date."""
        alert, _line = self._load(alert_id, SYSTEM_ACTOR)
        if not due.hold_ended(alert, self.today):
            return False
        assert alert.hold_until is not None
        self.resume(alert_id, SYSTEM_ACTOR.username,
                    f"The hold ended on {alert.hold_until.isoformat()}")
        return True

    @reports_conflicts
    def action_overdue(self, alert_id: int, action_no: int) -> bool:
        """Tell the owner and the IRO, once, that an agreed action is past its date."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        action = self.s.exec(
            select(Action).where(Action.alert_id == alert.id, Action.no == action_no)
        ).first() if 0 < action_no < 2**31 else None
        if action is None or not due.action_overdue_due(alert, action, self.today):
            return False
        self._fire(alert, SYSTEM_ACTOR, line, "remind")
        action.overdue_notified_at = self.now
        self.s.add(action)
        owner = self.s.get(Person, action.owner_id)
        event = self._event(alert, SYSTEM_ACTOR, "action_overdue", from_stage=alert.stage,
                            to_stage=alert.stage, comment=None,
                            data={"no": action_no, "due": action.due.isoformat()})
        self._notices.append((alert, line, Notice(event, None, {
            "action_no": action_no, "action_due": action.due,
            "action_owner": owner.name if owner else ""}, action)))
        self._commit_point(alert)
        return True
