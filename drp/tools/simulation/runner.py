"""Playing the planned year: each working day's timescale run at 07:00 (as the scheduled flow
does: it resumes holds that have ended and escalates overdue formal stages), then that day's
commands, one transaction each, each as of its own instant, through the real service layer.
The tally counts what was actually written, so `drp report disputes` over the year agrees with
the summary."""

from __future__ import annotations

import tempfile
import time as timer
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ... import db, timescales
from ...alerts import ActionIn, AlertService
from ...calendar import WorkingCalendar
from ...clock import FixedClock, not_ahead
from ...errors import BadValue, DrpError
from ...ladder.protocol import Protocol
from ...models import Alert, Person
from ...notify import Notifier
from ...org import load_org
from ...themes import Taxonomy
from .planner import RUN_AT, Plan, Step, plan_year
from .profiles import ALERT_TEXT, GENERIC_TEXT, checked_profile

# --- playing the year -------------------------------------------------------------------------


@contextmanager
def _bulk_writes(engine: Engine) -> Iterator[None]:
    """On SQLite, commit without waiting for the disk at every transaction (WAL with
    synchronous=NORMAL: never corrupt, at worst the last commits lost in a power cut) while
    the simulation writes its thousands of small transactions; the pool is then emptied, so
    later connections have the usual setting again."""
    if engine.dialect.name != "sqlite":
        yield
        return

    def fast(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "checkout", fast)
    try:
        yield
    finally:
        event.remove(engine, "checkout", fast)
        engine.dispose()


@dataclass
class _Tally:
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

    def month(self, at: datetime) -> Counter[str]:
        return self.monthly.setdefault(at.astimezone(self.tz).strftime("%Y-%m"), Counter())

    def enter(self, stage: str, at: datetime) -> None:
        self.reached[stage] += 1
        self.month(at)[stage] += 1

    def close(self, kind: str, stage: str, at: datetime) -> None:
        self.closed[kind] += 1
        self.closed_at.setdefault(kind, Counter())[stage] += 1
        self.month(at)[kind] += 1


def simulate(engine: Engine, protocol: Protocol, calendar: WorkingCalendar,
             taxonomy: Taxonomy, tz: ZoneInfo, *, year: int, profile: str, seed: int = 2025,
             notifier: Notifier | None = None, say: Callable[[str], None] = print,
             scale: float = 1.0,
             after_run: Callable[[date, datetime], None] | None = None) -> dict[str, Any]:
    """Simulate a council's reporting year (1 April `year` to 31 March `year`+1) into an empty
    database; returns (and says) what was written. `scale` multiplies the alert volumes (the
    organisation stays council-sized). `after_run` is called after each day's timescale run,
    before the day's people act.

    Refused: a year that ends after the real clock (events dated ahead, as `--now` in the
    future is) unless DRP_ALLOW_FUTURE_NOW=1; and a database with alerts or with an
    organisation's people already (the simulation loads its own council, which would replace
    theirs)."""
    began = timer.perf_counter()
    checked_profile(profile, protocol, year, scale)
    last = datetime.combine(date(year + 1, 3, 31), time.max, tzinfo=tz)
    not_ahead(last, tz, f"--year {year} runs to 31 March {year + 1},", "its events would be"
              " dated ahead; give a year that has ended")
    db.require_schema(engine)
    with Session(engine) as session:
        existing = session.exec(select(func.count()).select_from(Alert)).one()
        people = session.exec(select(func.count()).select_from(Person)).one()
    if existing:
        raise BadValue(
            f"the database already has {existing} alert(s); a simulated year is written only"
            " into a database without alerts (its events are never deleted): use a new"
            " database, e.g. DRP_DATABASE_URL=sqlite:///./var/simulated.db, and run `drp init`"
            " first")
    if people:
        raise BadValue(
            f"the database already has an organisation ({people} people); a simulated year"
            " loads its own council's people, teams and children, which would replace it: use"
            " a new database, e.g. DRP_DATABASE_URL=sqlite:///./var/simulated.db, and run"
            " `drp init` first")
    plan = plan_year(protocol, calendar, taxonomy, tz, year=year, profile=profile, seed=seed,
                     scale=scale)
    prof = plan.profile
    keys, cafcass = protocol.keys, protocol.cafcass.key
    with tempfile.TemporaryDirectory(prefix="drp-simulate-") as tmp:
        path = Path(tmp) / f"{prof.key}-org.yaml"
        path.write_text(yaml.safe_dump(plan.org.document, sort_keys=False), encoding="utf-8")
        with db.transaction(engine) as session:
            load_org(session, path, protocol)
    counts = plan.org.counts()
    say(f"Simulating {prof.council}, {plan.start:%-d %B %Y} to {plan.end:%-d %B %Y}"
        f" (profile {prof.key}, seed {seed}{'' if scale == 1 else f', scale {scale}'}):"
        f" {counts['services']} services, {counts['teams']} teams, {counts['iros']} IROs,"
        f" {counts['children']} children; {len(plan.alerts)} alerts to raise.")

    tally = _Tally(keys, cafcass, tz)
    ids: dict[int, int] = {}  # plan index -> alert id
    by_id: dict[int, int] = {}
    stage_of: dict[int, int] = {}  # plan index -> stage index now
    derailed: set[int] = set()
    problems: list[str] = []
    steps_by_day: dict[date, list[Step]] = {}
    for a in plan.alerts:
        for s in a.steps:
            steps_by_day.setdefault(s.at.astimezone(tz).date(), []).append(s)
    autos_by_day: dict[date, set[int]] = {}
    for a in plan.alerts:
        for d in a.autos:
            autos_by_day.setdefault(d, set()).add(a.index)

    def service(session: Session, at: datetime) -> AlertService:
        return AlertService(session, protocol=protocol, calendar=calendar,
                            clock=FixedClock(at), tz=tz, taxonomy=taxonomy, notifier=notifier)

    def services_at(at: datetime) -> Callable[[Session], AlertService]:
        return lambda session: service(session, at)

    def execute(s: Step) -> None:
        a = plan.alerts[s.alert]
        with db.transaction(engine) as session:
            svc = service(session, s.at)
            if s.kind == "raise":
                _summaries, impact, wanted = ALERT_TEXT.get(a.theme, GENERIC_TEXT)
                # A child with an open alert already: the IRO confirms it is a separate matter.
                alert = svc.raise_alert(s.actor, a.child.ref, s.text, impact=impact,
                                        outcome_wanted=wanted, theme=a.theme, due_on=s.due_on,
                                        separate=tally.open_by_child[a.child.ref] > 0)
                assert alert.id is not None
                ids[a.index], by_id[alert.id] = alert.id, a.index
                return
            aid = ids[a.index]
            if s.kind == "acknowledge":
                svc.acknowledge(aid, s.actor)
            elif s.kind == "respond":
                svc.respond(aid, s.actor, s.text, [ActionIn(t, due) for t, due in s.actions])
            elif s.kind == "escalate":
                svc.escalate(aid, s.actor, s.text)
            elif s.kind == "hold":
                svc.hold(aid, s.actor, s.text, until=s.until)
            elif s.kind == "resolve":
                svc.resolve(aid, s.actor, s.text)
            elif s.kind == "withdraw":
                svc.withdraw(aid, s.actor, s.text)
            elif s.kind == "refer":
                svc.refer(aid, s.actor, s.text, legal_advice="The council's legal services",
                          advised_on=s.advised_on)
            elif s.kind == "cafcass_response":
                svc.cafcass_response(aid, s.actor, s.response, note=s.text)
            elif s.kind == "action_done":
                svc.action_done(aid, s.action_no, s.actor, s.text)
            else:  # pragma: no cover - the planner writes only the kinds above
                raise AssertionError(s.kind)

    def record(s: Step) -> None:
        a = plan.alerts[s.alert]
        tally.counts[s.kind] += 1
        if s.kind == "raise":
            stage_of[a.index] = 0
            tally.open_by_child[a.child.ref] += 1
            tally.enter(keys[0], s.at)
            tally.themes[a.theme] += 1
            tally.month(s.at)["raised"] += 1
        elif s.kind == "escalate":
            stage_of[a.index] += 1
            tally.enter(keys[stage_of[a.index]], s.at)
        elif s.kind in ("resolve", "withdraw"):
            kind = {"resolve": "resolved", "withdraw": "withdrawn"}[s.kind]
            tally.close(kind, keys[stage_of[a.index]], s.at)
            tally.open_by_child[a.child.ref] -= 1
        elif s.kind == "refer":  # alongside the local process: the alert stays open
            tally.enter(cafcass, s.at)
        elif s.kind == "cafcass_response":
            tally.responses[s.response] += 1

    runs = 0
    day = plan.start
    with _bulk_writes(engine):
        while day <= plan.end:
            if calendar.is_working_day(day):
                at = datetime.combine(day, RUN_AT, tzinfo=tz).astimezone(UTC)
                result = timescales.run(engine, services_at(at), protocol, calendar, day)
                runs += 1
                problems += [f"timescale run {day.isoformat()}: {p}" for p in result.problems]
                expected = autos_by_day.get(day, set())
                for aid in result.escalated:
                    idx = by_id[aid]
                    if idx not in expected:
                        problems.append(f"{day.isoformat()}: alert {aid} escalated by the"
                                        " timescale run, which was not planned")
                    stage_of[idx] += 1
                    tally.enter(keys[stage_of[idx]], at)
                    tally.counts["auto_escalated"] += 1
                missed = expected - {by_id[aid] for aid in result.escalated} - derailed
                problems += [f"{day.isoformat()}: alert {ids.get(i)} was not escalated by the"
                             " timescale run as planned" for i in sorted(missed)]
                tally.counts["resumed"] += len(result.resumed)
                tally.counts["reminders"] += len(result.reminded)
                tally.counts["ack_reminders"] += len(result.ack_reminded)
                tally.counts["overdue_notices"] += len(result.overdue_notices)
                tally.counts["actions_overdue"] += len(result.actions_overdue)
                if after_run is not None:  # e.g. the scheduled flows, in a soak test
                    after_run(day, at)
            for s in sorted(steps_by_day.get(day, []), key=lambda s: (s.at, s.alert)):
                if s.alert in derailed:
                    continue
                try:
                    execute(s)
                except DrpError as exc:
                    derailed.add(s.alert)
                    problems.append(f"{s.at.astimezone(tz):%Y-%m-%d %H:%M} {s.kind} (alert"
                                    f" {ids.get(s.alert)}): {exc.message}")
                    continue
                record(s)
            day += timedelta(days=1)
            if day.day == 1:  # a month done
                month = day - timedelta(days=1)
                m = tally.monthly.get(f"{month:%Y-%m}", Counter())
                say(f"  {month:%B %Y}: {m['raised']} raised, "
                    + ", ".join(f"{m[s]} entered {s}" for s in keys[1:4])
                    + f"; {m['resolved']} resolved")

    summary = _summary(plan, protocol, tally, runs, problems, seed, scale, year)
    summary["organisation"] = counts
    _say_summary(summary, say, timer.perf_counter() - began)
    return summary


def _summary(plan: Plan, protocol: Protocol, tally: _Tally, runs: int, problems: list[str],
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
        "outstanding_at_end": raised - sum(closed.values()),
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


def _say_summary(summary: dict[str, Any], say: Callable[[str], None], seconds: float) -> None:
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
