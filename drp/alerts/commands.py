"""What people do to an alert: raise, respond, escalate, resolve, withdraw, refer, hold,
resume, extend, reopen, mark an action done, confirm a theme. Each is one unit of work: the
state change, its events and its e-mails are written together or not at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from ..errors import BadValue, InvalidTransition, NotFound, NotPermitted
from ..ladder import access, due
from ..ladder.access import Line
from ..ladder.machine import NEW, fire
from ..models import Action, Alert, Person, Referral, new_row
from ..notify import Notice
from . import inputs, steps
from .inputs import DETAIL_MAX, SUMMARY_MAX, TEXT_MAX, ActionIn
from .unit import UnitOfWork, known_id, reports_conflicts

# Cafcass's responses to a referral, and how people read them.
CAFCASS_RESPONSES = {
    "accepted": "accepted the referral",
    "declined": "declined the referral",
    "proceedings": "issued proceedings",
    "closed": "closed its involvement",
}


class Commands(UnitOfWork):
    def raise_alert(
        self, username: str, child_ref: str, summary: str, *, detail: str | None = None,
        impact: str | None = None, outcome_wanted: str | None = None,
        theme: str | None = None, stage: str | None = None, due_on: date | None = None,
        separate: bool = False,
    ) -> Alert:
        """Raise a concern. `due_on`: the informal stage's due date, the IRO's choice (the
        protocol's default when None). A child with an open concern already: refused unless
        `separate` confirms this is a separate matter."""
        # The child first: its read holds the organisation's token for the person's (unit.py);
        # its line after them (today's cover periods come with the person when they are read).
        child, posts, open_ids = self._child_and_posts(child_ref)
        actor = self.actor(username)
        line = self._line_of_posts(child, posts)
        if (child is None or line is None or not child.active
                or not access.can_see_child(actor, child)):
            self.refuse(actor, f"child {child_ref[:40]!r}")
            raise NotFound(
                f"there is no child {child_ref!r} that {username} can see; check the reference"
            )
        if stage is not None and stage not in self.protocol.keys:
            raise BadValue(f"there is no stage {stage!r}; the stages are"
                           f" {', '.join(self.protocol.keys)}", field="stage")
        summary_t = inputs.text(summary, "the summary", required=True, limit=SUMMARY_MAX)
        if due_on is not None:
            inputs.day(due_on, "the informal due date", field="due")
            if self.protocol.is_formal(stage or self.protocol.keys[0]):
                raise BadValue("--due sets the informal stage's date; a formal stage's due"
                               " date comes from the protocol, so leave it out", field="due")
        informal = due.informal_due(self.protocol, self.cal, self.today, due_on)
        if theme is not None and self.taxonomy is not None and theme not in self.taxonomy.keys:
            raise BadValue(
                f"there is no theme {theme!r}; choose one of {', '.join(self.taxonomy.keys)}"
            )
        suggestion = None
        if self.suggester is not None:
            text = " ".join(t for t in (summary_t, detail, impact) if t)
            found = self.suggester([text])
            suggestion = self.last_suggestion = found[0] if found else None
        # The suggestion is recorded beside the alert; only the IRO's choice (or, for alerts
        # left without one, the nightly themes flow) sets its theme.
        chosen: str | None = theme
        confirmed = theme is not None
        alert = new_row(Alert,
            child_id=known_id(child.id), iro_id=child.iro_id, status="open", stage=NEW,
            summary=summary_t or "",
            detail=inputs.text(detail, "the detail", required=False, limit=DETAIL_MAX),
            impact=inputs.text(impact, "the impact on the child", required=False, limit=TEXT_MAX),
            outcome_wanted=inputs.text(outcome_wanted, "the outcome wanted", required=False,
                                      limit=TEXT_MAX),
            theme=chosen, theme_confirmed=confirmed,
            theme_suggested=suggestion.theme if suggestion else None,
            theme_confidence=round(suggestion.confidence, 3) if suggestion else None,
            raised_at=self.now, stage_entered_at=self.now,
        )
        # A new alert: the machine starts from `new`.
        adapter = steps.alert_state(self.protocol, alert, actor, line, 0)
        if not adapter.permitted("raise_alert"):
            raise NotPermitted(
                f"{username} may not raise an alert for child {child.ref}: only the child's IRO"
                " or their recorded cover may (an IRO manager acts as cover once it is"
                " recorded: drp cover set)"
            )
        fire(self.protocol, adapter, "raise_alert", f"a new alert for {child.ref}", stage=stage)
        alert.stage = adapter.stage
        access.require_responsible(self.protocol, alert.stage, line)
        if open_ids and not separate:
            raise InvalidTransition(
                f"child {child.ref} already has an open alert ({', '.join(map(str, open_ids))});"
                " add to it, or confirm this is a separate matter (--separate)")
        self._enter_stage(alert, alert.stage, informal=informal)
        self._new_alert(alert, actor, line)
        event = self._event(alert, actor, "raised", first=True, to_stage=alert.stage,
                            comment=summary_t,
                            data={"theme": chosen, "theme_confirmed": confirmed,
                                  "suggested": alert.theme_suggested,
                                  "confidence": alert.theme_confidence,
                                  "separate_from": open_ids or None})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def respond(
        self, alert_id: int, username: str, message: str,
        actions: Sequence[ActionIn] = (),
    ) -> Alert:
        actor, alert, line = self._acting_on(alert_id, username)
        text = inputs.text(message, "the response", required=True, limit=DETAIL_MAX)
        self._fire(alert, actor, line, "respond")
        if alert.stage_responded_at is None:
            alert.stage_responded_at = self.now
        response = self._event(alert, actor, "responded", from_stage=alert.stage,
                               to_stage=alert.stage, comment=text)
        self._notice(alert, line, response, actions_agreed=len(actions),
                     first_action_due=min((a.due for a in actions), default=None))
        next_no = self.s.exec(
            select(func.coalesce(func.max(Action.no), 0)).where(Action.alert_id == alert.id)
        ).one() if actions else 0
        for i, a in enumerate(actions, start=1):
            a_text = inputs.text(a.text, f"action {i}", required=True, limit=inputs.ACTION_MAX)
            if a.due < self.today:
                raise BadValue(
                    f"action {i} is due {a.due.isoformat()}, which is in the past; give a date"
                    f" from {self.today.isoformat()}"
                )
            inputs.working_day(self.cal, a.due, f"action {i}'s due date")
            owner_id = (self._owner_id(a.owner, f"action {i}'s owner", alert, line) if a.owner
                        else actor.id)
            assert owner_id is not None
            action = Action(
                alert_id=known_id(alert.id), no=next_no + i, text=a_text or "", owner_id=owner_id,
                due=a.due, stage=alert.stage, agreed_at=self.now,
            )
            self.s.add(action)
            agreed = self._event(alert, actor, "action_agreed", from_stage=alert.stage,
                                 to_stage=alert.stage, comment=a_text,
                                 data={"no": action.no, "due": a.due.isoformat(),
                                       "owner": self._username(owner_id)})
            # The owner is told it is theirs (drp.notify: not when they agreed it themselves),
            # one message per action: its own event is the outbox key's.
            self._notices.append((alert, line, Notice(agreed, action=action)))
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def escalate(
        self, alert_id: int, username: str, reason: str, *, to: str | None = None,
    ) -> Alert:
        actor, alert, line = self._acting_on(alert_id, username)
        text = inputs.text(reason, "the reason", required=True, limit=TEXT_MAX)
        if to is not None and to not in self.protocol.keys:
            hint = " (to refer to Cafcass use drp alert refer)" if to == "cafcass" else ""
            raise BadValue(
                f"there is no stage {to!r}; the stages are {', '.join(self.protocol.keys)}{hint}"
            )
        from_stage = alert.stage
        self._fire(alert, actor, line, "escalate", to=to)
        access.require_responsible(self.protocol, alert.stage, line)
        self._enter_stage(alert, alert.stage)
        kind = "auto_escalated" if actor.is_system else "escalated"
        event = self._event(alert, actor, kind, from_stage=from_stage, to_stage=alert.stage,
                            comment=text)
        self._notice(alert, line, event, previous_stage=from_stage)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def _close(self, alert_id: int, username: str, trigger: str, kind: str, text: str | None,
               what: str, extra: Callable[[], dict[str, Any]] | None = None) -> Alert:
        actor, alert, line = self._acting_on(alert_id, username)
        body = inputs.text(text, what, required=True, limit=TEXT_MAX)
        from_stage = alert.stage
        self._fire(alert, actor, line, trigger)
        data = extra() if extra is not None else None  # after the person's right to act
        alert.closed_at = self.now
        alert.on_hold, alert.held_since, alert.hold_until = False, None, None
        if trigger == "resolve":
            alert.outcome = body
        event = self._event(alert, actor, kind, from_stage=from_stage, to_stage=alert.stage,
                            comment=body, data=data)
        outstanding = self.s.exec(select(func.count()).select_from(Action).where(
            Action.alert_id == alert.id, col(Action.done_at).is_(None))).one()
        self._notice(alert, line, event, previous_stage=from_stage,
                     outstanding_actions=outstanding)
        self._commit_point(alert)
        return alert

    def resolve(self, alert_id: int, username: str, outcome: str) -> Alert:
        return self._close(alert_id, username, "resolve", "resolved", outcome, "the outcome")

    def withdraw(self, alert_id: int, username: str, reason: str) -> Alert:
        return self._close(alert_id, username, "withdraw", "withdrawn", reason, "the reason")

    @reports_conflicts
    def refer(self, alert_id: int, username: str, reason: str, *, legal_advice: str | None,
              advised_on: date | None = None) -> Alert:
        """Refer to Cafcass: the allocated IRO's decision, after consulting the IRO manager
        and with independent legal advice (who advised, and when). Concurrent with the local
        process: the alert stays where it is, and one referral is recorded per alert."""
        actor, alert, line = self._acting_on(alert_id, username)
        body = inputs.text(reason, "the reason", required=True, limit=TEXT_MAX)
        self._fire(alert, actor, line, "refer")
        advice = inputs.text(legal_advice, "the legal advice taken", required=False,
                             limit=inputs.LEGAL_ADVICE_MAX)
        if advice is None:
            raise BadValue("a referral to Cafcass needs the legal advice taken: say who gave"
                           " it (--legal-advice), after consulting the IRO manager",
                           field="legal_advice")
        if advised_on is not None:
            inputs.day(advised_on, "the legal advice date", field="advised_on")
            if advised_on > self.today:
                raise BadValue(f"the legal advice date {advised_on.isoformat()} is after today"
                               f" ({self.today.isoformat()}); give the day it was given",
                               field="advised_on")
        self.s.add(Referral(alert_id=known_id(alert.id), referred_on=self.today,
                            referred_by_id=known_id(actor.id), reason=body or "",
                            legal_advice=advice, advised_on=advised_on))
        event = self._event(alert, actor, "referred", from_stage=alert.stage,
                            to_stage=alert.stage, comment=body,
                            data={"legal_advice": advice,
                                  "advised_on": advised_on.isoformat() if advised_on else None})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def cafcass_response(self, alert_id: int, username: str, response: str,
                         note: str | None = None) -> Alert:
        """Cafcass's response to the referral, recorded by the IRO (it may come after the
        local process has ended)."""
        actor, alert, line = self._acting_on(alert_id, username)
        if response not in CAFCASS_RESPONSES:
            raise BadValue(f"{response!r} is not a response drp knows; use one of"
                           f" {', '.join(CAFCASS_RESPONSES)}", field="response")
        text = inputs.text(note, "the note", required=False, limit=TEXT_MAX)
        self._fire(alert, actor, line, "cafcass_response")
        referral = self.s.exec(select(Referral).where(Referral.alert_id == alert.id)).one()
        previous = referral.response
        referral.response, referral.response_note = response, text
        referral.responded_on = self.today
        self.s.add(referral)
        event = self._event(alert, actor, "cafcass_response", from_stage=alert.stage,
                            to_stage=alert.stage, comment=text,
                            data={"response": response, "previous": previous})
        self._notice(alert, line, event, cafcass_response=CAFCASS_RESPONSES[response])
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def acknowledge(self, alert_id: int, username: str) -> Alert:
        """The person responsible at the current stage (or their cover) has seen the alert.
        Acknowledged is not responded: the stage's clock runs on."""
        actor, alert, line = self._acting_on(alert_id, username)
        self._fire(alert, actor, line, "acknowledge")
        alert.acknowledged_by_id, alert.acknowledged_at = actor.id, self.now
        self._event(alert, actor, "acknowledged", from_stage=alert.stage,
                    to_stage=alert.stage)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def hold(self, alert_id: int, username: str, reason: str,
             until: date | None = None) -> Alert:
        """Put the alert on hold until a date (required, within the protocol's most): held
        working days do not count on either clock."""
        actor, alert, line = self._acting_on(alert_id, username)
        text = inputs.text(reason, "the reason", required=True, limit=TEXT_MAX)
        self._fire(alert, actor, line, "hold")
        if until is not None:
            inputs.day(until, "the hold's end date", field="until")
        until = due.hold_until_limit(self.protocol, self.cal, self.today, until)
        alert.on_hold, alert.held_since, alert.hold_until = True, self.today, until
        event = self._event(alert, actor, "held", from_stage=alert.stage, to_stage=alert.stage,
                            comment=text, data={"until": until.isoformat() if until else None})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def resume(self, alert_id: int, username: str, comment: str | None = None) -> Alert:
        actor, alert, line = self._acting_on(alert_id, username)
        self._fire(alert, actor, line, "resume")
        assert alert.held_since is not None
        alert.stage_due, alert.resolution_due, held = due.after_hold(self.cal, alert,
                                                                      self.today)
        alert.on_hold, alert.held_since, alert.hold_until = False, None, None
        event = self._event(
            alert, actor, "resumed", from_stage=alert.stage, to_stage=alert.stage,
            comment=inputs.text(comment, "the comment", required=False, limit=TEXT_MAX),
            data={"held_working_days": held,
                  "resolution_due": alert.resolution_due.isoformat()
                  if alert.resolution_due else None})
        self._notice(alert, line, event, held_working_days=held)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def extend(self, alert_id: int, username: str, until: date, reason: str) -> Alert:
        actor, alert, line = self._acting_on(alert_id, username)
        text = inputs.text(reason, "the reason", required=True, limit=TEXT_MAX)
        self._fire(alert, actor, line, "extend")
        inputs.day(until, "the new due date", field="until")
        due.extension_limit(self.protocol, self.cal, alert, self.today, until)
        inputs.working_day(self.cal, until, "the new due date")
        previous = alert.stage_due
        alert.stage_due = until
        alert.resolution_due = due.after_extension(alert, until)
        # A new due date: its reminder and overdue notice are due again.
        event = self._event(
            alert, actor, "extended", from_stage=alert.stage, to_stage=alert.stage,
            comment=text, data={"from": previous.isoformat() if previous else None,
                                "to": until.isoformat()})
        self._notice(alert, line, event, previous_due=previous)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def reopen(self, alert_id: int, username: str, reason: str) -> Alert:
        actor, alert, line = self._acting_on(alert_id, username)
        text = inputs.text(reason, "the reason", required=True, limit=TEXT_MAX)
        self._fire(alert, actor, line, "reopen", resolved_stage=alert.stage)
        alert.closed_at, alert.outcome = None, None
        self._enter_stage(alert, alert.stage)
        event = self._event(alert, actor, "reopened", from_stage=alert.stage,
                            to_stage=alert.stage, comment=text)
        self._notice(alert, line, event)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def action_done(self, alert_id: int, action_no: int, username: str,
                    comment: str | None = None) -> Alert:
        actor, alert, line = self._acting_on(alert_id, username)
        action = self.s.exec(
            select(Action).where(Action.alert_id == alert.id, Action.no == action_no)
        ).first() if 0 < action_no < 2**31 else None
        if action is None:
            raise NotFound(
                f"alert {alert.id} has no action {action_no}; its actions are listed by"
                f" `drp alert show {alert.id}`"
            )
        if action.done_at is not None:
            raise InvalidTransition(
                f"action {action_no} of alert {alert.id} was already marked done at"
                f" {action.done_at.astimezone(self.tz):%Y-%m-%d %H:%M}"
            )
        self._fire(alert, actor, line, "action_done",
                   may_kw={"action_owner_id": action.owner_id, "action_stage": action.stage})
        action.done_at, action.done_by_id = self.now, actor.id
        self.s.add(action)
        self._event(alert, actor, "action_done", from_stage=alert.stage, to_stage=alert.stage,
                    comment=inputs.text(comment, "the comment", required=False, limit=TEXT_MAX)
                    or action.text, data={"no": action_no})
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def set_theme(self, alert_id: int, username: str, theme: str) -> Alert:
        """The IRO confirms the suggested theme or chooses another; both are recorded, so
        agreement between drp's suggestions and IROs can be reported."""
        actor, alert, line = self._acting_on(alert_id, username)
        if self.taxonomy is not None and theme not in self.taxonomy.keys:
            raise BadValue(
                f"there is no theme {theme!r}; choose one of {', '.join(self.taxonomy.keys)}")
        self._fire(alert, actor, line, "set_theme")
        previous = alert.theme
        alert.theme, alert.theme_confirmed = theme, True
        self._event(alert, actor, "theme_confirmed", from_stage=alert.stage,
                    to_stage=alert.stage, comment=theme,
                    data={"from": previous, "to": theme, "suggested": alert.theme_suggested,
                          "agreed": theme == alert.theme_suggested})
        self._commit_point(alert)
        return alert

    def _owner_id(self, username: str, what: str, alert: Alert, line: Line) -> int:
        """An agreed action's owner: someone who works on the child's case (the child's line
        or IROs), so they can see the alert and mark the action done."""
        pid = self.s.exec(
            select(Person.id).where(Person.username == username, col(Person.active))
        ).first()
        if pid is None:
            raise BadValue(f"{what}: there is no active person {username!r}; check the"
                           " username")
        if not access.may_own_action(pid, alert, line):
            raise BadValue(f"{what}: {username} does not work on child {line.child.ref}'s"
                           " case; choose the child's social worker, a manager on the child's"
                           " line or the IRO")
        return pid
