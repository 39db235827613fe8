"""The service layer: raise, respond, escalate, resolve, ... Each call is one unit of work in
the caller's transaction: the state change, its events (and, later, its outbox rows) are
written together or not at all. The shells (CLI, web, flows) call only this."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from . import access, rules
from .access import SYSTEM_ACTOR, Actor, Line
from .calendar import WorkingCalendar
from .clock import Clock, local_date
from .errors import BadValue, Conflict, InvalidTransition, NotFound, NotPermitted
from .machine import NEW, VERBS, AlertState, describe_state, fire, possible_triggers
from .models import AccessLog, Action, Alert, Child, Council, Event, Person, Service, Team
from .notify import Notice, Notifier

if TYPE_CHECKING:
    from .classifier import Suggestion
from .protocol import Protocol
from .schemas import ActionView, AlertDetail, AlertView, EventView
from .themes import Taxonomy

SUMMARY_MAX = 500
_BIDI_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


F = TypeVar("F", bound=Callable[..., Any])


def _reports_conflicts(method: F) -> F:
    """A concurrent change to the alert (a stale version at any flush) becomes a Conflict that
    names who made it; nothing of this unit of work is saved."""

    @functools.wraps(method)
    def wrapper(self: AlertService, alert_id: int, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, alert_id, *args, **kwargs)
        except StaleDataError:
            raise self._conflict(alert_id) from None

    return cast(F, wrapper)


def _id(value: int | None) -> int:
    """A row's id once it has been flushed."""
    assert value is not None
    return value


@dataclass(frozen=True)
class ActionIn:
    text: str
    due: date
    owner: str | None = None


class AlertService:
    def __init__(
        self,
        session: Session,
        *,
        protocol: Protocol,
        calendar: WorkingCalendar,
        clock: Clock,
        tz: ZoneInfo,
        taxonomy: Taxonomy | None = None,
        notifier: Notifier | None = None,
        suggester: Callable[[list[str]], list[Suggestion]] | None = None,
    ) -> None:
        self.s = session
        self.protocol = protocol
        self.cal = calendar
        self.clock = clock
        self.tz = tz
        self.taxonomy = taxonomy
        self.notifier = notifier
        self.suggester = suggester
        self.last_suggestion: Suggestion | None = None
        self._now: datetime | None = None
        self._notices: list[tuple[Alert, Line, Notice]] = []
        self.queued = 0  # outbox rows written by this unit of work
        # The session's identity map holds rows weakly; a page asks about the same alert,
        # person and line several times in one unit of work, so keep what was read.
        self._actors: dict[str, Actor] = {}
        self._kept: list[Any] = []

    # -- time ---------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """One instant per unit of work, so every row it writes agrees."""
        if self._now is None:
            self._now = self.clock.now()
        return self._now

    @property
    def today(self) -> date:
        return local_date(self.now, self.tz)

    # -- loading ------------------------------------------------------------------------
    def actor(self, username: str) -> Actor:
        if username == access.SYSTEM:
            return SYSTEM_ACTOR
        known = self._actors.get(username)
        if known is not None:
            return known
        person = self.s.exec(select(Person).where(Person.username == username)).first()
        if person is None or not person.active:
            raise NotFound(
                f"there is no active person {username!r}; check --as (people come from"
                " `drp org load`)"
            )
        actor = self._actors[username] = access.load_actor(self.s, person)
        return actor

    def _load(self, alert_id: int, actor: Actor) -> tuple[Alert, Line]:
        # Ids beyond a 32-bit integer cannot exist (and would overflow the database driver).
        alert = self.s.get(Alert, alert_id) if 0 < alert_id < 2**31 else None
        child = self.s.get(Child, alert.child_id) if alert else None
        if alert is None or child is None or not access.can_see_child(actor, child, alert.iro_id):
            raise NotFound(
                f"there is no alert {alert_id} that {actor.username} can see; check the number"
                " with `drp alert list`"
            )
        line = Line.of(self.s, child)
        self._kept.append((alert, line))
        return alert, line

    def _username(self, person_id: int | None) -> str | None:
        if person_id is None:
            return None
        person = self.s.get(Person, person_id)
        self._kept.append(person)
        return person.username if person else None

    def _owner_id(self, username: str, what: str, alert: Alert, line: Line) -> int:
        """An agreed action's owner: someone who works on the child's case (the child's line
        or IROs), so they can see the alert and mark the action done."""
        pid = self.s.exec(
            select(Person.id).where(Person.username == username, col(Person.active))
        ).first()
        if pid is None:
            raise BadValue(f"{what}: there is no active person {username!r}; check the"
                           " username")
        allowed = {p for p in (*line.by_role.values(), line.child.iro_id, alert.iro_id) if p}
        if pid not in allowed:
            raise BadValue(f"{what}: {username} does not work on child {line.child.ref}'s"
                           " case; choose the child's social worker, a manager on the child's"
                           " line or the IRO")
        return pid

    # -- validation helpers -----------------------------------------------------------------
    def _working_day(self, day: date, what: str) -> date:
        if not self.cal.is_working_day(day):
            why = self.cal.holiday_name(day) or day.strftime("%A")
            nxt = self.cal.next_working_day(day)
            raise BadValue(
                f"{what} {day.isoformat()} is not a working day ({why}); the next working day"
                f" is {nxt.isoformat()}"
            )
        return day

    @staticmethod
    def _text(value: str | None, what: str, *, required: bool, limit: int) -> str | None:
        # Bidirectional overrides can make text read differently from what it says
        # ("fdp.exe" shown as "exe.pdf"); control characters have no place in a record.
        value = "".join(ch for ch in (value or "") if ch not in _BIDI_OVERRIDES
                        and (ch in "\n\t" or ord(ch) >= 32)).strip()
        if not value:
            if required:
                raise BadValue(f"{what} is empty; say it in a few words")
            return None
        if len(value) > limit:
            raise BadValue(f"{what} is {len(value)} characters long; the limit is {limit}")
        return value

    def _not_before_last_event(self, alert: Alert) -> None:
        last, last_seq = self.s.exec(
            select(func.max(Event.at), func.max(Event.seq)).where(Event.alert_id == alert.id)
        ).one()
        if last_seq is not None and last_seq > alert.last_seq:
            # Someone else's event committed since this unit of work read the alert: that is
            # a concurrent change (say who made it), not a clock out of order.
            raise self._conflict(_id(alert.id))
        if last is not None and self.now < last:
            def local(t: datetime) -> str:
                return t.astimezone(self.tz).strftime("%-d %b %Y %H:%M")

            raise BadValue(
                f"alert {alert.id} already has an event dated {local(last)}, after the time of"
                f" this action ({local(self.now)}); events must stay in order, so act as of"
                " a later time (was drp run with --now in the future?)"
            )

    # -- the machine ----------------------------------------------------------------------------
    def _adapter(self, alert: Alert, actor: Actor, line: Line, **may_kw: Any) -> AlertState:
        outstanding = self.s.exec(
            select(func.count()).select_from(Action).where(
                Action.alert_id == alert.id, col(Action.done_at).is_(None)
            )
        ).one()
        return AlertState(
            status=alert.status,
            stage=alert.stage,
            cafcass_key=self.protocol.cafcass.key,
            on_hold=alert.on_hold,
            outstanding_actions=outstanding,
            permitted=lambda trigger: access.may(
                actor, trigger, self.protocol, alert, line, **may_kw
            ),
        )

    def _fire(
        self, alert: Alert, actor: Actor, line: Line, trigger: str, *,
        may_kw: dict[str, Any] | None = None, **kwargs: Any,
    ) -> AlertState:
        adapter = self._check(alert, actor, line, trigger, may_kw, **kwargs)
        fire(self.protocol, adapter, trigger, f"alert {alert.id}", **kwargs)
        self._not_before_last_event(alert)
        alert.status, alert.stage = adapter.status, adapter.stage
        return adapter

    def check(self, alert_id: int, username: str, trigger: str) -> None:
        """Raise what `trigger` would raise for this person now (NotFound, InvalidTransition,
        NotPermitted), without doing it: for pages that ask before they act."""
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        self._check(alert, actor, line, trigger, None)

    def _check(self, alert: Alert, actor: Actor, line: Line, trigger: str,
               may_kw: dict[str, Any] | None, **kwargs: Any) -> AlertState:
        adapter = self._adapter(alert, actor, line, **(may_kw or {}))
        subject = f"alert {alert.id}"
        if trigger not in possible_triggers(self.protocol, adapter.state):
            fire(self.protocol, adapter, trigger, subject, **kwargs)  # raises InvalidTransition
        if not adapter.permitted(trigger):
            # Wrong person: refused before the stage is even considered, naming who may.
            where = describe_state(self.protocol, adapter)
            raise NotPermitted(
                f"{actor.username} may not {VERBS[trigger]} alert {alert.id} ({where}):"
                f" {access.who_may(trigger, self.protocol, alert, line)} may"
            )
        return adapter

    def _event(
        self, alert: Alert, actor: Actor, kind: str, *, from_stage: str | None = None,
        to_stage: str | None = None, comment: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        alert.last_seq += 1
        event = Event(
            alert_id=_id(alert.id), seq=alert.last_seq, at=self.now, actor=actor.username,
            kind=kind, from_stage=from_stage, to_stage=to_stage, comment=comment,
            data={**rules.clocks(alert), **(data or {})},
        )
        self.s.add(alert)
        self.s.add(event)
        return event

    def _notice(self, alert: Alert, line: Line, event: Event, *,
                previous_stage: str | None = None, **extra: Any) -> None:
        self._notices.append((alert, line, Notice(event, previous_stage, extra)))

    def _commit_point(self, alert: Alert) -> None:
        """Flush now, so a concurrent change surfaces inside the unit of work; then queue the
        e-mails the events call for, in the same transaction."""
        self.s.flush()
        notices, self._notices = self._notices, []
        if self.notifier is None:
            return
        for n_alert, line, notice in notices:
            self.queued += self.notifier.queue(
                self.s, self.protocol, n_alert, line, notice, self.now)
        self.s.flush()

    def _conflict(self, alert_id: int) -> Conflict:
        self.s.rollback()
        last = self.s.exec(
            select(Event).where(Event.alert_id == alert_id).order_by(col(Event.seq).desc())
        ).first()
        who = ""
        if last is not None:
            who = f" by {last.actor} at {last.at.astimezone(self.tz):%Y-%m-%d %H:%M}"
        return Conflict(
            f"alert {alert_id} was changed{who} while you were acting; nothing was saved."
            f" Look at it again (drp alert show {alert_id}) and retry if still needed"
        )

    def _enter_stage(self, alert: Alert, stage_key: str) -> None:
        stage = self.protocol.stage(stage_key)
        alert.stage_entered_at = self.now
        alert.stage_due = self.cal.add(self.today, stage.timescale_working_days)
        alert.stage_responded_at = None

    def _responsible_id(self, stage_key: str, line: Line) -> int | None:
        if stage_key not in self.protocol.keys:
            return None
        return line.holder(self.protocol.stage(stage_key).responsible)

    def _require_responsible(self, stage_key: str, line: Line) -> None:
        rules.require_responsible(self.protocol, stage_key, line)

    # -- commands -----------------------------------------------------------------------------
    def raise_alert(
        self, username: str, child_ref: str, summary: str, *, detail: str | None = None,
        impact: str | None = None, outcome_wanted: str | None = None,
        theme: str | None = None, stage: str | None = None,
    ) -> Alert:
        actor = self.actor(username)
        child = self.s.exec(select(Child).where(Child.ref == child_ref)).first()
        if child is None or not child.active or not access.can_see_child(actor, child):
            raise NotFound(
                f"there is no child {child_ref!r} that {username} can see; check the reference"
            )
        line = Line.of(self.s, child)
        if stage is not None and stage not in self.protocol.keys:
            raise BadValue(f"there is no stage {stage!r}; the stages are"
                           f" {', '.join(self.protocol.keys)}")
        summary_t = self._text(summary, "the summary", required=True, limit=SUMMARY_MAX)
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
        alert = Alert(
            child_id=_id(child.id), iro_id=child.iro_id, status="open", stage=NEW,
            summary=summary_t or "",
            detail=self._text(detail, "the detail", required=False, limit=10000),
            impact=self._text(impact, "the impact on the child", required=False, limit=5000),
            outcome_wanted=self._text(outcome_wanted, "the outcome wanted", required=False,
                                      limit=5000),
            theme=chosen, theme_confirmed=confirmed,
            theme_suggested=suggestion.theme if suggestion else None,
            theme_confidence=round(suggestion.confidence, 3) if suggestion else None,
            raised_at=self.now, stage_entered_at=self.now,
            resolution_due=self.cal.add(self.today, self.protocol.resolution_working_days),
        )
        # A new alert: the machine starts from `new`.
        adapter = AlertState(
            status="new", stage=NEW, cafcass_key=self.protocol.cafcass.key,
            permitted=lambda t: access.may(actor, t, self.protocol, alert, line),
        )
        if not adapter.permitted("raise_alert"):
            raise NotPermitted(
                f"{username} may not raise an alert for child {child.ref}: only the child's IRO"
                " or an IRO manager may"
            )
        fire(self.protocol, adapter, "raise_alert", f"a new alert for {child.ref}", stage=stage)
        alert.stage = adapter.stage
        self._require_responsible(alert.stage, line)
        self._enter_stage(alert, alert.stage)
        self.s.add(alert)
        self.s.flush()
        event = self._event(alert, actor, "raised", to_stage=alert.stage, comment=summary_t,
                            data={"theme": chosen, "theme_confirmed": confirmed,
                                  "suggested": alert.theme_suggested,
                                  "confidence": alert.theme_confidence})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return alert

    @_reports_conflicts
    def respond(
        self, alert_id: int, username: str, message: str,
        actions: Sequence[ActionIn] = (),
    ) -> Alert:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        text = self._text(message, "the response", required=True, limit=10000)
        self._fire(alert, actor, line, "respond")
        if alert.stage_responded_at is None:
            alert.stage_responded_at = self.now
        response = self._event(alert, actor, "responded", from_stage=alert.stage,
                               to_stage=alert.stage, comment=text)
        self._notice(alert, line, response, actions_agreed=len(actions),
                     first_action_due=min((a.due for a in actions), default=None))
        next_no = self.s.exec(
            select(func.coalesce(func.max(Action.no), 0)).where(Action.alert_id == alert.id)
        ).one()
        for i, a in enumerate(actions, start=1):
            a_text = self._text(a.text, f"action {i}", required=True, limit=2000)
            if a.due < self.today:
                raise BadValue(
                    f"action {i} is due {a.due.isoformat()}, which is in the past; give a date"
                    f" from {self.today.isoformat()}"
                )
            self._working_day(a.due, f"action {i}'s due date")
            owner_id = (self._owner_id(a.owner, f"action {i}'s owner", alert, line) if a.owner
                        else actor.id)
            assert owner_id is not None
            action = Action(
                alert_id=_id(alert.id), no=next_no + i, text=a_text or "", owner_id=owner_id,
                due=a.due, stage=alert.stage, agreed_at=self.now,
            )
            self.s.add(action)
            self._event(alert, actor, "action_agreed", from_stage=alert.stage,
                        to_stage=alert.stage, comment=a_text,
                        data={"no": action.no, "due": a.due.isoformat(),
                              "owner": self._username(owner_id)})
        self._commit_point(alert)
        return alert

    @_reports_conflicts
    def escalate(
        self, alert_id: int, username: str, reason: str, *, to: str | None = None,
    ) -> Alert:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        text = self._text(reason, "the reason", required=True, limit=5000)
        if to is not None and to not in self.protocol.keys:
            hint = " (to refer to Cafcass use drp alert refer)" if to == "cafcass" else ""
            raise BadValue(
                f"there is no stage {to!r}; the stages are {', '.join(self.protocol.keys)}{hint}"
            )
        from_stage = alert.stage
        self._fire(alert, actor, line, "escalate", to=to)
        self._require_responsible(alert.stage, line)
        self._enter_stage(alert, alert.stage)
        kind = "auto_escalated" if actor.is_system else "escalated"
        event = self._event(alert, actor, kind, from_stage=from_stage, to_stage=alert.stage,
                            comment=text)
        self._notice(alert, line, event, previous_stage=from_stage)
        self._commit_point(alert)
        return alert

    @_reports_conflicts
    def _close(self, alert_id: int, username: str, trigger: str, kind: str, text: str | None,
               what: str, extra: Callable[[], dict[str, Any]] | None = None) -> Alert:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        body = self._text(text, what, required=True, limit=5000)
        data = extra() if extra is not None else None
        from_stage = alert.stage
        self._fire(alert, actor, line, trigger)
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

    def refer(self, alert_id: int, username: str, reason: str, *, legal_advice: str | None,
              advised_on: date | None = None) -> Alert:
        """Refer to Cafcass. The Handbook expects the IRO to have taken independent legal
        advice first: every channel must say who advised (and may say when)."""
        def legal_advice_taken() -> dict[str, Any]:
            advice = self._text(legal_advice, "the legal advice taken", required=False,
                                limit=500)
            if advice is None:
                raise BadValue("a referral to Cafcass needs the legal advice taken: say who"
                               " advised (--legal-advice), after consulting the IRO manager")
            if advised_on is not None and advised_on > self.today:
                raise BadValue(f"the legal advice date {advised_on.isoformat()} is after today"
                               f" ({self.today.isoformat()}); give the day it was given")
            return {"legal_advice": advice,
                    "advised_on": advised_on.isoformat() if advised_on else None}

        return self._close(alert_id, username, "refer", "referred", reason, "the reason",
                           extra=legal_advice_taken)

    @_reports_conflicts
    def hold(self, alert_id: int, username: str, reason: str,
             until: date | None = None) -> Alert:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        text = self._text(reason, "the reason", required=True, limit=5000)
        if until is not None and until <= self.today:
            raise BadValue(
                f"the hold would end {until.isoformat()}, which is not after today"
                f" ({self.today.isoformat()}); give a later date"
            )
        self._fire(alert, actor, line, "hold")
        alert.on_hold, alert.held_since, alert.hold_until = True, self.today, until
        event = self._event(alert, actor, "held", from_stage=alert.stage, to_stage=alert.stage,
                            comment=text, data={"until": until.isoformat() if until else None})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return alert

    @_reports_conflicts
    def resume(self, alert_id: int, username: str, comment: str | None = None) -> Alert:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        self._fire(alert, actor, line, "resume")
        assert alert.held_since is not None
        # Working days on hold do not count: both clocks move on by the days held.
        held = max(0, self.cal.between(alert.held_since, self.today))
        if alert.stage_due is not None:
            alert.stage_due = self.cal.add(alert.stage_due, held)
        alert.resolution_due = self.cal.add(alert.resolution_due, held)
        alert.on_hold, alert.held_since, alert.hold_until = False, None, None
        event = self._event(
            alert, actor, "resumed", from_stage=alert.stage, to_stage=alert.stage,
            comment=self._text(comment, "the comment", required=False, limit=5000),
            data={"held_working_days": held})
        self._notice(alert, line, event, held_working_days=held)
        self._commit_point(alert)
        return alert

    @_reports_conflicts
    def extend(self, alert_id: int, username: str, until: date, reason: str) -> Alert:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        text = self._text(reason, "the reason", required=True, limit=5000)
        self._fire(alert, actor, line, "extend")
        self._working_day(until, "the new due date")
        if alert.stage_due is not None and until <= alert.stage_due:
            raise BadValue(
                f"the new due date {until.isoformat()} is not after the current one"
                f" ({alert.stage_due.isoformat()}); an extension must be later"
            )
        previous = alert.stage_due
        alert.stage_due = until
        event = self._event(
            alert, actor, "extended", from_stage=alert.stage, to_stage=alert.stage,
            comment=text, data={"from": previous.isoformat() if previous else None,
                                "to": until.isoformat()})
        self._notice(alert, line, event, previous_due=previous)
        self._commit_point(alert)
        return alert

    @_reports_conflicts
    def reopen(self, alert_id: int, username: str, reason: str) -> Alert:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        text = self._text(reason, "the reason", required=True, limit=5000)
        self._fire(alert, actor, line, "reopen", resolved_stage=alert.stage)
        alert.closed_at, alert.outcome = None, None
        self._enter_stage(alert, alert.stage)
        event = self._event(alert, actor, "reopened", from_stage=alert.stage,
                            to_stage=alert.stage, comment=text)
        self._notice(alert, line, event)
        self._commit_point(alert)
        return alert

    @_reports_conflicts
    def action_done(self, alert_id: int, action_no: int, username: str,
                    comment: str | None = None) -> Alert:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
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
                    comment=self._text(comment, "the comment", required=False, limit=5000)
                    or action.text, data={"no": action_no})
        self._commit_point(alert)
        return alert

    @_reports_conflicts
    def set_theme(self, alert_id: int, username: str, theme: str) -> Alert:
        """The IRO confirms the suggested theme or chooses another; both are recorded, so
        agreement between drp's suggestions and IROs can be reported."""
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
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

    @_reports_conflicts
    def suggest_theme(self, alert_id: int, suggestion: Suggestion) -> bool:
        """The themes flow: give an alert with no theme the classifier's suggestion."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        if alert.theme is not None or alert.theme_confirmed:
            return False
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

    # -- what the flows do (actor `system`): each re-checks that it is still due ----------------
    @_reports_conflicts
    def remind(self, alert_id: int) -> bool:
        """The reminder before a stage's due date, once per due date."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        due = alert.stage_due
        if due is None or not rules.reminder_due(self.protocol, self.cal, self.today, alert):
            return False
        self._fire(alert, SYSTEM_ACTOR, line, "remind")
        alert.reminded_for = due
        event = self._event(alert, SYSTEM_ACTOR, "reminder", from_stage=alert.stage,
                            to_stage=alert.stage, data={"due": due.isoformat()})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return True

    @_reports_conflicts
    def act_on_overdue(self, alert_id: int) -> str | None:
        """What the protocol orders when a stage's response is late: escalate, remind the IRO
        (a pause point) or prompt the IRO to consider Cafcass. Returns what was done."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        what = rules.on_overdue(self.protocol, self.today, alert)
        due = alert.stage_due
        if what is None or due is None:
            return None
        if what == "escalated":
            self.escalate(alert_id, SYSTEM_ACTOR.username,
                          rules.escalation_reason(self.protocol.stage(alert.stage), due))
            return what
        self._fire(alert, SYSTEM_ACTOR, line, "remind")
        alert.overdue_notified_for = due
        event = self._event(alert, SYSTEM_ACTOR, what, from_stage=alert.stage,
                            to_stage=alert.stage, data={"due": due.isoformat()})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return what

    @_reports_conflicts
    def end_hold(self, alert_id: int) -> bool:
        """Resume an alert whose hold has reached its end date."""
        alert, _line = self._load(alert_id, SYSTEM_ACTOR)
        if not alert.on_hold or alert.hold_until is None or alert.hold_until > self.today:
            return False
        self.resume(alert_id, SYSTEM_ACTOR.username,
                    f"The hold ended on {alert.hold_until.isoformat()}")
        return True

    @_reports_conflicts
    def action_overdue(self, alert_id: int, action_no: int) -> bool:
        """Tell the owner and the IRO, once, that an agreed action is past its date."""
        alert, line = self._load(alert_id, SYSTEM_ACTOR)
        action = self.s.exec(
            select(Action).where(Action.alert_id == alert.id, Action.no == action_no)
        ).first() if 0 < action_no < 2**31 else None
        if (action is None or action.done_at is not None or action.overdue_notified_at
                is not None or self.today <= action.due or alert.on_hold
                or alert.status not in ("open", "resolved")):
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

    # -- reading -----------------------------------------------------------------------------
    def _overdue(self, alert: Alert) -> bool:
        if alert.status != "open" or alert.on_hold:
            return False
        stage_late = (
            alert.stage_due is not None and alert.stage_responded_at is None
            and self.today > alert.stage_due
        )
        return stage_late or self.today > alert.resolution_due

    def _view(self, alert: Alert, child: Child, team: Team, names: dict[int, str],
              line: Line | None) -> dict[str, Any]:
        responsible = None
        if alert.status == "open" and line is not None:
            rid = self._responsible_id(alert.stage, line)
            responsible = names.get(rid) if rid else None
            responsible = responsible or self._username(rid)
        return {
            "id": alert.id, "child": child.ref, "status": alert.status, "stage": alert.stage,
            "iro": names.get(alert.iro_id) or self._username(alert.iro_id),
            "responsible": responsible, "theme": alert.theme, "raised_at": alert.raised_at,
            "stage_due": alert.stage_due if alert.status == "open" else None,
            "resolution_due": alert.resolution_due, "overdue": self._overdue(alert),
            "summary": alert.summary, "stage_title": self.protocol.title(alert.stage)
            if alert.stage in (*self.protocol.keys, self.protocol.cafcass.key) else alert.stage,
            "on_hold": alert.on_hold, "hold_until": alert.hold_until, "team": team.key,
        }

    def _audit(self, actor: Actor, action: str, alert_id: int | None, detail: str | None) -> None:
        self.s.add(AccessLog(at=self.now, actor=actor.username, action=action,
                             alert_id=alert_id, detail=detail))

    def show(self, alert_id: int, username: str) -> AlertDetail:
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        events = self.s.exec(
            select(Event).where(Event.alert_id == alert.id).order_by(col(Event.seq))
        ).all()
        actions = self.s.exec(
            select(Action).where(Action.alert_id == alert.id).order_by(col(Action.no))
        ).all()
        self._audit(actor, "view", alert.id, None)
        view = self._view(alert, line.child, line.team, {}, line)
        return AlertDetail(
            **view, detail=alert.detail, impact=alert.impact,
            outcome_wanted=alert.outcome_wanted, outcome=alert.outcome,
            events=[EventView(at=e.at, actor=e.actor, kind=e.kind, from_stage=e.from_stage,
                              to_stage=e.to_stage, comment=e.comment) for e in events],
            actions=[
                ActionView(
                    no=a.no, text=a.text, owner=self._username(a.owner_id) or "", due=a.due,
                    stage=a.stage, done=a.done_at is not None, done_at=a.done_at,
                    overdue=a.done_at is None and self.today > a.due,
                )
                for a in actions
            ],
        )

    def list_alerts(self, username: str, status: str | None = None, *, team: str | None = None,
             stage: str | None = None, theme: str | None = None, service: str | None = None,
             mine: bool = False) -> list[AlertView]:
        """The alerts this person may see, filtered. `mine`: an IRO's own alerts."""
        actor, rows = self._listing(username, status, team=team, stage=stage, theme=theme,
                                    service=service, mine=mine)
        out = [view for view, _alert, _line in rows]
        self._audit(actor, "list", None, f"{len(out)} alerts, status={status or 'all'}")
        return out

    def _listing(self, username: str, status: str | None, *, team: str | None = None,
                 stage: str | None = None, theme: str | None = None,
                 service: str | None = None, mine: bool = False,
                 ) -> tuple[Actor, list[tuple[AlertView, Alert, Line]]]:
        """A few queries whatever the number of alerts: the alerts with their children and
        teams in one, everyone's usernames, the services and the council in one each."""
        actor = self.actor(username)
        query = (
            select(Alert, Child, Team)
            .join(Child, col(Child.id) == Alert.child_id)
            .join(Team, col(Team.id) == Child.team_id)
            .where(access.visible_alerts(actor))
            .order_by(col(Alert.id))
        )
        if team:
            query = query.where(Team.key == team)
        if stage:
            query = query.where(Alert.stage == stage)
        if theme:
            query = query.where(Alert.theme == theme)
        if service:
            query = query.join(Service, col(Service.id) == Team.service_id).where(
                Service.key == service)
        if mine:
            query = query.where(or_(col(Alert.iro_id) == actor.id, col(Child.iro_id) == actor.id))
        if status in ("open", "overdue"):
            query = query.where(Alert.status == "open")
        elif status == "closed":
            query = query.where(col(Alert.status).in_(("resolved", "withdrawn", "referred")))
        elif status is not None:
            raise BadValue(f"--status {status!r} is not known; use open, overdue or closed")
        rows = self.s.exec(query).all()
        names = {pid: u for pid, u in self.s.exec(select(Person.id, Person.username)) if pid}
        services = {s.id: s for s in self.s.exec(select(Service))} if rows else {}
        council = self.s.get(Council, 1) if rows else None
        lines: dict[int, Line] = {}
        out = []
        for alert, child, team_row in rows:
            assert child.id is not None
            line = lines.get(child.id)
            if line is None:
                line = lines[child.id] = Line.build(child, team_row,
                                                    services[team_row.service_id], council)
            view = AlertView(**self._view(alert, child, team_row, names, line))
            if status == "overdue" and not view.overdue:
                continue
            out.append((view, alert, line))
        return actor, out

    def inbox(self, username: str) -> list[AlertView]:
        """Open alerts awaiting this person's response (responsible at the current stage, or
        above it on the child's line), oldest due first."""
        actor, rows = self._listing(username, "open")
        waiting = []
        for view, alert, line in rows:
            if alert.stage_responded_at is not None or alert.on_hold:
                continue
            if self._responsible_id(alert.stage, line) == actor.id or (
                    alert.stage in self.protocol.keys and actor.id is not None
                    and any(line.holder(r) == actor.id
                            for r in self.protocol.stage(alert.stage).also_respond)):
                waiting.append(view)
        self._audit(actor, "list", None, f"{len(waiting)} alerts, inbox")
        return sorted(waiting, key=lambda v: (v.stage_due or date.max, v.id))

    def allowed(self, alert_id: int, username: str) -> list[str]:
        """What this person may do to this alert now (the triggers the pages offer)."""
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        adapter = self._adapter(alert, actor, line)
        return [t for t in possible_triggers(self.protocol, adapter.state)
                if t not in ("remind", "action_done") and adapter.permitted(t)
                and (t != "resume" or alert.on_hold)
                and (t not in ("hold", "extend", "escalate") or not alert.on_hold)
                and (t != "reopen" or adapter.outstanding_actions > 0)]

    def children_for(self, username: str) -> list[str]:
        """The children this person may raise an alert for."""
        actor = self.actor(username)
        query = select(Child).where(col(Child.active)).order_by(col(Child.ref))
        return [c.ref for c in self.s.exec(query) if access.may_raise(actor, c)]

    def people_on_line(self, alert_id: int, username: str) -> list[tuple[str, str]]:
        """(username, name) of the people an agreed action could be given to."""
        actor = self.actor(username)
        _alert, line = self._load(alert_id, actor)
        ids = [pid for pid in line.by_role.values() if pid]
        out = []
        for pid in dict.fromkeys(ids):
            person = self.s.get(Person, pid)
            if person is not None and person.active:
                out.append((person.username, person.name))
        return out
