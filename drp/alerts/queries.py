"""What people read: an alert, lists, the inbox, what they may do, whom an action may be
given to. Every view and list writes an access-log row (who, what, when) in the same unit of
work."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, select

from .. import audit
from ..errors import BadValue
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
