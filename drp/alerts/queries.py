"""What people read: an alert, lists, the inbox, what they may do, whom an action may be
given to. Every view and list writes an access-log row (who, what, when) in the same unit of
work."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, func
from sqlalchemy import exists as sa_exists
from sqlmodel import col, select

from .. import audit, db
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
    Referral,
    Service,
    Team,
)
from ..schemas import ActionView, AlertDetail, AlertView, CafcassView, EventView
from .listing import (
    STANDING_COLUMNS,
    Standing,
    Window,
    alert_query,
    has_status,
    list_order,
    window,
)
from .unit import UnitOfWork, known_id

HOLD_ENDING_WORKING_DAYS = 5  # a hold ending within this many working days waits for the IRO


class Queries(UnitOfWork):
    def _listed(self) -> dict[tuple[str, str], int]:
        """How many rows a work list just shown held, by (list, username), until the unit
        writes: its count in the page's frame (`work_counts`) is not worked out again."""
        return self.read_memo().setdefault("listed", {})  # type: ignore[no-any-return]

    def _view(self, alert: Alert, child: Child, team: Team, names: dict[int, str],
              line: Line | None, referral: Referral | None = None,
              standing: Standing | None = None) -> dict[str, Any]:
        responsible = None
        if alert.status == "open" and line is not None:
            rid = access.responsible_id(self.protocol, alert.stage, line)
            responsible = names.get(rid) if rid else None
            responsible = responsible or self._username(rid)

        def name(pid: int | None) -> str | None:
            return (names.get(pid) or self._username(pid)) if pid else None

        # (as the list's order and filters read it; the list may have read it already)
        standing = standing or Standing.of(alert, self.today)
        cafcass = None
        if referral is not None:
            cafcass = CafcassView(
                referred_on=referral.referred_on, referred_by=name(referral.referred_by_id) or "",
                legal_advice=referral.legal_advice, advised_on=referral.advised_on,
                reason=referral.reason, response=referral.response,
                response_note=referral.response_note, responded_on=referral.responded_on)
        return {
            "kind": alert.kind, "cafcass": cafcass, "formal_since": alert.formal_since,
            "stage_responded": standing.stage_responded,
            "acknowledged_by": name(alert.acknowledged_by_id),
            "acknowledged_at": alert.acknowledged_at,
            "id": alert.id, "child": child.ref, "status": alert.status, "stage": alert.stage,
            "iro": names.get(alert.iro_id) or self._username(alert.iro_id),
            "responsible": responsible, "theme": alert.theme, "raised_at": alert.raised_at,
            "stage_due": standing.stage_due,
            "resolution_due": alert.resolution_due, "overdue": standing.overdue,
            "summary": alert.summary, "stage_title": self.protocol.title(alert.stage),
            "on_hold": alert.on_hold, "hold_until": alert.hold_until, "team": team.key,
        }

    def _audit(self, actor: Actor, action: str, alert_id: int | None, detail: str | None,
               shown: list[int] | None = None, of: Window | None = None) -> None:
        """The access-log row of a view, or of a list with one `listed` row per alert shown
        (`shown`: on its page `of`, where the list has more pages), and where the request
        came from."""
        if shown is not None:
            via = self.origin.via if self.origin is not None else None
            count = f"{len(shown)} alerts shown" + (
                f" (page {of.number} of {of.pages})" if of is not None and of.pages > 1 else "")
            detail = f"{count}, {detail}" + (f" ({via})" if via else "")
        audit.record(self.s, self.origin, at=self.now, actor=actor.username, action=action,
                     alert_id=alert_id, detail=detail, shown=shown or ())

    def _audit_list(self, actor: Actor, detail: str, ids: list[int], page: int | None) -> None:
        """The access-log rows of a work list whose rows are of the alerts `ids` (in its
        order; an alert may have several rows): the alerts of page `page`'s rows shown
        (`listing.window`), or all of them (None), each once."""
        on = window(len(ids), page)
        self._audit(actor, "list", None, detail, list(dict.fromkeys(ids[on.rows])), on)

    def show(self, alert_id: int, username: str) -> AlertDetail:
        actor, alert, line = self._acting_on(alert_id, username)
        events = self.s.exec(
            select(Event).where(Event.alert_id == alert.id).order_by(col(Event.seq))
        ).all()
        actions = self.s.exec(
            select(Action).where(Action.alert_id == alert.id).order_by(col(Action.no))
        ).all()
        self._audit(actor, "view", alert.id, None)
        referral = self.s.exec(select(Referral).where(Referral.alert_id == alert.id)).first()
        self.directory.load(self._named_by(alert, line, referral, actions))  # one query
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
                              **({"os_user": e.os_user, "client": e.client}
                                 if access.may_see_origin(actor, e.actor) else {}))
                    for e in events],
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
                 where: ColumnElement[bool] | None = None,
                 ) -> tuple[Actor, list[tuple[AlertView, Alert, Line]]]:
        """A few queries whatever the number of alerts: the alerts with their children and
        teams in one (`_alert_rows`), then what their views name (`_views`).
        `status`: open, overdue, on_hold, awaiting_iro (the stage has answered, the IRO
        decides), closed or None (any); `stage` may be the Cafcass referral's key (the alerts
        referred, whatever their stage); `where`: a further clause over Alert."""
        actor, rows = self._alert_rows(username, status, team=team, stage=stage, theme=theme,
                                       service=service, mine=mine, where=where)
        return actor, self._views(actor, rows, status)

    def _alert_rows(self, username: str, status: str | None, *, team: str | None = None,
                    stage: str | None = None, theme: str | None = None,
                    service: str | None = None, mine: bool = False,
                    where: ColumnElement[bool] | None = None,
                    ) -> tuple[Actor, list[tuple[Alert, Child, Team]]]:
        """The alerts this person may see with their children and teams, in one query, as
        `_listing` filters them (`listing.alert_query`)."""
        actor = self.actor(username)
        query = alert_query(actor, self.protocol, (Alert, Child, Team), status, team=team,
                            stage=stage, theme=theme, service=service, mine=mine, where=where)
        return actor, [(a, c, t) for a, c, t in self.s.exec(query)]

    def _standings(self, username: str, status: str | None, *, team: str | None = None,
                   stage: str | None = None, theme: str | None = None,
                   service: str | None = None, mine: bool = False,
                   where: ColumnElement[bool] | None = None,
                   ) -> tuple[Actor, list[tuple[Standing, str]]]:
        """The `Standing` (and stage) of each alert `_alert_rows` would give, read as plain
        rows of the columns a standing takes: a long list (a director's every alert) is
        filtered, counted and put in order from these, and only its page's rows are then
        read whole."""
        actor = self.actor(username)
        query = alert_query(actor, self.protocol, STANDING_COLUMNS, status, team=team,
                            stage=stage, theme=theme, service=service, mine=mine, where=where)
        today = self.today
        return actor, [(Standing.of(row, today), row.stage)
                       for row in self.s.execute(query)]

    def _views(self, actor: Actor, rows: list[tuple[Alert, Child, Team]], status: str | None,
               standings: dict[int, Standing] | None = None,
               ) -> list[tuple[AlertView, Alert, Line]]:
        """The views of `rows` (those with `status`), with their lines: the services, the
        council, the rows' referrals, links and children's other alerts, and the people they
        name, a query each. `standings`: the rows' `Standing`, by id, where the caller has
        read them."""
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
        for _alert, child, team_row in rows:
            assert child.id is not None
            if child.id not in lines:
                lines[child.id] = Line.build(child, team_row, services[team_row.service_id],
                                             council, self.deputies)
        # The people the rows name (their IRO, who is responsible, who acknowledged, who
        # referred), not everyone: a list's cost follows its rows, not the organisation's size.
        self.directory.load(pid for alert, child, _t in rows for pid in (
            alert.iro_id, alert.acknowledged_by_id,
            access.responsible_id(self.protocol, alert.stage, lines[known_id(child.id)]),
            getattr(referrals.get(known_id(alert.id)), "referred_by_id", None)))
        names = {pid: p.username for pid, p in self.directory.people.items()}
        out = []
        for alert, child, team_row in rows:
            assert child.id is not None
            line = lines[child.id]
            view = AlertView(**self._view(alert, child, team_row, names, line,
                                          referrals.get(known_id(alert.id)),
                                          (standings or {}).get(known_id(alert.id))),
                             related=related.get(known_id(alert.id), []),
                             child_alerts=[o for o, iro in siblings.get(child.id, [])
                                           if o != alert.id
                                           and access.can_see_child(actor, child, iro)])
            if not has_status(view, status):
                continue
            out.append((view, alert, line))
        return out

    def inbox(self, username: str, page: int | None = None) -> list[AlertView]:
        """Open alerts awaiting this person's response (`access.awaits_response_from`),
        oldest due first; audited as shown: those of page `page`, or all."""
        actor, rows = self._listing(username, "open",
                                    where=due.awaiting_response_where(self.protocol))
        waiting = sorted((view for view, alert, line in rows
                          if access.awaits_response_from(actor, self.protocol, alert, line)),
                         key=lambda v: (v.stage_due or date.max, v.id))
        self._audit_list(actor, "inbox", [known_id(v.id) for v in waiting], page)
        self._listed()["inbox", username] = len(waiting)
        return waiting

    def open_concerns(self, username: str, ref: str) -> list[int]:
        """The ids of the child's open concerns, which raising another names (as the raise
        command reads them: `child_by_ref`); none where the command refuses before it names
        them (no such child, or one no longer active, or not this person's to raise for). Not
        audited: numbers only, as the raise command's refusal gives them."""
        actor = self.actor(username)
        child, _line, open_ids = self.child_by_ref(ref)
        if child is None or not child.active or not access.may_raise(actor, child):
            return []
        return open_ids

    # -- each person's work lists (and their counts, for the navigation) ----------------------
    def hold_horizon(self) -> date:
        """A hold ending by this day waits for the IRO's decision."""
        return self.cal.add(self.today, HOLD_ENDING_WORKING_DAYS)

    def awaiting_decision(self, username: str, page: int | None = None, **filters: Any
                          ) -> list[tuple[AlertView, str]]:
        """Open alerts waiting for this person as their allocated IRO (or cover), with why
        (`access.awaits_decision_from`): a response received, overdue, a hold ending; in the
        lists' order, audited as shown (those of page `page`, or all)."""
        actor = self.actor(username)
        horizon = self.hold_horizon()
        status = filters.pop("status", None) or "open"
        _actor, rows = self._listing(username, status, where=access.decision_candidates(
            actor, self.today, horizon), **filters)
        out = sorted(((view, why) for view, alert, line in rows
                      if (why := access.awaits_decision_from(actor, alert, line, self.today,
                                                             horizon))),
                     key=lambda row: list_order(row[0]))
        self._audit_list(actor, "awaiting decision", [known_id(v.id) for v, _ in out], page)
        if status == "open" and not any(filters.values()):  # the whole list: its count
            self._listed()["decision", username] = len(out)
        return out

    def _responded_where(self, actor: Actor) -> ColumnElement[bool]:
        """Alerts this person responded to (in their own right or as cover) that still have
        an agreed action open."""
        # Read by alert, among those with an action open: not every response in the
        # council's history (`db.met_by_many`).
        said = sa_exists().where(col(Event.alert_id) == Alert.id,
                                 db.met_by_many(col(Event.kind) == "responded"),
                                 col(Event.actor) == actor.username)
        open_actions = select(Action.alert_id).where(col(Action.done_at).is_(None))
        return and_(col(Alert.id).in_(open_actions), said)

    def responded_open(self, username: str, page: int | None = None, **filters: Any
                       ) -> list[AlertView]:
        """Alerts this person responded to whose agreed actions are not all done (so a
        manager finds the alert again to mark an action done); in the lists' order, audited
        as shown (those of page `page`, or all)."""
        actor = self.actor(username)
        _a, rows = self._listing(username, filters.pop("status", None),
                                 where=self._responded_where(actor), **filters)
        out = sorted((view for view, _alert, _line in rows), key=list_order)
        self._audit_list(actor, "responded, actions open", [known_id(v.id) for v in out], page)
        return out

    def _owned_where(self, actor: Actor) -> ColumnElement[bool]:
        return and_(col(Action.done_at).is_(None),
                    col(Action.owner_id).in_([actor.id, *actor.covering] if actor.id else []))

    def my_actions(self, username: str, page: int | None = None, **filters: Any
                   ) -> list[tuple[ActionView, AlertView]]:
        """The agreed actions this person owns (or covers) not yet done, soonest due first,
        each with its alert; audited as shown: the alerts of page `page`'s actions, or all."""
        actor = self.actor(username)
        owned = self._owned_where(actor)
        _a, rows = self._listing(username, filters.pop("status", None), where=col(Alert.id).in_(
            select(Action.alert_id).where(owned)), **filters)
        # (a withdrawn or held alert's actions are not followed up: not this person's work now)
        views = {v.id: v for v, alert, _line in rows if due.action_tracked(alert)}
        actions = self.s.exec(select(Action).where(owned, col(Action.alert_id).in_(
            list(views))).order_by(col(Action.due), col(Action.alert_id), col(Action.no))).all()
        out = [(ActionView(no=a.no, text=a.text, owner=username, due=a.due, stage=a.stage,
                           done=False, done_at=None,
                           overdue=due.action_late(a.due, False, self.today)),
                views[a.alert_id]) for a in actions]
        self._audit_list(actor, "my actions", [known_id(v.id) for _a, v in out], page)
        return out

    def work_counts(self, username: str) -> dict[str, int]:
        """How many alerts wait in each of this person's work lists, a query or two per
        count whatever the number of alerts (the rows of the inbox and the decisions are
        narrowed in SQL, then the access policy decides on rows already read). Not audited:
        a count shows no record (the lists it links to are), and every page shows the counts,
        so auditing them made each page view a write of one row per alert counted."""
        actor = self.actor(username)
        counts: dict[str, int] = {}
        roles = actor.roles
        listed = self._listed()  # (a work list this page has just shown: its length)

        def lines(where: ColumnElement[bool]) -> list[tuple[Alert, Line]]:
            council = self.s.get(Council, 1)
            query = (select(Alert, Child, Team, Service)
                     .join(Child, col(Child.id) == Alert.child_id)
                     .join(Team, col(Team.id) == Child.team_id)
                     .join(Service, col(Service.id) == Team.service_id)
                     .where(access.visible_alerts(actor), where))
            return [(a, Line.build(c, t, sv, council, self.deputies))
                    for a, c, t, sv in self.s.exec(query)]

        if roles & access.LINE_SIDE and ("inbox", username) in listed:
            counts["inbox"] = listed["inbox", username]  # the page is the inbox
        elif roles & access.LINE_SIDE:
            waiting = [a.id for a, line in lines(due.awaiting_response_where(self.protocol))
                       if access.awaits_response_from(actor, self.protocol, a, line)]
            counts["inbox"] = len(waiting)
        if roles & access.LINE_SIDE:
            responded = list(self.s.exec(select(Alert.id).join(
                Child, col(Child.id) == Alert.child_id).where(
                access.visible_alerts(actor), self._responded_where(actor))))
            counts["responded"] = len(responded)
        deciding_side = roles & access.IRO_SIDE or actor.covering
        if deciding_side and ("decision", username) in listed:  # the page is that list
            counts["decision"] = listed["decision", username]
        elif deciding_side:
            horizon = self.hold_horizon()
            deciding = [a.id for a, line in lines(access.decision_candidates(
                actor, self.today, horizon))
                if access.awaits_decision_from(actor, a, line, self.today, horizon)]
            counts["decision"] = len(deciding)
        owned = list(self.s.exec(select(Action.alert_id).join(
            Alert, col(Alert.id) == Action.alert_id).join(
            Child, col(Child.id) == Alert.child_id).where(
            access.visible_alerts(actor), self._owned_where(actor),
            due.action_tracked_where())))
        counts["actions"] = len(owned)
        return counts

    def list_dates(self, ids: list[int]) -> dict[int, dict[str, date | int | None]]:
        """For a list's rows (already audited as shown): the day of the last response, the
        day the alert closed, and its working days open (to today, or to its closing)."""
        rows = self.s.exec(select(Event.alert_id, Event.kind, func.max(Event.at)).where(
            col(Event.alert_id).in_(ids), db.met_by_many(col(Event.kind).in_(
                ("responded", "resolved", "withdrawn")))).group_by(
            col(Event.alert_id), col(Event.kind))).all() if ids else []
        found: dict[int, dict[str, date]] = {}
        for aid, kind, at in rows:
            found.setdefault(aid, {})["responded" if kind == "responded" else "closed"] = (
                at.astimezone(self.tz).date())
        raised = {aid: (at, status) for aid, at, status in self.s.exec(select(
            Alert.id, Alert.raised_at, Alert.status).where(col(Alert.id).in_(ids)))}
        out: dict[int, dict[str, date | int | None]] = {}
        for aid in ids:
            days = found.get(aid, {})
            at, status = raised[aid]
            closed = days.get("closed") if status != "open" else None  # (reopened: open)
            start = at.astimezone(self.tz).date()
            out[aid] = {"responded_on": days.get("responded"), "closed_on": closed,
                        "days_open": max(0, self.cal.between(start, closed or self.today))}
        return out

    def names_for_lists(self, username: str, shown: list[AlertView]
                        ) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """The names of the people the list `shown` (listed in this unit of work) names, its
        IROs and who is responsible, by username; and the teams a list may be filtered by
        (key, name): those of the alerts this person may see, by name."""
        actor = self.actor(username)
        wanted = {u for v in shown for u in (v.iro, v.responsible) if u}
        # (`_views` read them into this unit's directory as it made the rows' views)
        people = {p.username: p.name for p in self.directory.people.values()
                  if p.username in wanted}
        teams = self.s.exec(select(Team.key, Team.name).where(col(Team.id).in_(
            select(Child.team_id).join(Alert, col(Alert.child_id) == Child.id).where(
                access.visible_alerts(actor)))).order_by(col(Team.name))).all()
        return people, [(k, n) for k, n in teams]

    def allowed(self, alert_id: int, username: str) -> list[str]:
        """What this person may do to this alert now (the triggers the pages offer)."""
        actor, alert, line = self._acting_on(alert_id, username)
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
        _actor, _alert, line = self._acting_on(alert_id, username)
        ids = [pid for pid in line.by_role.values() if pid]
        self.directory.load(ids)  # (one query for those not read yet)
        out = []
        for pid in dict.fromkeys(ids):
            person = self.directory.people.get(pid)
            if person is not None and person.active:
                out.append((person.username, person.name))
        return out

    # -- a child's page, search, the print view (issue 16) --------------------------------------
    @staticmethod
    def _named_by(alert: Alert, line: Line, referral: Referral | None,
                  actions: Iterable[Action]) -> list[int | None]:
        """The ids of the people an alert's view names: its line's posts with their cover, its
        IRO, who acknowledged, who referred it to Cafcass, who owns and who did its actions."""
        return line.people(alert.iro_id, alert.acknowledged_by_id,
                           referral.referred_by_id if referral else None,
                           *(p for a in actions for p in (a.owner_id, a.done_by_id)))

    def _names_of(self, ids: Iterable[int | None], usernames: Iterable[str | None] = ()
                  ) -> tuple[dict[int, str], dict[str, str]]:
        """The names of the people a page names (people appear by name on the pages), by id
        and by username: those among `ids` and `usernames` not read yet in this unit of work,
        in one query through its directory, not everyone in the organisation."""
        self.directory.load(ids, usernames=usernames)
        people = self.directory.people.values()
        by_id = {known_id(p.id): p.name for p in people}
        by_username = {access.SYSTEM: access.SYSTEM_ACTOR.name,
                       **{p.username: p.name for p in people}}
        return by_id, by_username
