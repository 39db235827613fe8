"""The dispute resolution figures a council publishes, for any period, from the event log.

Every figure is computed by replaying each alert's events, so the state of any alert at any
instant (its status, stage, clocks and holds) is known exactly. Definitions live beside each
figure in DEFINITIONS; docs/reports.md prints them."""

from __future__ import annotations

import calendar as month_calendar
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from ..calendar import WorkingCalendar
from ..ladder import due
from ..ladder.protocol import GOOD_PRACTICE, Protocol, Role
from ..models import Action, Alert, Child, Event, Person, Service, Team
from ..themes import Taxonomy

CLOSING = {"resolved": "resolved", "withdrawn": "withdrawn"}
ENTERING = ("raised", "escalated", "auto_escalated")
# A referral to Cafcass runs alongside the local process: an event, not an outcome (events
# written before migration 0007 name the Cafcass key as their stage; the stage is unchanged).
REFERRED = "referred"
CAFCASS_RESPONSE = "cafcass_response"

DEFINITIONS: dict[str, str] = {
    "raised": "Concerns raised in the period (the date of raising, in local time, falls in"
              " it); good-practice records are counted apart, in good_practice.",
    "reached": "For each stage of the protocol in force, the alerts that entered it in the"
               " period (raising at a stage, escalating or bypassing to it; reopening does"
               " not count), and for cafcass the referrals to Cafcass made in the period.",
    "reached_monthly_average": "reached divided by the number of months in the period.",
    "closed": "Alerts whose last outcome in the period was resolved or withdrawn, whenever"
              " they were raised (a referral to Cafcass is not an outcome: the alert stays"
              " open).",
    "resolved_by_stage": "Of the alerts resolved in the period, the stage at which they were"
                         " resolved (likewise withdrawn_by_stage; referred_from_stage: the"
                         " stage each alert was at when referred to Cafcass in the period).",
    "resolved_informally_or_first_formal_pct": "Of those resolved, the share resolved at"
                                               " the first stage or the first formal stage.",
    "resolved_within_timescale_pct": "Of those resolved, the share resolved on or before"
                                     " their resolution due date: the formal clock's (20"
                                     " working days from the day the alert first entered a"
                                     " formal stage, moved on by holds and agreed"
                                     " extensions), or for an alert resolved informally its"
                                     " informal due date.",
    "resolved_within_stage_timescale_pct": "Of those resolved, the share resolved on or"
                                           " before the due date of the stage at which they"
                                           " were resolved (extensions included).",
    "working_days_to_resolution": "Median and 90th percentile of the working days from"
                                  " raising to resolution, working days on hold excluded.",
    "automatic_escalations": "Escalations drp made because a stage's response was late.",
    "outstanding_at_end": "Alerts open at the end of the period's last day.",
    "overdue_at_end": "Of those, the ones past a due date at that moment: the stage's"
                      " response due date (when no response had been recorded) or, once the"
                      " formal clock has started, the resolution due date; alerts on hold are"
                      " not overdue.",
    "themes": "Alerts raised in the period by theme, with shares of all raised; the main"
              " theme is the most common one. themes_not_set: those raised with no theme.",
    "by_team": "For each team (by_service for each service, by_iro for each IRO): alerts"
               " raised, resolved and outstanding at the end, each under the team and IRO the"
               " child had at that event (the raising, the resolution, the last event before"
               " the end), or the child's current ones for events written before migration"
               " 0007.",
    "actions": "Agreed actions due in the period: how many, how many done on or before their"
               " due date, and the share.",
    "referred_to_director": "Alerts that reached the stage at which the director of"
                            " children's services is responsible, in the period.",
    "referred_to_cafcass": "Referrals to Cafcass made in the period (as cafcass.referred).",
    "cafcass": "referred: referrals to Cafcass made in the period; responses: Cafcass's"
               " responses recorded in the period by response (the last one recorded for"
               " each referral).",
    "good_practice": "Good-practice records made in the period (no figure about concerns"
                     " counts them); good_practice_by_team: the same by the team at the time.",
    "previous": "The same figures for the period of equal length just before (a period of"
                " whole calendar months is shifted back by that many months).",
}


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


def _local(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def previous_period(start: date, end: date) -> tuple[date, date]:
    """Whole months shift back by that many months; other periods by their length."""
    last_day = month_calendar.monthrange(end.year, end.month)[1]
    if start.day == 1 and end.day == last_day:
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        y, m = divmod(start.year * 12 + start.month - 1 - months, 12)
        p_start = date(y, m + 1, 1)
        y2, m2 = divmod(end.year * 12 + end.month - 1 - months, 12)
        p_end = date(y2, m2 + 1, month_calendar.monthrange(y2, m2 + 1)[1])
        return p_start, p_end
    length = end - start + timedelta(days=1)
    return start - length, start - timedelta(days=1)


def months_in(start: date, end: date) -> float:
    return round(((end - start).days + 1) / (365.25 / 12), 2)


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


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 1)


def _buckets(days: list[int]) -> dict[str, int]:
    edges = [(0, 5), (6, 10), (11, 15), (16, 20), (21, 30), (31, 10**6)]
    return {(f"{lo}-{hi}" if hi < 10**6 else f"{lo}+"): sum(1 for d in days if lo <= d <= hi)
            for lo, hi in edges}


def figures(histories: list[History], protocol: Protocol, calendar: WorkingCalendar,
            taxonomy: Taxonomy, tz: ZoneInfo, start: date, end: date,
            actions: list[Action], services: dict[str, str] | None = None) -> dict[str, Any]:
    """The figures for one period. `services`: each team's service (`services_of_teams`);
    without it, by_service uses the child's current service throughout."""
    begin = datetime.combine(start, time.min, tzinfo=tz).astimezone(UTC)
    finish = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    cafcass = protocol.cafcass.key
    stages = [*protocol.keys, cafcass]
    formal = [s.key for s in protocol.stages if s.formal]
    early = {protocol.keys[0], *(formal[:1])}
    director_stages = {s.key for s in protocol.stages if s.responsible == Role.director}

    def in_period(e: Event) -> bool:
        return begin <= e.at < finish

    # Good practice has no ladder and no clock: counted apart, and in no concern's figure.
    good = [h for h in histories if h.alert.kind == GOOD_PRACTICE
            and begin <= h.alert.raised_at < finish]
    histories = [h for h in histories if h.alert.kind != GOOD_PRACTICE]
    raised = [h for h in histories if begin <= h.alert.raised_at < finish]
    reached = {s: 0 for s in stages}
    monthly: dict[str, Counter[str]] = {}
    auto = 0
    closed: dict[str, list[tuple[History, Event]]] = {k: [] for k in CLOSING.values()}
    referrals: list[tuple[History, Event]] = []
    responses: Counter[str] = Counter()
    raising: list[tuple[History, Event]] = []
    for h in histories:
        entered: set[str] = set()
        last_close: Event | None = None
        response: Event | None = None
        for e in h.events:
            if not in_period(e):
                continue
            stage = cafcass if e.kind == REFERRED else e.to_stage
            if ((e.kind in ENTERING and e.to_stage in protocol.keys) or e.kind == REFERRED) \
                    and stage is not None and stage not in entered:
                entered.add(stage)
                reached[stage] += 1
                month = _local(e.at, tz).strftime("%Y-%m")
                monthly.setdefault(month, Counter())[stage] += 1
            if e.kind == "raised":
                raising.append((h, e))
            elif e.kind == REFERRED:
                referrals.append((h, e))
            elif e.kind == CAFCASS_RESPONSE:
                response = e
            if e.kind == "auto_escalated":
                auto += 1
            if e.kind in CLOSING:
                last_close = e
            elif e.kind == "reopened" and last_close is not None:
                last_close = None
        if last_close is not None:
            closed[CLOSING[last_close.kind]].append((h, last_close))
        if response is not None and (response.data or {}).get("response"):
            responses[str((response.data or {})["response"])] += 1

    def measured_against(h: History, e: Event) -> date | None:
        """The due date a resolution is measured against: the formal clock's, or for an
        alert resolved informally its informal due date (each as it stood then)."""
        data = e.data or {}
        if e.from_stage in protocol.keys and not protocol.is_formal(e.from_stage):
            stage_due = data.get("stage_due")
            return date.fromisoformat(stage_due) if stage_due else h.alert.stage_due
        if e.team is None or "resolution_due" not in data:  # before migration 0007
            return h.alert.resolution_due
        return (date.fromisoformat(data["resolution_due"]) if data["resolution_due"]
                else h.alert.resolution_due)

    resolved = closed["resolved"]
    within = within_stage = 0
    days: list[int] = []
    for h, e in resolved:
        data = e.data or {}
        day = _local(e.at, tz)
        stage_due = data.get("stage_due")
        resolution_due = measured_against(h, e)
        within += resolution_due is not None and due.on_time(day, resolution_due)
        within_stage += stage_due is not None and due.on_time(day, date.fromisoformat(stage_due))
        held = sum(int((x.data or {}).get("held_working_days", 0)) for x in h.events
                   if x.kind == "resumed" and x.at <= e.at)
        days.append(max(0, calendar.between(_local(h.alert.raised_at, tz), day) - held))

    def by_stage(items: list[tuple[History, Event]]) -> dict[str, int]:
        counts = Counter(e.from_stage or "" for _, e in items)
        return {s: counts[s] for s in stages if counts[s]}

    outstanding = overdue = 0
    open_at_end: list[tuple[History, Event]] = []  # with the last event before the end
    for h in histories:
        snap = state_at(h, finish)
        if snap is None or snap.status != "open":
            continue
        outstanding += 1
        open_at_end.append((h, [e for e in h.events if e.at < finish][-1]))
        overdue += due.is_overdue(open_=True, on_hold=snap.on_hold, stage_due=snap.stage_due,
                                  responded=snap.responded,
                                  resolution_due=snap.resolution_due, today=end)

    theme_counts = Counter(h.alert.theme for h in raised if h.alert.theme)
    themes = {k: {"count": v, "share_pct": _pct(v, len(raised)), "title": taxonomy.title(k)}
              for k, v in theme_counts.most_common()}

    # By team, service and IRO: each event under the team and IRO the child had at that time.
    def service_at(h: History, e: Event) -> str:
        team = h.team_at(e)
        return (services or {}).get(team, h.service if team == h.team else team)

    def grouped(key: Callable[[History, Event], str]) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {}
        for figure, items in (("raised", raising), ("resolved", resolved),
                              ("outstanding_at_end", open_at_end)):
            for h, e in items:
                if figure != "raised" or begin <= h.alert.raised_at < finish:
                    out.setdefault(key(h, e), Counter())[figure] += 1
        return {k: {m: v.get(m, 0) for m in ("raised", "resolved", "outstanding_at_end")}
                for k, v in sorted(out.items())}

    good_by_team = Counter(h.team_at(h.events[0]) if h.events else h.team for h in good)
    due_actions = [a for a in actions if start <= a.due <= end]
    on_time = sum(1 for a in due_actions
                  if a.done_at is not None and due.on_time(_local(a.done_at, tz), a.due))
    months = months_in(start, end)
    main = next((k for k, _ in theme_counts.most_common()), None)
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "raised": len(raised),
        "reached": reached,
        "reached_monthly_average": {s: round(v / months, 1) if months else None
                                    for s, v in reached.items()},
        "closed": {k: len(v) for k, v in closed.items()},
        "resolved_by_stage": by_stage(resolved),
        "withdrawn_by_stage": by_stage(closed["withdrawn"]),
        "referred_from_stage": by_stage(referrals),
        "resolved_informally_or_first_formal_pct": _pct(
            sum(1 for _, e in resolved if e.from_stage in early), len(resolved)),
        "resolved_within_timescale_pct": _pct(within, len(resolved)),
        "resolved_within_stage_timescale_pct": _pct(within_stage, len(resolved)),
        "working_days_to_resolution": {"median": median(days) if days else None,
                                       "p90": _percentile(days, 0.9),
                                       "distribution": _buckets(days)},
        "automatic_escalations": auto,
        "outstanding_at_end": outstanding,
        "overdue_at_end": overdue,
        "themes": {k: v["count"] for k, v in themes.items()},
        "themes_not_set": sum(1 for h in raised if not h.alert.theme),
        "theme_shares": themes,
        "main_theme": main,
        "by_team": grouped(History.team_at),
        "by_service": grouped(service_at),
        "by_iro": grouped(History.iro_at),
        "actions": {"due": len(due_actions), "done_on_time": on_time,
                    "done_on_time_pct": _pct(on_time, len(due_actions))},
        "referred_to_director": sum(reached[s] for s in director_stages),
        "referred_to_cafcass": reached[cafcass],
        "cafcass": {"referred": reached[cafcass], "responses": dict(sorted(responses.items()))},
        "good_practice": len(good),
        "good_practice_by_team": dict(sorted(good_by_team.items())),
        "monthly": {m: {s: c.get(s, 0) for s in stages} for m, c in sorted(monthly.items())},
    }


def report(session: Session, protocol: Protocol, calendar: WorkingCalendar,
           taxonomy: Taxonomy, tz: ZoneInfo, start: date, end: date) -> dict[str, Any]:
    """The figures for the period, the previous period beside them, and the change."""
    from ..errors import BadValue

    if end < start:
        raise BadValue(f"--to {end.isoformat()} is before --from {start.isoformat()}")
    p_start, p_end = previous_period(start, end)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    histories = load(session, until)
    actions = list(session.exec(select(Action)).all())
    services = services_of_teams(session)
    current = figures(histories, protocol, calendar, taxonomy, tz, start, end, actions,
                      services)
    previous = figures(histories, protocol, calendar, taxonomy, tz, p_start, p_end, actions,
                       services)
    current["previous"] = previous
    current["change"] = {
        k: current[k] - previous[k] for k in
        ("raised", "automatic_escalations", "outstanding_at_end", "overdue_at_end",
         "referred_to_director", "referred_to_cafcass", "good_practice")}
    current["change"]["reached"] = {s: current["reached"][s] - previous["reached"][s]
                                    for s in current["reached"]}
    current["protocol"] = protocol.name
    current["taxonomy"] = taxonomy.name
    current["definitions"] = DEFINITIONS
    return current
