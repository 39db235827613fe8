"""The figures an annual report's dispute section adds to the counts (issue 17): formal and
informal apart, by team, service, IRO and month, distinct and repeat children, working days to
resolve and to respond, holds, team by theme and the outcomes.

Each is computed from the same replay of the event log as figures.py: under the team and IRO
an event recorded, on the working-day calendar, against the protocol's own timescales."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from ..calendar import WorkingCalendar
from ..ladder.protocol import Protocol
from ..models import Event
from .replay import ENTERING, History, Names, Snapshot, local, pct, percentile

# Entering a stage for the ladder's purposes: raising, escalating, and reopening (which
# returns an alert to the stage it was resolved at).
STAGE_ENTRIES = (*ENTERING, "reopened")


@dataclass(frozen=True)
class Period:
    protocol: Protocol
    calendar: WorkingCalendar
    tz: ZoneInfo
    start: date
    end: date

    @property
    def begin(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=self.tz).astimezone(UTC)

    @property
    def finish(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min,
                                tzinfo=self.tz).astimezone(UTC)

    def holds(self, instant: datetime) -> bool:
        return self.begin <= instant < self.finish

    def formal(self, stage: str | None) -> bool:
        return stage is not None and self.protocol.is_formal(stage)


@dataclass(frozen=True)
class Resolution:
    """An alert resolved in the period: on time against the clock it is measured by (the
    formal clock, or the informal due date), and the working days it took (holds excluded)."""

    history: History
    event: Event
    on_time: bool
    working_days: int


@dataclass(frozen=True)
class Open:
    """An alert open at the end of the period, its last event before then and its state."""

    history: History
    last: Event
    snapshot: Snapshot
    overdue: bool


def first_formal(h: History, protocol: Protocol) -> Event | None:
    """The event with which the alert first entered a formal stage (its formal clock's start)."""
    for e in h.events:
        if e.kind in ENTERING and e.to_stage is not None and protocol.is_formal(e.to_stage):
            return e
    return None


def formal_entries(p: Period, concerns: list[History]) -> list[tuple[History, Event]]:
    """Alerts whose first entry into a formal stage fell in the period."""
    out = []
    for h in concerns:
        e = first_formal(h, p.protocol)
        if e is not None and p.holds(e.at):
            out.append((h, e))
    return out


def _ladder(p: Period, resolutions: list[Resolution], withdrawn: list[tuple[History, Event]],
            opened: list[Open], formal: bool) -> dict[str, Any]:
    mine = [r for r in resolutions if p.formal(r.event.from_stage) == formal]
    still = [o for o in opened if p.formal(o.snapshot.stage) == formal]
    return {"resolved": len(mine),
            "resolved_within_timescale_pct": pct(sum(r.on_time for r in mine), len(mine)),
            "withdrawn": sum(1 for _, e in withdrawn if p.formal(e.from_stage) == formal),
            "outstanding_at_end": len(still),
            "overdue_at_end": sum(o.overdue for o in still)}


def formal_and_informal(p: Period, raised: list[History],
                        entries: list[tuple[History, Event]], resolutions: list[Resolution],
                        withdrawn: list[tuple[History, Event]], opened: list[Open]
                        ) -> dict[str, Any]:
    at_formal = sum(1 for h in raised if h.events and h.events[0].kind == "raised"
                    and p.formal(h.events[0].to_stage))
    informal = _ladder(p, resolutions, withdrawn, opened, formal=False)
    formal = _ladder(p, resolutions, withdrawn, opened, formal=True)
    return {
        "formal": {"entered": len(entries), "raised_at_formal_stage": at_formal,
                   "escalated_from_informal": sum(1 for _, e in entries if e.kind != "raised"),
                   **formal,
                   "timescale_working_days": p.protocol.resolution_working_days},
        "informal": {"raised": len(raised) - at_formal, **informal},
    }


def resolved_at_stage_pct(protocol: Protocol, resolutions: list[Resolution]
                          ) -> dict[str, float | None]:
    counts = Counter(r.event.from_stage for r in resolutions)
    return {s: pct(counts[s], len(resolutions)) for s in protocol.keys if counts[s]}


def team_rows(counts: dict[str, dict[str, int]], names: Names) -> list[dict[str, Any]]:
    rows = [{"team": k, "name": names.team(k), "service": names.service_of(k),
             "service_name": names.service(names.service_of(k)), **v}
            for k, v in counts.items()]
    return sorted(rows, key=lambda r: (r["service_name"], r["name"], r["team"]))


def service_rows(counts: dict[str, dict[str, int]], names: Names) -> list[dict[str, Any]]:
    rows = [{"service": k, "name": names.service(k), **v} for k, v in counts.items()]
    return sorted(rows, key=lambda r: (r["name"], r["service"]))


def iro_rows(counts: dict[str, dict[str, int]], names: Names) -> list[dict[str, Any]]:
    rows = [{"iro": k, "name": names.person(k), **v} for k, v in counts.items()]
    return sorted(rows, key=lambda r: (r["name"], r["iro"]))


def months_of(start: date, end: date) -> list[str]:
    out, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def by_month(p: Period, raised: list[History], entries: list[tuple[History, Event]],
             resolutions: list[Resolution], withdrawn: list[tuple[History, Event]]
             ) -> list[dict[str, Any]]:
    def month(instant: datetime) -> str:
        return local(instant, p.tz).strftime("%Y-%m")

    counts: dict[str, Counter[str]] = {m: Counter() for m in months_of(p.start, p.end)}
    for figure, instants in (
            ("raised", [h.alert.raised_at for h in raised]),
            ("entered_formal", [e.at for _, e in entries]),
            ("resolved", [r.event.at for r in resolutions]),
            ("withdrawn", [e.at for _, e in withdrawn])):
        for instant in instants:
            counts[month(instant)][figure] += 1
    return [{"month": m, **{f: c[f] for f in ("raised", "entered_formal", "resolved",
                                                "withdrawn")}}
            for m, c in counts.items()]


def children(raised: list[History]) -> dict[str, int]:
    per_child = Counter(h.alert.child_id for h in raised)
    return {"children": len(per_child),
            "repeat_children": sum(1 for n in per_child.values() if n > 1)}


def _spread(values: list[int]) -> dict[str, Any]:
    return {"count": len(values), "median": median(values) if values else None,
            "p90": percentile(values, 0.9)}


def furthest_stage(protocol: Protocol, h: History, until: Event) -> str:
    """The furthest stage on the ladder the alert had entered by an event."""
    reached = [protocol.index(e.to_stage) for e in h.events
               if e.seq <= until.seq and e.kind in STAGE_ENTRIES and e.to_stage in protocol.keys]
    return protocol.keys[max(reached)] if reached else protocol.keys[0]


def to_resolve(protocol: Protocol, resolutions: list[Resolution]) -> dict[str, Any]:
    days = [r.working_days for r in resolutions]
    by_stage: dict[str, list[int]] = {}
    for r in resolutions:
        by_stage.setdefault(furthest_stage(protocol, r.history, r.event), []).append(
            r.working_days)
    return {**_spread(days),
            "by_stage_reached": {s: _spread(by_stage[s]) for s in protocol.keys
                                 if s in by_stage}}


def response_times(p: Period, concerns: list[History]) -> dict[str, dict[str, Any]]:
    """For each stage, the first response to each entry into it made in the period: working
    days from the entry (holds excluded), and whether it came by the stage's due date."""
    days: dict[str, list[int]] = {}
    on_time: Counter[str] = Counter()
    for h in concerns:
        entry: Event | None = None
        held = 0
        for e in h.events:
            if e.kind in STAGE_ENTRIES and e.to_stage in p.protocol.keys:
                entry, held = e, 0
            elif e.kind == "resumed":
                held += int((e.data or {}).get("held_working_days", 0))
            elif e.kind == "responded" and entry is not None and e.from_stage == entry.to_stage:
                stage = entry.to_stage or ""
                if p.holds(e.at):
                    day = local(e.at, p.tz)
                    taken = p.calendar.between(local(entry.at, p.tz), day) - held
                    days.setdefault(stage, []).append(max(0, taken))
                    stage_due = (e.data or {}).get("stage_due")
                    on_time[stage] += bool(stage_due) and day <= date.fromisoformat(
                        str(stage_due))
                entry = None
    return {s: {**_spread(days[s]), "within_timescale_pct": pct(on_time[s], len(days[s])),
                "timescale_working_days": p.protocol.stage(s).timescale_working_days}
            for s in p.protocol.keys if s in days}


def holds(p: Period, concerns: list[History]) -> dict[str, Any]:
    """Holds begun in the period, and the working days each lasted: to its resumption or the
    alert's closing, or to the period's end for one still running then."""
    lengths: list[int] = []
    running = 0
    alerts: set[int] = set()
    for h in concerns:
        since: Event | None = None
        for e in h.events:
            if e.at >= p.finish:
                break
            if e.kind == "held":
                since = e
            elif since is not None and (e.kind == "resumed" or e.kind in ("resolved",
                                                                            "withdrawn")):
                if p.holds(since.at):
                    data = e.data or {}
                    lengths.append(int(data["held_working_days"]) if "held_working_days" in data
                                   else p.calendar.between(local(since.at, p.tz),
                                                           local(e.at, p.tz)))
                    alerts.add(h.alert.id or 0)
                since = None
        if since is not None and p.holds(since.at):
            lengths.append(max(0, p.calendar.between(local(since.at, p.tz), p.end)))
            alerts.add(h.alert.id or 0)
            running += 1
    return {"count": len(lengths), "alerts": len(alerts), "working_days": sum(lengths),
            "median_working_days": median(lengths) if lengths else None,
            "on_hold_at_end": running}


def team_themes(raised: Iterable[tuple[History, Event]], names: Names) -> list[dict[str, Any]]:
    """Concerns raised in the period by the team at raising and by theme."""
    counts: dict[str, Counter[str]] = {}
    for h, e in raised:
        counts.setdefault(h.team_at(e), Counter())[h.alert.theme or ""] += 1
    rows = [{"team": k, "name": names.team(k), "service": names.service_of(k),
             "themes": {t: n for t, n in c.most_common() if t}, "not_set": c[""]}
            for k, c in counts.items()]
    return sorted(rows, key=lambda r: (names.service(r["service"]), r["name"], r["team"]))


def outcomes(p: Period, concerns: list[History], resolutions: list[Resolution],
             withdrawn: list[tuple[History, Event]], opened: list[Open]) -> dict[str, int]:
    reopened = sum(1 for h in concerns for e in h.events
                   if e.kind == "reopened" and p.holds(e.at))
    return {"resolved": len(resolutions), "withdrawn": len(withdrawn), "reopened": reopened,
            "open_at_end": len(opened)}
