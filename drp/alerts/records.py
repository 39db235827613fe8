"""What a child's file needs, read as the rest of the queries are (each view audited): the
child's page (every alert of the child the person may see), search by reference or alert
number, and the print view of an alert for the child's file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import col, select

from ..errors import DrpError, NotFound
from ..ladder import access, due
from ..ladder.access import Line
from ..ladder.protocol import Role
from ..models import Action, Alert, AlertLink, Child, Event, Referral
from ..schemas import AlertDetail, AlertView
from .queries import Queries
from .unit import known_id

# How each kind of event reads: the timeline (the alert page, the print view, the child's
# page) and the case notes' titles (drp.casenotes) say it in these words.
EVENT_WORDS = {
    "raised": "Raised", "responded": "Responded", "action_agreed": "Action agreed",
    "escalated": "Escalated", "auto_escalated": "Escalated automatically (response overdue)",
    "resolved": "Resolved", "withdrawn": "Withdrawn", "held": "Put on hold",
    "resumed": "Resumed", "extended": "Due date changed", "reopened": "Reopened",
    "action_done": "Action done", "theme_confirmed": "Theme confirmed",
    "theme_suggested": "Theme suggested", "reminder": "Reminder sent",
    "ack_reminder": "Reminder to acknowledge sent",
    "overdue": "Response overdue: the IRO to decide whether to escalate",
    "cafcass_prompt": "Response overdue at the last stage: the IRO to consider Cafcass",
    "action_overdue": "Action overdue", "action_reminder": "Action due soon: reminder sent",
    "referred": "Referred to Cafcass",
    "cafcass_response": "Cafcass's response recorded", "acknowledged": "Acknowledged",
    "transferred": "Transferred (the child's team or IRO changed)",
    "moved": "Moved from another child (misfiled)", "linked": "Linked to a related alert",
    "good_practice": "Good practice recorded",
    "due_recomputed": "Due dates recomputed (a closure day)",
    "corrected": "Text corrected",
}


class Records(Queries):
    """The child's page, search and the print view (on top of the lists and views)."""

    def _child_by_ref(self, ref: str) -> Child | None:
        """The child with this reference: exactly, else the one whatever its case."""
        if not ref or len(ref) > 40:
            return None
        child = self.s.exec(select(Child).where(Child.ref == ref)).first()
        if child is None:
            found = self.s.exec(select(Child).where(
                func.lower(Child.ref) == ref.lower()).limit(2)).all()
            child = found[0] if len(found) == 1 else None
        return child

    def child_file(self, ref: str, username: str) -> ChildFile:
        """A child's page: every alert and good-practice record of the child this person may
        see (`access.can_see_child`, with each alert's IRO), open and past, with their linked
        alerts that the person may see too. The child is shown to whoever may see it or one
        of its alerts; anyone else is refused as if it did not exist (NotFound). Audited as a
        view with the alerts shown."""
        actor = self.actor(username)
        child = self._child_by_ref(ref)
        alerts = [] if child is None else list(self.s.exec(
            select(Alert).where(Alert.child_id == child.id).order_by(col(Alert.id))))
        shown = [a for a in alerts
                 if child is not None and access.can_see_child(actor, child, a.iro_id)]
        if child is None or not (shown or access.can_see_child(actor, child)):
            self.refuse(actor, f"child {ref[:40]!r}")
            raise NotFound(f"there is no child {ref[:40]!r} that {actor.username} can see;"
                           " check the reference")
        line = self.line_of(child)
        by_id, _ = self._names_of(line.people(child.iro_id, *(a.iro_id for a in shown),
                                              *(a.acknowledged_by_id for a in shown)))
        ids = [known_id(a.id) for a in shown]
        referred = set(self.s.exec(select(Referral.alert_id).where(
            col(Referral.alert_id).in_(ids)))) if ids else set()
        linked: dict[int, list[tuple[int, str]]] = {}
        if ids:
            rows = self.s.exec(
                select(AlertLink.alert_id, Alert, Child)
                .join(Alert, col(Alert.id) == AlertLink.other_id)
                .join(Child, col(Child.id) == Alert.child_id)
                .where(col(AlertLink.alert_id).in_(ids)).order_by(col(AlertLink.other_id)))
            for aid, other, other_child in rows:
                if access.can_see_child(actor, other_child, other.iro_id):
                    linked.setdefault(aid, []).append((known_id(other.id), other_child.ref))
        entries = []
        for a in shown:
            view = self._view(a, child, line.team, by_id, line)
            entries.append(ChildAlert(
                id=known_id(a.id), kind=a.kind, status=a.status, stage=a.stage,
                stage_title=self.protocol.title(a.stage), summary=a.summary,
                raised_at=a.raised_at, stage_due=view["stage_due"],
                resolution_due=a.resolution_due, closed_at=a.closed_at, theme=a.theme,
                iro=view["iro"] or "", responsible=view["responsible"],
                overdue=view["overdue"], on_hold=a.on_hold, hold_until=a.hold_until,
                referred=a.id in referred, linked=linked.get(known_id(a.id), [])))
        self._audit(actor, "view", None, f"child {child.ref}", ids)
        service = line.service
        return ChildFile(
            ref=child.ref, active=child.active, team=line.team.name, service=service.name,
            iro=by_id.get(child.iro_id, ""),
            social_worker=by_id.get(child.social_worker_id) if child.social_worker_id else None,
            open=[e for e in entries if e.kind != "good_practice" and e.status == "open"],
            past=[e for e in entries if e.kind != "good_practice" and e.status != "open"],
            good_practice=[e for e in entries if e.kind == "good_practice"])

    def search(self, text: str, username: str) -> Found:
        """Children by reference (exactly or by its start, whatever the case) and an alert by
        its number (`12` or `#12`), only those this person may see: what they may not see is
        not found, the same as what does not exist (an alert asked for by number is recorded
        as refused, as on its page). `text` is a reference or a number, checked by the
        caller. Audited with what was found."""
        actor = self.actor(username)
        alert_id: int | None = None
        number = text[1:] if text.startswith("#") else text
        if number.isdigit() and 0 < int(number) < 2**31:
            try:
                alert_id = known_id(self._load(int(number), actor)[0].id)
            except NotFound:
                alert_id = None
        refs: list[str] = []
        if not text.startswith("#"):
            pattern = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_") + "%"
            candidates = list(self.s.exec(select(Child).where(
                func.lower(Child.ref).like(pattern, escape="\\")).order_by(
                func.length(Child.ref), col(Child.ref)).limit(SEARCH_CANDIDATES)))
            hidden = [known_id(c.id) for c in candidates if not access.can_see_child(actor, c)]
            iros: dict[int, set[int]] = {}
            if hidden:
                for cid, iro in self.s.exec(select(Alert.child_id, Alert.iro_id).where(
                        col(Alert.child_id).in_(hidden))):
                    iros.setdefault(cid, set()).add(iro)
            refs = [c.ref for c in candidates
                    if access.can_see_child(actor, c) or any(
                        access.can_see_child(actor, c, iro) for iro in iros.get(known_id(c.id), ()))
                    ][:SEARCH_SHOWN]
        found = Found(alert=alert_id, children=refs,
                      exact=next((r for r in refs if r.lower() == text.lower()), None))
        via = f" ({self.origin.via})" if self.origin is not None and self.origin.via else ""
        what = ([f"alert {alert_id}"] if alert_id else []) + [f"child {r}" for r in refs]
        self._audit(actor, "search", alert_id,
                    f"searched {text!r}: {', '.join(what) or 'nothing found'}{via}")
        return found

    def print_file(self, alert_id: int, username: str) -> PrintFile:
        """An alert for the child's file: its summary, every event with its date and who (by
        name), the responses, the agreed actions and the outcome, and who printed it when.
        Audited as a `print` of the alert; NotFound where the person may not see it."""
        actor, alert, line = self._acting_on(alert_id, username)
        referral = self.s.exec(select(Referral).where(Referral.alert_id == alert.id)).first()
        events = list(self.s.exec(select(Event).where(Event.alert_id == alert.id).order_by(
            col(Event.seq))))
        actions = list(self.s.exec(select(Action).where(Action.alert_id == alert.id).order_by(
            col(Action.no))))
        by_id, by_username = self._names_of(
            self._named_by(alert, line, referral, actions),
            [u for e in events for u in (e.actor, e.as_cover_for)])
        view = AlertView(**self._view(alert, line.child, line.team, by_id, line, referral))

        def named(username: str | None) -> str | None:
            return by_username.get(username, username) if username else None

        entries = [
            PrintEntry(at=e.at, who=named(e.actor) or "", kind=e.kind,
                       as_cover_for=named(e.as_cover_for), from_stage=e.from_stage,
                       to_stage=e.to_stage, comment=e.comment)
            for e in events]
        printed = [
            PrintAction(no=a.no, text=a.text, owner=by_id.get(a.owner_id, ""), due=a.due,
                        stage_title=self.protocol.title(a.stage), done_at=a.done_at,
                        done_by=by_id.get(a.done_by_id) if a.done_by_id else None,
                        overdue=due.action_late(a.due, a.done_at is not None, self.today))
            for a in actions]
        self._audit(actor, "print", alert.id, None)
        return PrintFile(
            view=view, team=line.team.name, detail=alert.detail, impact=alert.impact,
            outcome_wanted=alert.outcome_wanted, outcome=alert.outcome,
            closed_at=alert.closed_at, events=entries,
            responses=[e for e in entries if e.kind == "responded"], actions=printed,
            printed_by=actor.name, printed_at=self.now)

    def alert_page(self, alert_id: int, username: str) -> AlertPage:
        """An alert as its page shows it to this person: the view (audited, as `show`) with
        people and teams by name, where it stands (who must act by when, in working days;
        the next stage; how and when it closed), and the agreed actions this person may mark
        done (the machine's own check, as marking one would ask)."""
        view = self.show(alert_id, username)
        actor, alert, line = self._acting_on(alert_id, username)
        # (the view's people are read already: `show`)
        by_id, by_username = self._names_of(line.people(), [
            u for e in view.events for u in (e.actor, e.as_cover_for)])

        def named(who: str | None) -> str | None:
            return by_username.get(who, who) if who else who

        cafcass = view.cafcass
        view = view.model_copy(update={
            "iro": named(view.iro), "responsible": named(view.responsible),
            "acknowledged_by": named(view.acknowledged_by), "team": line.team.name,
            "cafcass": cafcass.model_copy(update={"referred_by": named(cafcass.referred_by)})
            if cafcass else None,
            "events": [e.model_copy(update={"actor": named(e.actor) or "",
                                            "as_cover_for": named(e.as_cover_for)})
                       for e in view.events],
            "actions": [a.model_copy(update={"owner": named(a.owner) or ""})
                        for a in view.actions]})
        may_mark: list[int] = []
        for action in self.s.exec(select(Action).where(
                Action.alert_id == alert.id, col(Action.done_at).is_(None))):
            try:
                self._check(alert, actor, line, "action_done",
                            {"action_owner_id": action.owner_id, "action_stage": action.stage})
            except DrpError:
                continue
            may_mark.append(action.no)
        return AlertPage(view=view, standing=self._standing(alert, line, view, by_id, by_username),
                         may_mark_done=may_mark)

    def _standing(self, alert: Alert, line: Line, view: AlertDetail, by_id: dict[int, str],
                  by_username: dict[str, str]) -> Standing:
        """Where an alert stands, in the parts a sentence needs (the ladder's own rules)."""
        open_ = alert.status == "open" and alert.kind != "good_practice"
        responded = alert.stage_responded_at is not None
        on_ladder = alert.stage in self.protocol.keys
        acting = access.responders(self.protocol, alert.stage, line)[0] if on_ladder else None
        must_act = None
        if open_ and not alert.on_hold and not responded and acting is not None:
            must_act = f"{by_id.get(acting, '')}, {self._post_of(line, alert.stage)}"
        late = due.stage_late(open_=open_, on_hold=alert.on_hold, stage_due=alert.stage_due,
                              responded=responded, today=self.today)
        days_left = None
        if must_act and alert.stage_due is not None:
            days_left = (-self.cal.between(alert.stage_due, self.today) if late
                         else self.cal.between(self.today, alert.stage_due))
        iro = access.iro_of(alert, line)
        following = self.protocol.next_stage(alert.stage) if on_ladder else None
        closing = None
        if not open_ and alert.kind != "good_practice" and alert.status != "open":
            closing = self.s.exec(select(Event).where(
                Event.alert_id == alert.id, col(Event.kind).in_(("resolved", "withdrawn")))
                .order_by(col(Event.seq).desc())).first()
        dates = self.list_dates([known_id(alert.id)])[known_id(alert.id)]
        resolution_left = None
        if open_ and alert.resolution_due is not None and not alert.on_hold:
            resolution_left = self.cal.between(self.today, alert.resolution_due)
        return Standing(
            open=open_, must_act=must_act, act_by=alert.stage_due if must_act else None,
            working_days_left=days_left, stage_late=late,
            awaiting_decision=(by_id.get(iro) if iro else view.iro)
            if open_ and responded and not alert.on_hold else None,
            responded_on=dates["responded_on"] if responded else None,  # type: ignore[arg-type]
            next_stage=following.title if following else None,
            cafcass=self.protocol.cafcass.title,
            resolution_working_days_left=resolution_left,
            closed_at=alert.closed_at if closing else None,
            closed_by=by_username.get(closing.actor, closing.actor) if closing else None,
            working_days_open=int(dates["days_open"] or 0))  # type: ignore[arg-type]

    def _post_of(self, line: Line, stage_key: str) -> str:
        """Where the person responsible at a stage works, by name: the child's team for the
        team's posts, the service for the service's, the council above."""
        role = self.protocol.stage(stage_key).responsible
        if role in (Role.social_worker, Role.team_manager):
            return line.team.name
        if role in (Role.service_manager, Role.head_of_service):
            return line.service.name
        return line.council.name if line.council is not None else line.service.name


SEARCH_CANDIDATES = 2000  # children whose reference starts with the text, read at most
SEARCH_SHOWN = 50  # of those this person may see, listed at most


@dataclass(frozen=True)
class ChildAlert:
    """One alert (or good-practice record) on a child's page."""

    id: int
    kind: str
    status: str
    stage: str
    stage_title: str
    summary: str
    raised_at: datetime
    stage_due: date | None
    resolution_due: date | None
    closed_at: datetime | None
    theme: str | None
    iro: str  # by name
    responsible: str | None  # by name, while open
    overdue: bool
    on_hold: bool
    hold_until: date | None
    referred: bool
    linked: list[tuple[int, str]]  # (alert, child's reference) the person may see


@dataclass(frozen=True)
class ChildFile:
    ref: str
    active: bool
    team: str  # names, not keys
    service: str
    iro: str
    social_worker: str | None
    open: list[ChildAlert]
    past: list[ChildAlert]
    good_practice: list[ChildAlert]


@dataclass(frozen=True)
class Found:
    """What a search found that the person may see: an alert by number, children by
    reference (`exact`: the one whose reference is the text, whatever its case)."""

    alert: int | None
    children: list[str]
    exact: str | None


@dataclass(frozen=True)
class PrintEntry:
    at: datetime
    who: str  # by name
    kind: str
    as_cover_for: str | None
    from_stage: str | None
    to_stage: str | None
    comment: str | None


@dataclass(frozen=True)
class PrintAction:
    no: int
    text: str
    owner: str
    due: date
    stage_title: str
    done_at: datetime | None
    done_by: str | None
    overdue: bool


@dataclass(frozen=True)
class PrintFile:
    view: AlertView  # people by name
    team: str
    detail: str | None
    impact: str | None
    outcome_wanted: str | None
    outcome: str | None
    closed_at: datetime | None
    events: list[PrintEntry]
    responses: list[PrintEntry]
    actions: list[PrintAction]
    printed_by: str
    printed_at: datetime


@dataclass(frozen=True)
class Standing:
    """Where an open alert stands, or how a closed one ended (people by name)."""

    open: bool
    must_act: str | None  # "Tom Jones, North Team 1": whose response the stage awaits
    act_by: date | None
    working_days_left: int | None  # negative: overdue by that many working days
    stage_late: bool  # due.stage_late
    awaiting_decision: str | None  # the IRO, when the stage has answered
    responded_on: date | None
    next_stage: str | None  # its title; None at the last stage
    cafcass: str  # what follows the last stage (the IRO may refer)
    resolution_working_days_left: int | None
    closed_at: datetime | None
    closed_by: str | None
    working_days_open: int  # to today, or to its closing


@dataclass(frozen=True)
class AlertPage:
    view: AlertDetail  # people and the team by name
    standing: Standing
    may_mark_done: list[int]  # the agreed actions this person may mark done
