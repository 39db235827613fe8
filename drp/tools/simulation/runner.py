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
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ... import db, timescales
from ...alerts import ActionIn, AlertService
from ...calendar import WorkingCalendar
from ...clock import FixedClock, not_ahead
from ...errors import BadValue, DrpError
from ...ladder.protocol import Protocol
from ...models import Alert, Child, Event, Person
from ...notify import Notifier
from ...org import load_org
from ...themes import Taxonomy
from .organisation import Organisation, from_database
from .planner import RUN_AT, Step
from .profiles import checked_profile
from .summary import Tally, say_summary, summary
from .words import ALERT_TEXT, GENERIC_TEXT
from .year import plan_year

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


MAX_YEARS = 5


def simulate(engine: Engine, protocol: Protocol, calendar: WorkingCalendar,
             taxonomy: Taxonomy, tz: ZoneInfo, *, year: int, profile: str, seed: int = 2025,
             notifier: Notifier | None = None, say: Callable[[str], None] = print,
             scale: float = 1.0,
             after_run: Callable[[date, datetime], None] | None = None,
             years: int = 1, add: bool = False) -> dict[str, Any]:
    """Simulate a council's reporting year (1 April `year` to 31 March `year`+1) into an empty
    database; returns (and says) what was written. `years` > 1 simulates as many years
    ending with `year`, one after another on the same organisation (the earlier ones with the
    seed's figures for its previous year, where it publishes them), so a report's comparison
    with the year before has data. `add` writes the year(s) on top of what the database holds
    (see `_play_year`). `scale` multiplies the alert volumes (the organisation stays
    council-sized). `after_run` is called after each day's timescale run, before the day's
    people act.

    Refused: a year that ends after the real clock (events dated ahead, as `--now` in the
    future is) unless DRP_ALLOW_FUTURE_NOW=1; and, without `add`, a database with alerts or
    with an organisation's people already (the simulation loads its own council, which would
    replace theirs)."""
    if not 1 <= years <= MAX_YEARS:
        raise BadValue(f"--years {years} is out of range; give 1 to {MAX_YEARS}")
    first = year - years + 1
    checked_profile(profile, protocol, first, scale)
    checked_profile(profile, protocol, year, scale)
    last = datetime.combine(date(year + 1, 3, 31), time.max, tzinfo=tz)
    not_ahead(last, tz, f"--year {year} runs to 31 March {year + 1},", "its events would be"
              " dated ahead; give a year that has ended")
    db.require_schema(engine)
    summaries = [_play_year(engine, protocol, calendar, taxonomy, tz, year=y, profile=profile,
                            seed=seed, notifier=notifier, say=say, scale=scale,
                            after_run=after_run, before=year - y, add=add or y > first)
                 for y in range(first, year + 1)]
    result = summaries[-1]
    if years > 1:
        result["earlier_years"] = summaries[:-1]
    return result


def _refuse_unless_empty(session: Session) -> None:
    existing = session.exec(select(func.count()).select_from(Alert)).one()
    people = session.exec(select(func.count()).select_from(Person)).one()
    if existing:
        raise BadValue(
            f"the database already has {existing} alert(s); a simulated year is written only"
            " into a database without alerts (its events are never deleted): use a new"
            " database, e.g. DRP_DATABASE_URL=sqlite:///./var/simulated.db, and run `drp init`"
            " first, or give --add to add the year to what is there")
    if people:
        raise BadValue(
            f"the database already has an organisation ({people} people); a simulated year"
            " loads its own council's people, teams and children, which would replace it: use"
            " a new database, e.g. DRP_DATABASE_URL=sqlite:///./var/simulated.db, and run"
            " `drp init` first, or give --add to raise the year's alerts in this organisation")


def _carried_over(session: Session, start: datetime) -> tuple[Organisation | None,
                                                              list[tuple[int, str, str]]]:
    """For a year added on top (`--add`): the organisation in the database (None when it has
    none), and its open concerns (id, child, allocated IRO), which the IROs resolve on the
    year's first working day. Refused when the database holds anything dated on or after
    the year's start: a year is added after what is there, never under it."""
    latest = session.exec(select(func.max(Event.at))).one()
    if latest is not None and latest.tzinfo is None:  # SQLite's aggregate: UTC, naive
        latest = latest.replace(tzinfo=UTC)
    if latest is not None and latest >= start:
        raise BadValue(
            f"the database has events up to {latest:%-d %B %Y}; --add writes a year"
            " after what is there: give a later --year (its 1 April after that date)")
    people = session.exec(select(func.count()).select_from(Person)).one()
    org = from_database(session, "") if people else None
    rows = session.exec(
        select(Alert.id, Child.ref, Person.username)
        .join(Child, col(Child.id) == Alert.child_id)
        .join(Person, col(Person.id) == Alert.iro_id)
        .where(Alert.status == "open", Alert.kind == "concern").order_by(col(Alert.id))).all()
    return org, [(int(i), ref, iro) for i, ref, iro in rows if i is not None]


def _play_year(engine: Engine, protocol: Protocol, calendar: WorkingCalendar,
               taxonomy: Taxonomy, tz: ZoneInfo, *, year: int, profile: str, seed: int,
               notifier: Notifier | None, say: Callable[[str], None], scale: float,
               after_run: Callable[[date, datetime], None] | None, before: int,
               add: bool) -> dict[str, Any]:
    """One year. Added on top of what the database holds (`add`), its alerts take the next
    ids, the organisation there is used as it stands (nothing loaded over it; the profile's
    own is loaded only into a database without one), and the concerns still open from before
    are resolved by their IROs on the first working day."""
    began = timer.perf_counter()
    start_at = datetime.combine(date(year, 4, 1), time.min, tzinfo=tz)
    existing: Organisation | None = None
    carried: list[tuple[int, str, str]] = []
    with Session(engine) as session:
        if add:
            existing, carried = _carried_over(session, start_at)
        else:
            _refuse_unless_empty(session)
    plan = plan_year(protocol, calendar, taxonomy, tz, year=year, profile=profile, seed=seed,
                     scale=scale, before=before, org=existing)
    prof = plan.profile
    keys, cafcass = protocol.keys, protocol.cafcass.key
    if existing is None:
        with tempfile.TemporaryDirectory(prefix="drp-simulate-") as tmp:
            path = Path(tmp) / f"{prof.key}-org.yaml"
            path.write_text(yaml.safe_dump(plan.org.document, sort_keys=False),
                            encoding="utf-8")
            with db.transaction(engine) as session:
                load_org(session, path, protocol)
    counts = plan.org.counts()
    on = " on the organisation in the database" if existing is not None else ""
    say(f"Simulating {prof.council}, {plan.start:%-d %B %Y} to {plan.end:%-d %B %Y}"
        f" (profile {prof.key}, seed {seed}{'' if scale == 1 else f', scale {scale}'}){on}:"
        f" {counts['services']} services, {counts['teams']} teams, {counts['iros']} IROs,"
        f" {counts['children']} children; {len(plan.alerts)} alerts to raise"
        + (f", {len(carried)} open from before." if carried else "."))

    tally = Tally(keys, cafcass, tz)
    tally.carried = len(carried)
    for _aid, ref, _iro in carried:
        tally.open_by_child[ref] += 1
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
                    if aid not in by_id:  # an alert open from before
                        tally.enter(_stage_of(engine, aid), at)
                        tally.counts["auto_escalated"] += 1
                        continue
                    idx = by_id[aid]
                    if idx not in expected:
                        problems.append(f"{day.isoformat()}: alert {aid} escalated by the"
                                        " timescale run, which was not planned")
                    stage_of[idx] += 1
                    tally.enter(keys[stage_of[idx]], at)
                    tally.counts["auto_escalated"] += 1
                missed = expected - {by_id.get(aid) for aid in result.escalated} - derailed
                problems += [f"{day.isoformat()}: alert {ids.get(i)} was not escalated by the"
                             " timescale run as planned" for i in sorted(missed)]
                tally.counts["resumed"] += len(result.resumed)
                tally.counts["reminders"] += len(result.reminded)
                tally.counts["ack_reminders"] += len(result.ack_reminded)
                tally.counts["overdue_notices"] += len(result.overdue_notices)
                tally.counts["actions_overdue"] += len(result.actions_overdue)
                if after_run is not None:  # e.g. the scheduled flows, in a soak test
                    after_run(day, at)
                if carried:  # the concerns open from before, resolved first thing
                    problems += _resolve_carried(engine, service, tally, carried, day, tz)
                    carried = []
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

    written = summary(plan, protocol, tally, runs, problems, seed, scale, year)
    written["organisation"] = counts
    say_summary(written, say, timer.perf_counter() - began)
    return written


CARRIED_OUTCOME = "Resolved at the start of the new year: the agreed work is done."


def _stage_of(engine: Engine, alert_id: int) -> str:
    with Session(engine) as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert.stage


def _resolve_carried(engine: Engine, service: Callable[[Session, datetime], AlertService],
                     tally: Tally, carried: list[tuple[int, str, str]], day: date,
                     tz: ZoneInfo) -> list[str]:
    """Each concern open from before resolved by its IRO at 08:00 on the year's first
    working day (before anyone raises a new one for the child), each in its own
    transaction; a refusal is a problem, the concern left open."""
    problems: list[str] = []
    at = datetime.combine(day, time(8, 0), tzinfo=tz).astimezone(UTC)
    for i, (aid, ref, iro) in enumerate(carried):
        when = at + timedelta(seconds=i)
        stage = _stage_of(engine, aid)
        try:
            with db.transaction(engine) as session:
                service(session, when).resolve(aid, iro, CARRIED_OUTCOME)
        except DrpError as exc:
            problems.append(f"{day.isoformat()} resolve (alert {aid}, open from before):"
                            f" {exc.message}")
            continue
        tally.close("resolved", stage, when)
        tally.open_by_child[ref] -= 1
        tally.counts["carried_resolved"] += 1
    return problems
