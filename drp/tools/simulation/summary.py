"""What a simulated year wrote, counted as it is written (the tally), and the summary
`drp simulate` prints and returns: `drp report disputes` over the year agrees with it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ...ladder.protocol import Protocol
from .planner import Plan


@dataclass
class Tally:
    keys: tuple[str, ...]
    cafcass: str
    tz: ZoneInfo
    reached: Counter[str] = field(default_factory=Counter)
    closed: Counter[str] = field(default_factory=Counter)
    closed_at: dict[str, Counter[str]] = field(default_factory=dict)
    responses: Counter[str] = field(default_factory=Counter)  # Cafcass's
    open_by_child: Counter[str] = field(default_factory=Counter)
    themes: Counter[str] = field(default_factory=Counter)
    monthly: dict[str, Counter[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    carried: int = 0  # concerns open from before the year (a year added on top)

    def month(self, at: datetime) -> Counter[str]:
        return self.monthly.setdefault(at.astimezone(self.tz).strftime("%Y-%m"), Counter())

    def enter(self, stage: str, at: datetime) -> None:
        self.reached[stage] += 1
        self.month(at)[stage] += 1

    def close(self, kind: str, stage: str, at: datetime) -> None:
        self.closed[kind] += 1
        self.closed_at.setdefault(kind, Counter())[stage] += 1
        self.month(at)[kind] += 1


def summary(plan: Plan, protocol: Protocol, tally: Tally, runs: int, problems: list[str],
             seed: int, scale: float, year: int) -> dict[str, Any]:
    keys, cafcass = protocol.keys, protocol.cafcass.key
    formal = [s.key for s in protocol.stages if s.formal]
    prof = plan.profile
    raised = tally.reached[keys[0]]
    closed = {k: tally.closed[k] for k in ("resolved", "withdrawn")}
    published: dict[str, Any] = {}
    for k, v in prof.published.items():
        if k == "reached":
            published[k] = {formal[n - 1]: count for n, count in v.items()}
        else:
            published[k] = v
    months = []
    first = date(year, 4, 1)
    for i in range(12):
        y, m = divmod(first.month - 1 + i, 12)
        months.append(f"{first.year + y}-{m + 1:02d}")
    monthly = {}
    for month in months:
        c = tally.monthly.get(month, Counter())
        monthly[month] = {"raised": c["raised"], "reached": {s: c[s] for s in (*keys, cafcass)},
                          **{k: c[k] for k in ("resolved", "withdrawn")}}
    resolved_at = tally.closed_at.get("resolved", Counter())
    return {
        "profile": prof.key, "council": prof.council, "source": prof.source,
        "year": f"{year}/{(year + 1) % 100:02d}",
        "period": {"from": plan.start.isoformat(), "to": plan.end.isoformat()},
        "protocol": protocol.name, "seed": seed, "scale": scale,
        "published": published,
        "targets": plan.targets,
        "theme_shares": plan.shares,
        "raised": raised,
        "reached": {s: tally.reached[s] for s in (*keys, cafcass)},
        "reached_monthly_average": {s: round(tally.reached[s] / 12, 1)
                                    for s in (*keys, cafcass)},
        "closed": closed,
        "cafcass": {"referred": tally.reached[cafcass],
                    "responses": dict(sorted(tally.responses.items()))},
        "resolved_by_stage": {s: resolved_at[s] for s in keys if resolved_at[s]},
        "withdrawn_by_stage": dict(tally.closed_at.get("withdrawn", Counter())),
        "resolved_at_first_stage_pct": round(100 * resolved_at[keys[0]] / raised, 1)
        if raised else None,
        "carried_over": tally.carried,
        "outstanding_at_end": tally.carried + raised - sum(closed.values()),
        "automatic_escalations": tally.counts["auto_escalated"],
        "holds": tally.counts["hold"],
        "holds_resumed": tally.counts["resumed"],
        "responses": tally.counts["respond"],
        "acknowledgements": tally.counts["acknowledge"],
        "acknowledgement_reminders": tally.counts["ack_reminders"],
        "actions_done": tally.counts["action_done"],
        "reminders": tally.counts["reminders"],
        "overdue_notices": tally.counts["overdue_notices"],
        "themes": dict(tally.themes.most_common()),
        "monthly": monthly,
        "timescale_runs": runs,
        "commands": sum(tally.counts[k] for k in (
            "raise", "acknowledge", "respond", "escalate", "hold", "resolve", "withdraw",
            "refer", "cafcass_response", "action_done")),
        "problems": problems,
    }


def say_summary(summary: dict[str, Any], say: Callable[[str], None], seconds: float) -> None:
    published = summary["published"]
    reached = summary["reached"]
    pub = published.get("reached", {})

    def stage(s: str) -> str:
        note = f" (published {pub[s]})" if s in pub else ""
        return f"{s} {reached[s]}{note}"

    raised_note = f" (published {published['raised']})" if "raised" in published else ""
    closed = summary["closed"]
    say(f"{summary['council']}, {summary['year']}: {summary['raised']} alerts raised"
        f"{raised_note}; reached: {', '.join(stage(s) for s in reached)}.")
    say(f"Closed: {closed['resolved']} resolved ({summary['resolved_at_first_stage_pct']}% of"
        f" those raised at the first stage), {closed['withdrawn']} withdrawn;"
        f" {summary['cafcass']['referred']} referred to Cafcass (alongside the local process);"
        f" {summary['outstanding_at_end']} open at"
        f" {summary['period']['to']}. Automatic escalations {summary['automatic_escalations']},"
        f" holds {summary['holds']}, timescale runs {summary['timescale_runs']},"
        f" {summary['commands']} commands in {seconds:.0f} s.")
    first_formal = next((s for s in reached if s in pub), None)
    if first_formal:
        say(f"{first_formal}: {summary['reached_monthly_average'][first_formal]} a month.")
    for p in summary["problems"][:10]:
        say(f"problem: {p}")
