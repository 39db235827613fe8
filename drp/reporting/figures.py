"""The dispute resolution figures a council publishes, for any period, from the event log.

Every figure is computed by replaying each alert's events (replay.py), so the state of any
alert at any instant (its status, stage, clocks and holds) is known exactly; detail.py adds
the annual report's breakdowns. Definitions live in definitions.py; docs/reports.md prints
them."""

from __future__ import annotations

import calendar as month_calendar
from collections import Counter
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from ..calendar import WorkingCalendar
from ..ladder import due
from ..ladder.protocol import GOOD_PRACTICE, Protocol, Role
from ..models import Action, Event
from ..themes import Taxonomy
from . import detail
from .definitions import DEFINITIONS
from .replay import (
    CAFCASS_RESPONSE,
    CLOSING,
    ENTERING,
    REFERRED,
    History,
    Names,
    buckets,
    load,
    local,
    names_of,
    pct,
    percentile,
    state_at,
)

__all__ = [
    "COMPARE",
    "DEFINITIONS",
    "History",
    "figures",
    "previous_period",
    "report",
    "year_earlier",
]

# What a report is compared with: the period just before, the same dates a year earlier,
# both, or nothing.
COMPARE = ("previous", "last-year", "both", "none")


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


def year_earlier(start: date, end: date) -> tuple[date, date]:
    """The same dates a year earlier: 29 February becomes 28 February, and a period ending on
    a month's last day ends on that month's last day (February 2024 against February 2023)."""
    def back(day: date, month_end: bool) -> date:
        last = month_calendar.monthrange(day.year - 1, day.month)[1]
        return date(day.year - 1, day.month, last if month_end else min(day.day, last))

    ends_month = end.day == month_calendar.monthrange(end.year, end.month)[1]
    return back(start, False), back(end, ends_month)


def months_in(start: date, end: date) -> float:
    return round(((end - start).days + 1) / (365.25 / 12), 2)


def figures(histories: list[History], protocol: Protocol, calendar: WorkingCalendar,
            taxonomy: Taxonomy, tz: ZoneInfo, start: date, end: date,
            actions: list[Action], services: dict[str, str] | None = None,
            names: Names | None = None) -> dict[str, Any]:
    """The figures for one period. `services`: each team's service (`services_of_teams`;
    taken from `names` when given); without either, by_service uses the child's current
    service throughout. `names`: today's names for the keys (`names_of`)."""
    names = names or Names()
    if services is None and names.teams:
        services = {k: s for k, (_, s) in names.teams.items()}
    period = detail.Period(protocol, calendar, tz, start, end)
    begin, finish = period.begin, period.finish
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
                month = local(e.at, tz).strftime("%Y-%m")
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
    resolutions: list[detail.Resolution] = []
    within_stage = 0
    for h, e in resolved:
        data = e.data or {}
        day = local(e.at, tz)
        stage_due = data.get("stage_due")
        resolution_due = measured_against(h, e)
        within_stage += stage_due is not None and due.on_time(day, date.fromisoformat(stage_due))
        held = sum(int((x.data or {}).get("held_working_days", 0)) for x in h.events
                   if x.kind == "resumed" and x.at <= e.at)
        resolutions.append(detail.Resolution(
            h, e, resolution_due is not None and due.on_time(day, resolution_due),
            max(0, calendar.between(local(h.alert.raised_at, tz), day) - held)))
    days = [r.working_days for r in resolutions]

    def by_stage(items: list[tuple[History, Event]]) -> dict[str, int]:
        counts = Counter(e.from_stage or "" for _, e in items)
        return {s: counts[s] for s in stages if counts[s]}

    opened: list[detail.Open] = []
    for h in histories:
        snap = state_at(h, finish)
        if snap is None or snap.status != "open":
            continue
        opened.append(detail.Open(h, [e for e in h.events if e.at < finish][-1], snap,
                                  due.is_overdue(open_=True, on_hold=snap.on_hold,
                                                 stage_due=snap.stage_due,
                                                 responded=snap.responded,
                                                 resolution_due=snap.resolution_due,
                                                 today=end)))

    theme_counts = Counter(h.alert.theme for h in raised if h.alert.theme)
    themes = {k: {"count": v, "share_pct": pct(v, len(raised)), "title": taxonomy.title(k)}
              for k, v in theme_counts.most_common()}
    entries = detail.formal_entries(period, histories)

    # By team, service and IRO: each event under the team and IRO the child had at that time.
    def service_at(h: History, e: Event) -> str:
        team = h.team_at(e)
        return (services or {}).get(team, h.service if team == h.team else team)

    def grouped(key: Callable[[History, Event], str]) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {}
        for figure, items in (("raised", raising), ("entered_formal", entries),
                              ("resolved", [(r.history, r.event) for r in resolutions]),
                              ("outstanding_at_end", [(o.history, o.last) for o in opened])):
            for h, e in items:
                if figure != "raised" or begin <= h.alert.raised_at < finish:
                    out.setdefault(key(h, e), Counter())[figure] += 1
        return {k: {m: v.get(m, 0) for m in ("raised", "entered_formal", "resolved",
                                             "outstanding_at_end")}
                for k, v in sorted(out.items())}

    good_by_team = Counter(h.team_at(h.events[0]) if h.events else h.team for h in good)
    due_actions = [a for a in actions if start <= a.due <= end]
    on_time = sum(1 for a in due_actions
                  if a.done_at is not None and due.on_time(local(a.done_at, tz), a.due))
    months = months_in(start, end)
    main = next((k for k, _ in theme_counts.most_common()), None)
    raised_events = [(h, e) for h, e in raising if begin <= h.alert.raised_at < finish]
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "raised": len(raised),
        "raised_monthly_average": round(len(raised) / months, 1) if months else None,
        "reached": reached,
        "reached_monthly_average": {s: round(v / months, 1) if months else None
                                    for s, v in reached.items()},
        "closed": {k: len(v) for k, v in closed.items()},
        "resolved_by_stage": by_stage(resolved),
        "resolved_at_stage_pct": detail.resolved_at_stage_pct(protocol, resolutions),
        "withdrawn_by_stage": by_stage(closed["withdrawn"]),
        "referred_from_stage": by_stage(referrals),
        "resolved_informally_or_first_formal_pct": pct(
            sum(1 for _, e in resolved if e.from_stage in early), len(resolved)),
        "resolved_within_timescale_pct": pct(sum(r.on_time for r in resolutions),
                                             len(resolved)),
        "resolved_within_stage_timescale_pct": pct(within_stage, len(resolved)),
        **detail.formal_and_informal(period, raised, entries, resolutions,
                                     closed["withdrawn"], opened),
        "working_days_to_resolution": {"median": median(days) if days else None,
                                       "p90": percentile(days, 0.9),
                                       "distribution": buckets(days)},
        "working_days_to_resolve": detail.to_resolve(protocol, resolutions),
        "response_times": detail.response_times(period, histories),
        "automatic_escalations": auto,
        "outstanding_at_end": len(opened),
        "overdue_at_end": sum(o.overdue for o in opened),
        "themes": {k: v["count"] for k, v in themes.items()},
        "themes_not_set": sum(1 for h in raised if not h.alert.theme),
        "theme_shares": themes,
        "main_theme": main,
        "team_themes": detail.team_themes(raised_events, names),
        "by_team": detail.team_rows(grouped(History.team_at), names),
        "by_service": detail.service_rows(grouped(service_at), names),
        "by_iro": detail.iro_rows(grouped(History.iro_at), names),
        "by_month": detail.by_month(period, raised, entries, resolutions, closed["withdrawn"]),
        **detail.children(raised),
        "holds": detail.holds(period, histories),
        "actions": {"due": len(due_actions), "done_on_time": on_time,
                    "done_on_time_pct": pct(on_time, len(due_actions))},
        "referred_to_director": sum(reached[s] for s in director_stages),
        "referred_to_cafcass": reached[cafcass],
        "cafcass": {"referred": reached[cafcass], "responses": dict(sorted(responses.items()))},
        "good_practice": len(good),
        "good_practice_by_team": dict(sorted(good_by_team.items())),
        "outcomes": detail.outcomes(period, histories, resolutions, closed["withdrawn"], opened),
        "monthly": {m: {s: c.get(s, 0) for s in stages} for m, c in sorted(monthly.items())},
    }


# The counts whose change from the compared period the report shows.
CHANGED = ("raised", "automatic_escalations", "outstanding_at_end", "overdue_at_end",
           "referred_to_director", "referred_to_cafcass", "good_practice", "children",
           "repeat_children")


def change(current: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """This period minus another, for the main counts, `reached` and `formal`'s counts."""
    out: dict[str, Any] = {k: current[k] - before[k] for k in CHANGED}
    out["reached"] = {s: current["reached"][s] - before["reached"][s]
                      for s in current["reached"]}
    out["formal"] = {k: current["formal"][k] - before["formal"][k]
                     for k in ("entered", "resolved", "withdrawn", "outstanding_at_end")}
    return out


def report(session: Session, protocol: Protocol, calendar: WorkingCalendar,
           taxonomy: Taxonomy, tz: ZoneInfo, start: date, end: date,
           compare: str = "previous", alert_ids: Collection[int] | None = None
           ) -> dict[str, Any]:
    """The figures for the period with, unless `compare` is "none", the previous period and
    the same dates a year earlier beside them (`previous`, `previous_year`) and the changes
    (`change`, `change_year`). `compare` records which one the tables show. `alert_ids`, when
    given, counts only those alerts (a head of service's report: the lists' access rule
    chooses them)."""
    from ..errors import BadValue

    if end < start:
        raise BadValue(f"--to {end.isoformat()} is before --from {start.isoformat()}")
    if compare not in COMPARE:
        raise BadValue(f"--compare {compare!r} is not known; use {', '.join(COMPARE)}")
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    histories = load(session, until)
    actions = list(session.exec(select(Action)).all())
    if alert_ids is not None:
        wanted = set(alert_ids)
        histories = [h for h in histories if h.alert.id in wanted]
        actions = [a for a in actions if a.alert_id in wanted]
    names = names_of(session)

    def compute(a: date, b: date) -> dict[str, Any]:
        return figures(histories, protocol, calendar, taxonomy, tz, a, b, actions, None, names)

    current = compute(start, end)
    if compare != "none":
        previous = compute(*previous_period(start, end))
        last_year = compute(*year_earlier(start, end))
        current["previous"], current["change"] = previous, change(current, previous)
        current["previous_year"] = last_year
        current["change_year"] = change(current, last_year)
    current["compare"] = compare
    current["protocol"] = protocol.name
    current["taxonomy"] = taxonomy.name
    current["stages"] = [{"key": s.key, "title": s.title, "formal": s.formal}
                         for s in protocol.stages]
    current["cafcass_title"] = protocol.cafcass.title
    current["theme_titles"] = {t: taxonomy.title(t) for t in taxonomy.keys}
    current["team_names"] = {k: n for k, (n, _) in sorted(names.teams.items())}
    current["definitions"] = DEFINITIONS
    return current
