"""What people read: an alert, lists, the inbox, what they may do, whom an action may be
given to. Every view and list writes an access-log row (who, what, when) in the same unit of
work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import col, select

from .. import audit
from ..errors import BadValue, NotFound
from ..ladder import access, due
from ..ladder.access import Actor, Line
from ..ladder.machine import permitted_triggers
from ..models import (
    Action,
    Alert,
    AlertLink,
    Child,
    Council,
    Event,
    Person,
    Referral,
    Service,
    Team,
)
from ..schemas import ActionView, AlertDetail, AlertView, CafcassView, EventView
from .unit import UnitOfWork, known_id


class Queries(UnitOfWork):
    def _view(self, alert: Alert, child: Child, team: Team, names: dict[int, str],
              line: Line | None, referral: Referral | None = None) -> dict[str, Any]:
        responsible = None
        if alert.status == "open" and line is not None:
            rid = access.responsible_id(self.protocol, alert.stage, line)
            responsible = names.get(rid) if rid else None
            responsible = responsible or self._username(rid)

        def name(pid: int | None) -> str | None:
            return (names.get(pid) or self._username(pid)) if pid else None

        cafcass = None
        if referral is not None:
            cafcass = CafcassView(
                referred_on=referral.referred_on, referred_by=name(referral.referred_by_id) or "",
                legal_advice=referral.legal_advice, advised_on=referral.advised_on,
                reason=referral.reason, response=referral.response,
                response_note=referral.response_note, responded_on=referral.responded_on)
        return {
            "kind": alert.kind, "cafcass": cafcass, "formal_since": alert.formal_since,
            "stage_responded": alert.stage_responded_at is not None,
            "acknowledged_by": name(alert.acknowledged_by_id),
            "acknowledged_at": alert.acknowledged_at,
            "id": alert.id, "child": child.ref, "status": alert.status, "stage": alert.stage,
            "iro": names.get(alert.iro_id) or self._username(alert.iro_id),
            "responsible": responsible, "theme": alert.theme, "raised_at": alert.raised_at,
            "stage_due": alert.stage_due if alert.status == "open" else None,
            "resolution_due": alert.resolution_due, "overdue": due.alert_overdue(alert, self.today),
            "summary": alert.summary, "stage_title": self.protocol.title(alert.stage),
            "on_hold": alert.on_hold, "hold_until": alert.hold_until, "team": team.key,
        }

    def _audit(self, actor: Actor, action: str, alert_id: int | None, detail: str | None,
               shown: list[int] | None = None) -> None:
        """The access-log row of a view, or of a list with one `listed` row per alert shown
        (`shown`), and where the request came from."""
        if shown is not None:
            via = self.origin.via if self.origin is not None else None
            detail = f"{len(shown)} alerts shown, {detail}" + (f" ({via})" if via else "")
        audit.record(self.s, self.origin, at=self.now, actor=actor.username, action=action,
                     alert_id=alert_id, detail=detail, shown=shown or ())

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
        referral = self.s.exec(select(Referral).where(Referral.alert_id == alert.id)).first()
        view = self._view(alert, line.child, line.team, {}, line, referral)
        related = [o for o in self.s.exec(select(AlertLink.other_id).where(
            AlertLink.alert_id == alert.id).order_by(col(AlertLink.other_id)))]
        others = self.s.exec(select(Alert.id, Alert.iro_id).where(
            Alert.child_id == alert.child_id, Alert.id != alert.id).order_by(col(Alert.id))).all()
        return AlertDetail(
            **view, detail=alert.detail, impact=alert.impact,
            outcome_wanted=alert.outcome_wanted, outcome=alert.outcome,
            related=related,
            child_alerts=[o for o, iro in others if o is not None
                          and access.can_see_child(actor, line.child, iro)],
            events=[EventView(at=e.at, actor=e.actor, kind=e.kind, from_stage=e.from_stage,
                              to_stage=e.to_stage, comment=e.comment, team=e.team, iro=e.iro,
                              as_cover_for=e.as_cover_for, data=e.data, channel=e.channel,
                              os_user=e.os_user, client=e.client) for e in events],
            actions=[
                ActionView(
                    no=a.no, text=a.text, owner=self._username(a.owner_id) or "", due=a.due,
                    stage=a.stage, done=a.done_at is not None, done_at=a.done_at,
                    overdue=due.action_late(a.due, a.done_at is not None, self.today),
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
        asked = {"status": status or "all", "team": team, "stage": stage, "theme": theme,
                 "service": service, "mine": mine or None}
        self._audit(actor, "list", None, ", ".join(f"{k}={v}" for k, v in asked.items() if v),
                    [known_id(v.id) for v in out])
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
            query = query.where(col(Alert.status).in_(("resolved", "withdrawn", "closed")))
        elif status is not None:
            raise BadValue(f"--status {status!r} is not known; use open, overdue or closed")
        rows = self.s.exec(query).all()
        names = {pid: u for pid, u in self.s.exec(select(Person.id, Person.username)) if pid}
        services = {s.id: s for s in self.s.exec(select(Service))} if rows else {}
        council = self.s.get(Council, 1) if rows else None
        ids = [a.id for a, _c, _t in rows]
        referrals = {r.alert_id: r for r in self.s.exec(select(Referral).where(
            col(Referral.alert_id).in_(ids)))} if rows else {}
        related: dict[int, list[int]] = {}
        links = select(AlertLink.alert_id, AlertLink.other_id).where(
            col(AlertLink.alert_id).in_(ids)).order_by(col(AlertLink.other_id))
        for a, o in self.s.exec(links) if rows else ():
            related.setdefault(a, []).append(o)
        # The children's other alerts (the child is visible; an alert of another IRO's too,
        # as `show` decides with can_see_child).
        siblings: dict[int, list[tuple[int, int]]] = {}
        for aid, cid, iro in self.s.exec(select(Alert.id, Alert.child_id, Alert.iro_id).where(
                col(Alert.child_id).in_({c.id for _a, c, _t in rows})).order_by(
                col(Alert.id))) if rows else ():
            siblings.setdefault(cid, []).append((known_id(aid), iro))
        lines: dict[int, Line] = {}
        out = []
        for alert, child, team_row in rows:
            assert child.id is not None
            line = lines.get(child.id)
            if line is None:
                line = lines[child.id] = Line.build(child, team_row,
                                                    services[team_row.service_id], council,
                                                    self.deputies)
            view = AlertView(**self._view(alert, child, team_row, names, line,
                                          referrals.get(known_id(alert.id))),
                             related=related.get(known_id(alert.id), []),
                             child_alerts=[o for o, iro in siblings.get(child.id, [])
                                           if o != alert.id
                                           and access.can_see_child(actor, child, iro)])
            if status == "overdue" and not view.overdue:
                continue
            out.append((view, alert, line))
        return actor, out

    def inbox(self, username: str) -> list[AlertView]:
        """Open alerts awaiting this person's response (`access.awaits_response_from`),
        oldest due first."""
        actor, rows = self._listing(username, "open")
        waiting = [view for view, alert, line in rows
                   if access.awaits_response_from(actor, self.protocol, alert, line)]
        self._audit(actor, "list", None, "inbox", [known_id(v.id) for v in waiting])
        return sorted(waiting, key=lambda v: (v.stage_due or date.max, v.id))

    def allowed(self, alert_id: int, username: str) -> list[str]:
        """What this person may do to this alert now (the triggers the pages offer)."""
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        adapter = self._adapter(alert, actor, line)
        return [t for t in permitted_triggers(self.protocol, adapter)
                if t not in ("remind", "action_done")]

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

    # -- a child's page, search, the print view (issue 16) --------------------------------------
    def _names(self) -> tuple[dict[int, str], dict[str, str]]:
        """Everyone's name, by id and by username (people appear by name on the pages)."""
        by_id: dict[int, str] = {}
        by_username: dict[str, str] = {access.SYSTEM: access.SYSTEM_ACTOR.name}
        for pid, username, full in self.s.exec(select(Person.id, Person.username, Person.name)):
            if pid is not None:
                by_id[pid] = full
            by_username[username] = full
        return by_id, by_username

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
        by_id, _ = self._names()
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
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        by_id, by_username = self._names()
        referral = self.s.exec(select(Referral).where(Referral.alert_id == alert.id)).first()
        view = AlertView(**self._view(alert, line.child, line.team, by_id, line, referral))

        def named(username: str | None) -> str | None:
            return by_username.get(username, username) if username else None

        events = [
            PrintEntry(at=e.at, who=named(e.actor) or "", kind=e.kind,
                       as_cover_for=named(e.as_cover_for), from_stage=e.from_stage,
                       to_stage=e.to_stage, comment=e.comment)
            for e in self.s.exec(select(Event).where(Event.alert_id == alert.id).order_by(
                col(Event.seq)))]
        actions = [
            PrintAction(no=a.no, text=a.text, owner=by_id.get(a.owner_id, ""), due=a.due,
                        stage_title=self.protocol.title(a.stage), done_at=a.done_at,
                        done_by=by_id.get(a.done_by_id) if a.done_by_id else None,
                        overdue=due.action_late(a.due, a.done_at is not None, self.today))
            for a in self.s.exec(select(Action).where(Action.alert_id == alert.id).order_by(
                col(Action.no)))]
        self._audit(actor, "print", alert.id, None)
        return PrintFile(
            view=view, team=line.team.name, detail=alert.detail, impact=alert.impact,
            outcome_wanted=alert.outcome_wanted, outcome=alert.outcome,
            closed_at=alert.closed_at, events=events,
            responses=[e for e in events if e.kind == "responded"], actions=actions,
            printed_by=actor.name, printed_at=self.now)


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
