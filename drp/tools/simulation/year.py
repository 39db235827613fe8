"""The year's plan: who raises which alert about which child and when (with the informal due
date the IRO chooses), in the profile's theme shares; which alerts climb how far, so that the
alerts entering each stage within the year (or within each part of it the seed publishes) are
the published counts, the share resolved at the first stage is the published one, and the
formal alerts open at the year's end are the published number; then each alert's outcome and
its dated steps (planner.py). Planning writes nothing."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ...calendar import WorkingCalendar
from ...ladder import due as rules
from ...ladder.protocol import Protocol
from ...themes import Taxonomy
from .organisation import Organisation, build_org
from .planner import AlertPlan, Plan, _Planner
from .profiles import (
    MONTH_WEIGHT,
    WEEKDAY_WEIGHT,
    Profile,
    ServiceShape,
    Window,
    check_taxonomy,
    checked_profile,
)
from .words import ALERT_TEXT, GENERIC_TEXT

# Formal alerts meant to finish within the year are chosen among those that would be resolved
# at least this long before 31 March, so that a later response still falls within it.
FINISH_MARGIN = timedelta(days=21)


def _allocate(total: int, shares: dict[str, float]) -> list[str]:
    """`total` items in the given shares, exactly (largest remainder)."""
    whole = sum(shares.values())
    raw = {k: total * v / whole for k, v in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[:total - sum(
            counts.values())]:
        counts[k] += 1
    return [k for k, n in counts.items() for _ in range(n)]


def _working_days(calendar: WorkingCalendar, start: date, end: date) -> list[date]:
    days, day = [], start
    while day <= end:
        if calendar.is_working_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def plan_year(protocol: Protocol, calendar: WorkingCalendar, taxonomy: Taxonomy, tz: ZoneInfo,
              *, year: int, profile: str, seed: int = 2025, scale: float = 1.0,
              before: int = 0, org: Organisation | None = None) -> Plan:
    """The year, planned: the organisation and every alert's dated steps. Writes nothing.
    `before`: how many years before the profile's own year this one is (1: the seed's
    figures for its previous year, where it publishes them). `org`: an organisation already
    in the database to raise the alerts in, instead of the profile's own."""
    prof = checked_profile(profile, protocol, year, scale)
    if before:
        prof = prof.earlier()
    shares = check_taxonomy(prof, taxonomy.keys)
    # The seed, not the year, decides the organisation; each year has alerts of its own.
    built = build_org(prof, random.Random(f"{seed}/{prof.key}"))  # noqa: S311 - a simulation
    org = org or built
    rng = random.Random(f"{seed}/{prof.key}/{year}")  # noqa: S311 - not security
    start, end = date(year, 4, 1), date(year + 1, 3, 31)
    planner = _Planner(prof, protocol, calendar, tz, start, end, seed)

    raised = max(1, round(prof.raised * scale))
    themes = _allocate(raised, shares)
    rng.shuffle(themes)

    # Raising days: each month's share by its working days and the season, then days within
    # the month weighted by weekday.
    days = _working_days(calendar, start, end)
    months: dict[str, list[date]] = {}
    for d in days:
        months.setdefault(f"{d:%Y-%m}", []).append(d)
    per_month = Counter(_allocate(raised, {m: MONTH_WEIGHT[ds[0].month] * len(ds)
                                           for m, ds in months.items()}))
    when = sorted(d for m, ds in months.items() for d in rng.choices(
        ds, weights=[WEEKDAY_WEIGHT[x.weekday()] for x in ds], k=per_month[m]))
    shapes = {s.key: s for s in prof.services}
    by_theme = {t: [i for s in org.by_service if t in _shape(shapes, s).themes
                    for i in org.by_service[s]] for t in shares}
    alerts: list[AlertPlan] = []
    for i, (day, theme) in enumerate(zip(when, themes, strict=True)):
        pool = by_theme.get(theme) or []
        child = org.children[rng.choice(pool) if pool and rng.random() < 0.7
                             else rng.randrange(len(org.children))]
        summaries, _impact, _wanted = ALERT_TEXT.get(theme, GENERIC_TEXT)
        at = planner.instant(day, time(8, 30)) + timedelta(minutes=rng.randint(0, 480))
        alerts.append(AlertPlan(i, child, theme, rng.choice(summaries), at))
    alerts.sort(key=lambda a: a.raised_at)
    informal = protocol.stages[0]
    for i, a in enumerate(alerts):
        a.index = i
        # The IRO sets the informal due date: the protocol's default mostly, sometimes
        # sooner for an urgent matter or later (within the protocol's most).
        r = planner.rng(i, 0, "due")
        if r.random() < prof.own_informal_due_share:
            day = planner.local_day(a.raised_at)
            lead = min(r.choice((2, 3, 7, 10)), informal.max_working_days)
            a.due_on = rules.informal_due(protocol, calendar, day, calendar.add(day, lead))

    windows = [(w, [round(n * scale) for n in w.formal_reached]) for w in prof.targets()]
    depth_max = max((i + 1 for _w, t in windows for i, n in enumerate(t) if n), default=0)
    exact = prof.formal_open_at_end is not None
    ends: list[list[datetime]] = [[] for _ in alerts]
    entries = [planner.entries(a, depth_max, ends[a.index] if exact else None) for a in alerts]
    funnel = _Funnel(prof, planner, alerts, entries, ends, depth_max, seed, scale)
    if prof.first_stage_resolved_pct is None:
        funnel.run(windows)
    else:
        funnel.calibrate(windows, prof.first_stage_resolved_pct)
    keys = protocol.keys
    targets = {keys[0]: raised, **{keys[k]: sum(t[k - 1] for _w, t in funnel.windows)
                                   for k in range(1, depth_max + 1)}}
    return Plan(prof, start, end, org, alerts, targets, shares)


class _Funnel:
    """Which alerts climb how far, their themes where the seed publishes the formal ones',
    and each alert's outcome; then every alert's steps."""

    def __init__(self, prof: Profile, planner: _Planner, alerts: list[AlertPlan],
                 entries: list[list[datetime]], ends: list[list[datetime]], depth_max: int,
                 seed: int, scale: float) -> None:
        self.prof, self.planner, self.alerts = prof, planner, alerts
        self.entries, self.ends, self.depth_max = entries, ends, depth_max
        self.seed, self.scale = seed, scale
        self.windows: list[tuple[Window, list[int]]] = []

    def run(self, windows: list[tuple[Window, list[int]]]) -> None:
        # Each pass draws from generators of its own, so a pass depends only on its targets.
        self.windows = windows
        rng = random.Random(f"{self.seed}/{self.prof.key}/funnel")  # noqa: S311
        self.depths(rng)
        self.formal_themes(rng)
        self.outcomes(rng)
        for a in self.alerts:
            self.planner.build(a)

    def calibrate(self, windows: list[tuple[Window, list[int]]], pct: float) -> None:
        """Find the count entering the first formal stage that gives the published share of
        resolved alerts resolved at the first stage (later stages in proportion)."""
        (window, targets), = windows
        first = max(1, targets[0])
        for _ in range(4):
            scaled = [first, *(round(n * first / targets[0]) for n in targets[1:])]
            self.run([(window, scaled)])
            resolved = [a for a in self.alerts if any(s.kind == "resolve" for s in a.steps)]
            at_first = sum(1 for a in resolved if a.depth == 0)
            extra = at_first - round(pct * len(resolved) / 100)
            if abs(extra) < 1 or not resolved:
                return
            first = max(1, first + extra)

    def depths(self, rng: random.Random) -> None:
        """The deepest stages first, each among the alerts that would enter it within the
        window (and, where the number open at the end is published, be resolved within the
        year), so the counts entering each stage are the targets."""
        finish = self.planner.finish
        exact = self.prof.formal_open_at_end is not None
        for a in self.alerts:
            a.depth, a.outcome, a.hold, a.referred = 0, "resolved", False, False

        def month(at: datetime) -> int:
            return self.planner.local_day(at).month

        for k in range(self.depth_max, 0, -1):
            for window, targets in self.windows:
                want = targets[k - 1] if k <= len(targets) else 0
                inside = [a for a in self.alerts if self.entries[a.index][k] < finish
                          and window.holds(month(self.entries[a.index][k]))]
                have = sum(1 for a in inside if a.depth >= k)
                eligible = [a for a in inside if a.depth == 0 and (
                    not exact or self.ends[a.index][k] < finish - FINISH_MARGIN)]
                for a in rng.sample(eligible, max(0, min(want - have, len(eligible)))):
                    a.depth = k

    def formal_themes(self, rng: random.Random) -> None:
        """Where the seed publishes the formal alerts' themes (Thurrock), swap themes (and
        summaries) with informal alerts so the formal ones carry them; the year's theme
        counts are unchanged."""
        need = Counter(dict(self.prof.formal_themes))
        if not need:
            return
        surplus = []
        for a in (a for a in self.alerts if a.depth >= 1):
            if need[a.theme] > 0:
                need[a.theme] -= 1
            else:
                surplus.append(a)
        for a in surplus:
            theme = next((t for t, n in need.items() if n > 0), None)
            if theme is None:
                break
            donors = [d for d in self.alerts if d.depth == 0 and d.theme == theme]
            if not donors:
                continue
            d = rng.choice(donors)
            a.theme, d.theme, a.summary, d.summary = d.theme, a.theme, d.summary, a.summary
            need[theme] -= 1

    def outcomes(self, rng: random.Random) -> None:
        """Outcomes at the last stage each reaches. A referral to Cafcass (rare) runs
        alongside: the alert then goes on to be resolved."""
        alerts, prof = self.alerts, self.prof
        free = list(alerts)
        if self.depth_max and rng.random() < prof.cafcass_chance:
            deepest = [a for a in alerts if a.depth == max(x.depth for x in alerts)]
            chosen = rng.choice(deepest)
            chosen.referred = True
            free.remove(chosen)
        if prof.formal_open_at_end:
            formal = sorted((a for a in free if a.depth >= 1),
                            key=lambda a: self.entries[a.index][a.depth], reverse=True)
            for a in formal[:round(prof.formal_open_at_end * self.scale)]:
                a.outcome = "open"
                free.remove(a)
        withdrawable = [a for a in free if a.depth == 0 or prof.formal_withdrawn]
        for a in rng.sample(withdrawable, round(prof.withdrawn_share * len(alerts))):
            a.outcome = "withdrawn"
            free.remove(a)
        # Where the formal alerts open at the end are published, the others are not held
        # (a hold would carry one past 31 March).
        holdable = [a for a in free if a.depth == 0 or prof.formal_open_at_end is None]
        for a in rng.sample(holdable, min(len(holdable),
                                          round(prof.hold_share * len(alerts)))):
            a.hold = True


def _shape(shapes: dict[str, ServiceShape], service: str) -> ServiceShape:
    return shapes.get(service) or ServiceShape(service, service, 0)
