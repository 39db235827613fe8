"""Replaying the event log: each alert's events, and the alert as it stood at any instant.

The figures (figures.py, detail.py) are computed from these histories, so a later transfer,
hold or rename never rewrites a past period: each event carries the child's team and IRO at
its moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from ..models import Alert, Child, Event, Person, Service, Team

CLOSING = {"resolved": "resolved", "withdrawn": "withdrawn"}
ENTERING = ("raised", "escalated", "auto_escalated")
# A referral to Cafcass runs alongside the local process: an event, not an outcome (events
# written before migration 0007 name the Cafcass key as their stage; the stage is unchanged).
REFERRED = "referred"
CAFCASS_RESPONSE = "cafcass_response"


@dataclass
class History:
    """An alert and its events. `team`, `service` and `iro`: the child's now, for events
    written before migration 0007 (which carry no team or IRO of their own)."""

    alert: Alert
    team: str
    service: str
    events: list[Event] = field(default_factory=list)
    iro: str = ""

    def team_at(self, e: Event) -> str:
        return e.team or self.team

    def iro_at(self, e: Event) -> str:
        return e.iro or self.iro


def local(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def load(session: Session, until: datetime) -> list[History]:
    rows = session.exec(
        select(Alert, Team.key, Service.key, Person.username)
        .join(Child, col(Child.id) == Alert.child_id)
        .join(Team, col(Team.id) == Child.team_id)
        .join(Service, col(Service.id) == Team.service_id)
        .join(Person, col(Person.id) == Child.iro_id)
        .where(col(Alert.raised_at) < until).order_by(col(Alert.id))).all()
    histories = {a.id: History(a, team, service, iro=iro) for a, team, service, iro in rows}
    events = session.exec(select(Event).where(col(Event.at) < until)
                          .order_by(col(Event.alert_id), col(Event.seq))).all()
    for e in events:
        if e.alert_id in histories:
            histories[e.alert_id].events.append(e)
    return list(histories.values())


@dataclass(frozen=True)
class Names:
    """Today's names for the keys events carry: a team's (and its service), a service's and a
    person's. Figures stay with the key an event recorded; a renamed team shows its new name."""

    teams: dict[str, tuple[str, str]] = field(default_factory=dict)  # key: (name, service)
    services: dict[str, str] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)

    def team(self, key: str) -> str:
        return self.teams[key][0] if key in self.teams else key

    def service_of(self, team: str) -> str:
        return self.teams[team][1] if team in self.teams else ""

    def service(self, key: str) -> str:
        return self.services.get(key, key)

    def person(self, username: str) -> str:
        return self.people.get(username, username)


def names_of(session: Session) -> Names:
    return Names(
        teams={k: (n, s) for k, n, s in session.exec(
            select(Team.key, Team.name, Service.key)
            .join(Service, col(Service.id) == Team.service_id)).all()},
        services=dict(session.exec(select(Service.key, Service.name)).all()),
        people=dict(session.exec(select(Person.username, Person.name)).all()))


def services_of_teams(session: Session) -> dict[str, str]:
    """Each team's service (key to key), for figures by service from events' teams."""
    return dict(session.exec(select(Team.key, Service.key)
                             .join(Service, col(Service.id) == Team.service_id)).all())


def _migrated_clock(alert: Alert, at: datetime) -> date | None:
    """The formal clock for events written before migration 0007, whose data carry the old
    clock (from raising): the alert's own, recomputed by the migration, once it had begun."""
    started = alert.formal_since is not None and alert.formal_since <= at.date()
    return alert.resolution_due if started else None


@dataclass
class Snapshot:
    status: str
    stage: str
    stage_due: date | None
    resolution_due: date | None
    on_hold: bool
    responded: bool


def state_at(h: History, when: datetime) -> Snapshot | None:
    """An alert as it stood at an instant (None when not yet raised)."""
    snap: Snapshot | None = None
    snapshots = False
    for e in h.events:
        if e.at >= when:
            break
        data = e.data or {}
        if snap is None:
            snap = Snapshot("open", e.to_stage or "", None, None, False, False)
        if e.kind in CLOSING:
            snap.status = CLOSING[e.kind]
        elif e.kind == "reopened":
            snap.status = "open"
        if e.to_stage and e.kind != REFERRED:
            if e.kind in ("escalated", "auto_escalated", "reopened", "raised"):
                snap.responded = False
            snap.stage = e.to_stage
        if e.kind == "responded":
            snap.responded = True
        if "stage_due" in data:
            snapshots = True
            snap.stage_due = date.fromisoformat(data["stage_due"]) if data["stage_due"] else None
        if "resolution_due" in data:
            snap.resolution_due = (_migrated_clock(h.alert, e.at) if e.team is None
                                   else date.fromisoformat(data["resolution_due"])
                                   if data["resolution_due"] else None)
        if "on_hold" in data:
            snap.on_hold = bool(data["on_hold"])
        elif e.kind in ("held", "resumed"):
            snap.on_hold = e.kind == "held"
    if snap is not None and not snapshots:  # events written before clocks were kept in them
        snap.stage_due, snap.resolution_due = h.alert.stage_due, h.alert.resolution_due
    return snap


def pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 1)


def buckets(days: list[int]) -> dict[str, int]:
    edges = [(0, 5), (6, 10), (11, 15), (16, 20), (21, 30), (31, 10**6)]
    return {(f"{lo}-{hi}" if hi < 10**6 else f"{lo}+"): sum(1 for d in days if lo <= d <= hi)
            for lo, hi in edges}

