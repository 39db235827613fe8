"""The timescale run: find, with a few set-based queries, every alert due a reminder, overdue,
unacknowledged for a working day, or whose hold has ended, and every agreed action now
overdue or due within its reminder's lead; then apply what the protocol orders through the
service layer (actor `system`) or the set-based writer, which re-check each one, so a rerun at
the same or a later instant never repeats a reminder or an escalation.

The calendar (bank holidays and the council's closure days) is the one the caller read once
for the run (`Runtime.calendar`); nothing here reads it again per alert."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, false, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from . import db, due_index
from .alerts import AlertService
from .alerts.unit import alone
from .batch import Batch, ChunkResult
from .calendar import WorkingCalendar
from .ladder import due
from .ladder.protocol import Protocol
from .models import Action, Alert

T = TypeVar("T")
CHUNK = 200
BULK = 1000  # alerts per transaction in the set-based writer


@dataclass
class DueSet:
    hold_ended: list[int] = field(default_factory=list)
    overdue: list[int] = field(default_factory=list)
    remind: list[int] = field(default_factory=list)
    ack_remind: list[int] = field(default_factory=list)
    actions: list[tuple[int, int]] = field(default_factory=list)
    action_reminders: list[tuple[int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return (len(self.hold_ended) + len(self.overdue) + len(self.remind)
                + len(self.ack_remind) + len(self.actions) + len(self.action_reminders))


@dataclass
class TimescaleReport:
    today: date
    working_day: bool
    resumed: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    overdue_notices: list[int] = field(default_factory=list)
    cafcass_prompts: list[int] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)
    ack_reminded: list[int] = field(default_factory=list)
    actions_overdue: list[str] = field(default_factory=list)
    actions_reminded: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Touched by a person after the run's instant: not due yet for this run (no problem).
    not_yet: list[int] = field(default_factory=list)
    mail: str = ""

    def not_due_yet(self, alert_ids: Iterable[int]) -> None:
        self.not_yet += [a for a in alert_ids if a not in self.not_yet]

    def problem(self, *lines: str) -> None:
        """Name what went wrong, once a run (an alert out of order is refused by each step)."""
        self.problems += [p for p in dict.fromkeys(lines) if p not in self.problems]

    def counts(self) -> dict[str, int]:
        return {
            "resumed": len(self.resumed), "escalated": len(self.escalated),
            "overdue_notices": len(self.overdue_notices),
            "cafcass_prompts": len(self.cafcass_prompts), "reminded": len(self.reminded),
            "ack_reminded": len(self.ack_reminded),
            "actions_overdue": len(self.actions_overdue),
            "actions_reminded": len(self.actions_reminded), "problems": len(self.problems),
            "not_yet": len(self.not_yet),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"today": self.today.isoformat(), "working_day": self.working_day,
                "counts": self.counts(), "resumed": self.resumed, "escalated": self.escalated,
                "overdue_notices": self.overdue_notices,
                "cafcass_prompts": self.cafcass_prompts, "reminded": self.reminded,
                "ack_reminded": self.ack_reminded,
                "actions_overdue": self.actions_overdue,
                "actions_reminded": self.actions_reminded, "problems": self.problems,
                "not_yet": self.not_yet, "mail": self.mail}

    def markdown(self) -> str:
        if not self.working_day:
            return (f"# Timescales {self.today.isoformat()}\n\nNot a working day: nothing to"
                    " do.\n")
        rows = "\n".join(f"| {k.replace('_', ' ')} | {v} |" for k, v in self.counts().items())

        def ids(values: Iterable[object]) -> str:
            listed = ", ".join(str(v) for v in values)
            return listed or "none"

        return (
            f"# Timescales {self.today.isoformat()}\n\n| what | how many |\n|---|---|\n{rows}\n\n"
            f"- resumed (hold ended): {ids(self.resumed)}\n"
            f"- escalated automatically: {ids(self.escalated)}\n"
            f"- overdue notices (pause points): {ids(self.overdue_notices)}\n"
            f"- Cafcass prompts: {ids(self.cafcass_prompts)}\n"
            f"- reminders: {ids(self.reminded)}\n"
            f"- reminders to acknowledge: {ids(self.ack_reminded)}\n"
            f"- agreed actions overdue (alert/action): {ids(self.actions_overdue)}\n"
            f"- agreed actions due soon, owner reminded (alert/action):"
            f" {ids(self.actions_reminded)}\n"
            f"- not yet (touched after the run's instant): {ids(self.not_yet)}\n"
            + "".join(f"- problem: {p}\n" for p in self.problems)
            + (f"\nMail: {self.mail}\n" if self.mail else "")
        )


def find_due(session: Session, protocol: Protocol, calendar: WorkingCalendar,
             today: date, ack_before: datetime | None = None,
             day_start: datetime | None = None, reminders: bool = True) -> DueSet:
    """Candidates, by the SQL twins of the rules in `drp.ladder.due` (the writers re-check
    each), among the alerts whose day in the due index has come. `ack_before`: stages
    entered before it are due an acknowledgement reminder (none looked for without it);
    `day_start`: the instant today began, actions agreed before it are due their reminder
    (none looked for without it). `reminders`: False leaves the stages' reminders to a
    later `find_reminders` (the run's, once it has resumed and escalated)."""
    found = (find_reminders(session, protocol, calendar, today, ack_before) if reminders
             else DueSet())
    found.hold_ended = _ids(session, due.hold_ended_where(today), today)
    found.overdue = _ids(session, due.on_overdue_where(protocol, today), today)
    # Actions overdue and (with `day_start`) due their reminder, in one query: each row says
    # which twin chose it.
    late = due.action_overdue_where(today)
    soon = (due.action_reminder_where(calendar, today, day_start) if day_start is not None
            else false())
    for a, n, is_late in session.exec(
            select(Action.alert_id, Action.no, late.label("late"))
            .join(Alert, col(Alert.id) == Action.alert_id)
            .where(come_where(today), or_(late, soon))
            .order_by(col(Action.alert_id), col(Action.no))):
        (found.actions if is_late else found.action_reminders).append((a, n))
    return found


def find_reminders(session: Session, protocol: Protocol, calendar: WorkingCalendar,
                   today: date, ack_before: datetime | None = None) -> DueSet:
    """Only the reminders of `find_due` (the run looks again once it has escalated)."""
    found = DueSet()
    found.remind = _ids(session, due.reminder_due_where(protocol, calendar, today), today)
    if ack_before is not None:
        found.ack_remind = _ids(session, due.ack_reminder_where(protocol, ack_before), today)
    return found


def come_where(today: date) -> ColumnElement[bool]:
    """Alerts whose day in the due index (`Alert.attention_on`) has come: no rule holds for
    any other, so each query reads that index's range (ix_alert_attention_on), on SQLite as
    on PostgreSQL (bench/timescales.py checks both plans): SQLite's planner is told
    (`db.met_by_few`), else it would rather read the (status, on_hold, stage_due) index for
    the rules' equalities."""
    return db.met_by_few(col(Alert.attention_on) <= today)


def _ids(session: Session, where: Any, today: date) -> list[int]:
    query = select(col(Alert.id)).where(come_where(today), where).order_by(col(Alert.id))
    return [i for i in session.exec(query) if i is not None]


def _alert_of(item: Any) -> int:
    """The alert an item of work is about (an alert id, or an (alert id, action no) pair)."""
    return int(item[0] if isinstance(item, tuple) else item)


def _one(engine: Engine, make: Callable[[Session], AlertService], item: T,
         apply: Callable[[AlertService, T], Any], report: TimescaleReport
         ) -> tuple[T, Any] | None:
    """`item` in a transaction of its own; whatever goes wrong is this item's alone."""
    def work(session: Session) -> tuple[T, Any]:
        return item, apply(make(session), item)

    return alone(engine, work, item, run="run",
                 not_yet=lambda: report.not_due_yet([_alert_of(item)]), problem=report.problem)


def _in_chunks(
    engine: Engine, make: Callable[[Session], AlertService], items: list[T],
    apply: Callable[[AlertService, T], Any], report: TimescaleReport,
) -> list[tuple[T, Any]]:
    """Apply in transactions of CHUNK items; if anything goes wrong in a chunk, it is rolled
    back and redone an item per transaction, so one bad alert never holds up the rest."""
    done: list[tuple[T, Any]] = []
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        try:
            results: list[tuple[T, Any]] = []
            with db.transaction(engine) as session:
                svc = make(session)
                for item in chunk:
                    results.append((item, apply(svc, item)))
            done += results
        except Exception:  # redone singly below, where each is reported
            # One refused or broken alert, or a busy database: an alert at a time.
            for item in chunk:
                result = _one(engine, make, item, apply, report)
                if result is not None:
                    done.append(result)
    return done


def _in_bulk(
    engine: Engine, make: Callable[[Session], AlertService], ids: list[int], kind: str,
    today: date, protocol: Protocol, calendar: WorkingCalendar, report: TimescaleReport,
    probe: AlertService,
) -> list[tuple[int, str | None]]:
    """Reminders ("remind"), acknowledgement reminders ("ack") or what overdue alerts call
    for ("overdue") for `ids`, BULK alerts per transaction through the set-based writer; a
    chunk in which an alert changed meanwhile (or the database was busy) is redone an alert at
    a time through the service layer, which re-checks each. `probe`: a service as the run's
    writers have it (its instant, notifier and calendar)."""
    if not ids:
        return []
    done: list[tuple[int, str | None]] = []
    batch = Batch(protocol=protocol, calendar=calendar, now=probe.now, today=today, tz=probe.tz,
                  notifier=probe.notifier, ack_before=probe.ack_before, origin=probe.origin)
    writer = {"overdue": batch.overdue, "remind": batch.remind,
              "ack": batch.remind_acknowledge}[kind]

    def one(svc: AlertService, aid: int) -> str | None:
        if kind == "overdue":
            return svc.act_on_overdue(aid)
        if kind == "ack":
            return "ack_reminder" if svc.remind_acknowledge(aid) else None
        return "reminder" if svc.remind(aid) else None

    for start in range(0, len(ids), BULK):
        chunk = ids[start:start + BULK]
        try:
            with db.transaction(engine) as session:
                result = writer(session, chunk)
        except Exception:  # StaleChunk, SQLAlchemyError, anything: redone singly
            # An alert changed meanwhile, the database was busy or went away, a row broke a
            # constraint or one alert broke the writer: the chunk wrote nothing; an alert at a
            # time, each is re-checked and any that still fails is named in the report.
            done += _in_chunks(engine, make, chunk, one, report)
            continue
        done += [(aid, what) for aid, what in result.done]
        report.problem(*result.problems)
        report.not_due_yet(result.not_yet)
        if probe.notifier is not None:
            probe.notifier.missing += result.missing
    return done


def _remind_one(batch: Batch, item: tuple[int, int], day_start: datetime,
                session: Session) -> ChunkResult:
    return batch.remind_actions(session, [item], day_start)


def _remind_actions(engine: Engine, items: list[tuple[int, int]], day_start: datetime,
                    protocol: Protocol, calendar: WorkingCalendar, report: TimescaleReport,
                    probe: AlertService) -> list[tuple[int, int]]:
    """The reminders before agreed actions fall due, BULK actions per transaction through the
    set-based writer; a chunk that fails is redone an action per transaction (the writer
    re-checks each), any that still fails named in the report."""
    batch = Batch(protocol=protocol, calendar=calendar, now=probe.now, today=report.today,
                  tz=probe.tz, notifier=probe.notifier, origin=probe.origin)
    done: list[tuple[int, int]] = []

    def settle(result: ChunkResult) -> None:
        done.extend(result.actions)
        report.problem(*result.problems)
        report.not_due_yet(result.not_yet)
        if probe.notifier is not None:
            probe.notifier.missing += result.missing

    for start in range(0, len(items), BULK):
        chunk = items[start:start + BULK]
        try:
            with db.transaction(engine) as session:
                result = batch.remind_actions(session, chunk, day_start)
        except Exception:  # StaleChunk, a busy database, one broken alert: singly below
            for item in chunk:
                one = alone(engine, functools.partial(_remind_one, batch, item, day_start),
                            item, run="run",
                            not_yet=functools.partial(report.not_due_yet, [item[0]]),
                            problem=report.problem)
                if one is not None:
                    settle(one)
            continue
        settle(result)
    return done


def run(engine: Engine, make: Callable[[Session], AlertService], protocol: Protocol,
        calendar: WorkingCalendar, today: date) -> TimescaleReport:
    """One timescale run as of the service's clock. Only working days do anything: a due
    date's consequences land on the working day after it."""
    report = TimescaleReport(today=today, working_day=calendar.is_working_day(today))
    if not report.working_day:
        return report
    with engine.connect() as connection:
        # Nothing due: one probe of the due index (which also asks whether the protocol or
        # the calendar changed since the days were worked out).
        come = due_index.come(connection, today, due_index.basis(protocol, calendar))
    if not come:
        return report
    with Session(engine) as session:
        probe = make(session)  # the run's instant, zone and notifier, as the writers have them
        day_start = datetime.combine(today, time(0), tzinfo=probe.tz)
        found = find_due(session, protocol, calendar, today, probe.ack_before, day_start,
                         False)
    for aid, ok in _in_chunks(engine, make, found.hold_ended, lambda s, a: s.end_hold(a), report):
        if ok:
            report.resumed.append(aid)
    for aid, what in _in_bulk(engine, make, found.overdue, "overdue", today, protocol, calendar,
                              report, probe):
        {"escalated": report.escalated, "overdue": report.overdue_notices,
         "cafcass_prompt": report.cafcass_prompts}.get(what or "", []).append(aid)
    # Alerts resumed or escalated just now may be due a reminder: look again. (An alert
    # escalated now entered its stage now: no acknowledgement is due yet.)
    with Session(engine) as session:
        again = find_reminders(session, protocol, calendar, today, probe.ack_before)
    for aid, what in _in_bulk(engine, make, again.remind, "remind", today, protocol, calendar,
                              report, probe):
        if what:
            report.reminded.append(aid)
    for aid, what in _in_bulk(engine, make, again.ack_remind, "ack", today, protocol,
                              calendar, report, probe):
        if what:
            report.ack_reminded.append(aid)
    for (aid, no), ok in _in_chunks(engine, make, found.actions,
                                    lambda s, item: s.action_overdue(*item), report):
        if ok:
            report.actions_overdue.append(f"{aid}/{no}")
    for aid, no in _remind_actions(engine, found.action_reminders, day_start, protocol,
                                   calendar, report, probe):
        report.actions_reminded.append(f"{aid}/{no}")
    # Alerts whose day came and that the run did not write (a window closed unseen, a row
    # written without the service layer, one refused or touched meanwhile): their next day,
    # so the next run with nothing due is one probe; those still due keep today. (What the
    # run wrote, its writers have dated.)
    acted = {*report.resumed, *report.escalated, *report.overdue_notices,
             *report.cafcass_prompts, *report.reminded, *report.ack_reminded,
             *(int(item.split("/")[0]) for item in
               (*report.actions_overdue, *report.actions_reminded))}
    left = [aid for aid in come if aid not in acted]
    if left:
        with db.transaction(engine) as session:
            due_index.settle(session.connection(), protocol, calendar, probe.tz, today, left)
    return report
