"""The timescale run's set-based writer: reminders, acknowledgement reminders, overdue notices
and automatic escalations for a whole chunk of due alerts in a handful of statements, and the
reminders before agreed actions fall due.

It applies exactly the rules of the service layer's system methods (AlertService.remind,
.remind_acknowledge and .act_on_overdue, which the per-alert fallback still uses): the same
re-checks, the same machine (`transitions`, through the same adapter), the same events with
the clocks snapshotted, the same recipients and message context. What differs is how it writes:

- one SELECT of the chunk's alerts (locked FOR UPDATE on PostgreSQL), one of their open
  actions and one of their latest event times; the organisation is read once per run;
- one UPDATE per kind of change, executed for every row at once, each row guarded by the
  version it read: if any row changed meanwhile the whole chunk is rolled back (StaleChunk) and
  the caller redoes it an alert at a time through the service layer;
- one INSERT of the events (RETURNING their ids) and one of the outbox rows, which carry the
  message's context as JSON and are rendered at delivery.

All in the caller's transaction: the change, its event and its e-mails commit together."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    bindparam,
    func,
    select,
    update,
)
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from notifications.models import OutboxMessage

from .alerts import steps
from .alerts.unit import NotYet, out_of_order
from .audit import Origin
from .calendar import WorkingCalendar
from .db import among
from .directory import Snapshot
from .due_index import WATCHED
from .errors import DrpError
from .ladder import access, due
from .ladder.access import SYSTEM_ACTOR, Line
from .ladder.attention import next_attention
from .ladder.machine import AlertState, fire
from .ladder.protocol import Protocol
from .models import Action, Alert, Child, Event, Service, Team
from .notify import Notice, Notifier
from .rowsets import insert_rows, update_alerts

ALERT = cast(Any, Alert).__table__
ACTION = cast(Any, Action).__table__
EVENT = cast(Any, Event).__table__
OUTBOX = cast(Any, OutboxMessage).__table__


_ALERT_COLUMNS = tuple(ALERT.c.keys())  # a `select(ALERT)` row's fields, in its order
_watched = operator.attrgetter(*WATCHED)  # (several names: a tuple of the values)


def _standing(row: Any, values: dict[str, Any]) -> Any:
    """The alert `row` (a row of `select(ALERT)`) as it stands once `values` are written: an
    object with each column as an attribute. (A Row's `_asdict` and `_fields` cost three
    times the columns zipped.)"""
    after = SimpleNamespace()
    after.__dict__.update(zip(_ALERT_COLUMNS, row, strict=True))
    after.__dict__.update(values)
    return after


class StaleChunk(Exception):
    """An alert in the chunk changed between reading and writing: redo the chunk."""


@dataclass
class ChunkResult:
    done: list[tuple[int, str]] = field(default_factory=list)  # (alert id, what was done)
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # recipients without an address
    not_yet: list[int] = field(default_factory=list)  # touched after the run's instant
    actions: list[tuple[int, int]] = field(default_factory=list)  # (alert id, no) reminded


@dataclass
class _Change:
    row: Any  # the alert as read (a Row with attribute access)
    line: Line
    what: str  # escalated / overdue / cafcass_prompt / reminder / ack_reminder
    values: dict[str, Any]  # the alert's new column values
    event: dict[str, Any]
    after: Any  # the alert as it stands once `values` are written (attribute access)
    previous_stage: str | None = None


class _Days(WorkingCalendar):
    """The run's calendar, its sums of working days remembered: a chunk's alerts entered
    their stages on a handful of days, so each `add` is counted once a chunk, not once an
    alert (the calendar is fixed for the run: `Runtime.calendar`)."""

    def __init__(self, calendar: WorkingCalendar) -> None:  # a view of it, not a copy
        self.__dict__.update(calendar.__dict__)
        self._sums: dict[tuple[date, int], date] = {}

    def add(self, start: date, n: int) -> date:
        key = (start, n)
        found = self._sums.get(key)
        if found is None:
            found = self._sums[key] = super().add(start, n)
        return found


class Batch:
    """System actions for many alerts, as of one instant (a run's)."""

    def __init__(self, *, protocol: Protocol, calendar: WorkingCalendar, now: datetime,
                 today: date, tz: ZoneInfo, notifier: Notifier | None,
                 ack_before: datetime | None = None, origin: Origin | None = None) -> None:
        self.protocol = protocol
        self.origin = origin  # the run's (a flow's), on every event it writes
        self.cal = calendar if isinstance(calendar, _Days) else _Days(calendar)
        # The machine's verdict for the system actor depends on the alert's state alone
        # (AlertState's fields; the access policy lets the system fire a few triggers on any
        # alert): worked out once a state, the rest of the alerts in it take the same answer.
        self._verdicts: dict[tuple[Any, ...], str] = {}
        # The due index's day, for an alert without agreed actions, by the columns the rules
        # read (due_index.WATCHED): the same for every alert left in the same state.
        self._days: dict[tuple[Any, ...], date | None] = {}
        self.now = now
        self.tz = tz
        self.today = today
        self.notifier = notifier
        # Stages entered before this have gone a working day (`due.ack_reminder_after`).
        self.ack_before = ack_before

    # -- reading (everything inside the chunk's own transaction, so a chunk sees one state of
    #    the organisation even if `drp org load` runs meanwhile; it is small) ----------------
    def _read(self, session: Session, ids: list[int]) -> tuple[
            list[Any], dict[int, Line], dict[int, int], dict[int, tuple[datetime, int]]]:
        """The chunk's alerts, their lines, counts of actions not done (those actions kept
        in `self.open_actions` for the due index) and their latest event times."""
        rows = session.execute(
            select(ALERT).where(among(session, ALERT.c.id, ids)).order_by(ALERT.c.id)
            .with_for_update()
        ).all()
        self.org = Snapshot(session)
        teams = {t.id: t for t in session.exec(select_rows(Team))}
        services = {s.id: s for s in session.exec(select_rows(Service))}
        council = self.org.council()
        deputies = access.deputies_on(session, self.today)
        self.usernames = {pid: p.username for pid, p in self.org.people.items()}
        child_ids = sorted({r.child_id for r in rows})
        lines = {}
        for child in session.exec(
                select_rows(Child).where(among(session, col(Child.id), child_ids))):
            team = teams[child.team_id]
            lines[cast(int, child.id)] = Line.build(child, team, services[team.service_id],
                                                    council, deputies)
        self.open_actions: dict[int, list[Any]] = {}
        for action in session.execute(select(ACTION).where(
                among(session, ACTION.c.alert_id, ids), ACTION.c.done_at.is_(None))):
            self.open_actions.setdefault(action.alert_id, []).append(action)
        outstanding = {a: len(acts) for a, acts in self.open_actions.items()}
        last: dict[int, tuple[datetime, int]] = {a: (at, seq) for a, at, seq in session.execute(
            select(col(Event.alert_id), func.max(col(Event.at)), func.max(col(Event.seq)))
            .where(among(session, col(Event.alert_id), ids)).group_by(col(Event.alert_id)))}
        return list(rows), lines, outstanding, last

    # -- deciding (the rules of AlertService.remind / .remind_acknowledge / .act_on_overdue) --
    def _machine(self, row: Any, line: Line, outstanding: int, trigger: str) -> str:
        """Fire `trigger` for the system (InvalidTransition when the machine refuses, worded
        for this alert); the stage the alert is at after it."""
        key = (trigger, row.status, row.stage, row.on_hold, outstanding,
               row.acknowledged_at is not None, row.stage_responded_at is not None)
        stage = self._verdicts.get(key)
        if stage is None:  # first of its state, or refused (then asked again, for the words)
            adapter: AlertState = steps.alert_state(self.protocol, row, SYSTEM_ACTOR, line,
                                                    outstanding)
            fire(self.protocol, adapter, trigger, f"alert {row.id}")
            stage = self._verdicts[key] = adapter.stage
        return stage

    def _in_order(self, row: Any, last: tuple[datetime, int] | None) -> None:
        if last is None:
            return
        last_at, last_seq = last
        if last_seq > row.last_seq:  # an event the alert's row does not count: redo singly
            raise StaleChunk(f"alert {row.id} has events its row does not count")
        refused = out_of_order(row.id, last_at, self.now, self.tz, system=True)
        if refused is not None:  # the service layer's own rule: NotYet or a problem
            raise refused

    def _event(self, row: Any, line: Line, kind: str, values: dict[str, Any], *,
               to_stage: str, comment: str | None = None, data: dict[str, Any] | None = None
               ) -> tuple[dict[str, Any], Any]:
        """The event's columns, and the alert as it stands after the change."""
        after = _standing(row, values)
        return steps.event_values(
            after, seq=row.last_seq + 1, at=self.now, actor=SYSTEM_ACTOR.username, kind=kind,
            from_stage=row.stage, to_stage=to_stage, comment=comment, data=data,
            team=line.team.key, iro=self.usernames.get(row.iro_id), origin=self.origin), after

    def _overdue(self, row: Any, line: Line, outstanding: int) -> _Change | None:
        what = due.on_overdue(self.protocol, self.today, row)
        if what is None:
            return None
        due_date: date = row.stage_due
        if what == "escalated":
            to = self._machine(row, line, outstanding, "escalate")
            access.require_responsible(self.protocol, to, line)
            values = {"stage": to, **due.stage_entry(self.protocol, self.cal, row, to,
                                                     now=self.now, today=self.today)}
            event, after = self._event(row, line, "auto_escalated", values, to_stage=to,
                                       comment=due.escalation_reason(
                                           self.protocol.stage(row.stage), due_date))
            return _Change(row, line, what, values, event, after, previous_stage=row.stage)
        self._machine(row, line, outstanding, "remind")
        values = {"overdue_notified_for": due_date}
        event, after = self._event(row, line, what, values, to_stage=row.stage,
                                   data={"due": due_date.isoformat()})
        return _Change(row, line, what, values, event, after)

    def _remind(self, row: Any, line: Line, outstanding: int) -> _Change | None:
        if not due.reminder_due(self.protocol, self.cal, self.today, row):
            return None
        self._machine(row, line, outstanding, "remind")
        values = {"reminded_for": row.stage_due}
        event, after = self._event(row, line, "reminder", values, to_stage=row.stage,
                                   data={"due": row.stage_due.isoformat()})
        return _Change(row, line, "reminder", values, event, after)

    def _ack_remind(self, row: Any, line: Line, outstanding: int) -> _Change | None:
        if self.ack_before is None or not due.ack_reminder_due(self.protocol, row,
                                                               self.ack_before):
            return None
        self._machine(row, line, outstanding, "remind")
        values = {"ack_reminded_for": row.stage_due}
        event, after = self._event(row, line, "ack_reminder", values, to_stage=row.stage,
                                   data={"due": row.stage_due.isoformat()})
        return _Change(row, line, "ack_reminder", values, event, after)

    # -- writing ------------------------------------------------------------------------------
    def overdue(self, session: Session, ids: list[int]) -> ChunkResult:
        return self._apply(session, ids, self._overdue)

    def remind(self, session: Session, ids: list[int]) -> ChunkResult:
        return self._apply(session, ids, self._remind)

    def remind_acknowledge(self, session: Session, ids: list[int]) -> ChunkResult:
        return self._apply(session, ids, self._ack_remind)

    def remind_actions(self, session: Session, items: list[tuple[int, int]],
                       day_start: datetime) -> ChunkResult:
        """The reminder before an agreed action's due date (`due.action_reminder_due`) for
        the (alert id, action no) `items`, once per action: the action's `reminded_at`, an
        `action_reminder` event on its alert (as `action_overdue` writes one) and the owner's
        e-mail, guarded like the alerts' own changes (any alert changed meanwhile: StaleChunk).
        The per-item fallback is this writer with one item, in a transaction of its own."""
        result = ChunkResult()
        wanted = set(items)
        ids = sorted({a for a, _ in items})
        rows, lines, outstanding, last = self._read(session, ids)
        by_alert: dict[int, list[Any]] = {}
        for action in session.execute(select(ACTION).where(among(session, ACTION.c.alert_id, ids))
                                      .order_by(ACTION.c.alert_id, ACTION.c.no)):
            if (action.alert_id, action.no) in wanted:
                by_alert.setdefault(action.alert_id, []).append(action)
        chosen: list[tuple[Any, Line, list[Any]]] = []
        for row in rows:
            due_now = [a for a in by_alert.get(row.id, [])
                       if due.action_reminder_due(self.cal, self.today, row, a, day_start)]
            if not due_now:
                continue
            line = lines[row.child_id]
            try:
                self._machine(row, line, outstanding.get(row.id, 0), "remind")
                self._in_order(row, last.get(row.id))
            except NotYet:
                result.not_yet.append(row.id)
                continue
            except DrpError as exc:
                result.problems.append(f"{row.id}: {exc.message}")
                continue
            chosen.append((row, line, due_now))
        if not chosen:
            return result
        guarded = [{"id": row.id, "version": row.version, "last_seq": row.last_seq + len(acts),
                    "attention_on": self._attention(row, row, {a.id for a in acts})}
                   for row, _, acts in chosen]
        updated = update_alerts(session.connection(), guarded)
        if updated != len(guarded):
            raise StaleChunk(f"{len(guarded) - updated} alert(s) changed during the run")
        reminded = [{"b_id": a.id} for _, _, acts in chosen for a in acts]
        updated = session.connection().execute(
            update(ACTION).where(ACTION.c.id == bindparam("b_id"),
                                 ACTION.c.reminded_at.is_(None), ACTION.c.done_at.is_(None))
            .values(reminded_at=self.now), reminded).rowcount
        if updated != len(reminded):
            raise StaleChunk(f"{len(reminded) - updated} action(s) changed during the run")
        events = [steps.event_values(
            row, seq=row.last_seq + k, at=self.now, actor=SYSTEM_ACTOR.username,
            kind="action_reminder", from_stage=row.stage, to_stage=row.stage,
            data={"no": a.no, "due": a.due.isoformat()}, team=line.team.key,
            iro=self.usernames.get(row.iro_id), origin=self.origin)
            for row, line, acts in chosen for k, a in enumerate(acts, start=1)]
        event_ids = {(alert_id, seq): event_id for event_id, alert_id, seq in insert_rows(
            session.connection(), EVENT, events, "id", "alert_id", "seq")}
        if self.notifier is not None:
            outbox: list[dict[str, Any]] = []
            already_missing = len(self.notifier.missing)
            for row, line, acts in chosen:
                alert = cast(Alert, _standing(row, {"last_seq": row.last_seq + len(acts)}))
                for k, a in enumerate(acts, start=1):
                    event = SimpleNamespace(id=event_ids[(row.id, row.last_seq + k)],
                                            kind="action_reminder")
                    outbox += self.notifier.deferred(
                        session, self.protocol, alert, line,
                        Notice(cast(Event, event), action=cast(Action, a)), self.now,
                        self.org)
            result.missing += self.notifier.missing[already_missing:]
            del self.notifier.missing[already_missing:]
            insert_rows(session.connection(), OUTBOX, outbox)
        result.actions = [(row.id, a.no) for row, _, acts in chosen for a in acts]
        return result

    def _apply(self, session: Session, ids: list[int], decide: Any) -> ChunkResult:
        result = ChunkResult()
        rows, lines, outstanding, last = self._read(session, ids)
        changes: list[_Change] = []
        for row in rows:
            try:
                change = decide(row, lines[row.child_id], outstanding.get(row.id, 0))
                if change is not None:
                    self._in_order(row, last.get(row.id))
                    day = self._attention(row, change.after)
                    change.values["attention_on"] = change.after.attention_on = day
                    changes.append(change)
            except NotYet:
                result.not_yet.append(row.id)
            except DrpError as exc:
                result.problems.append(f"{row.id}: {exc.message}")
        if not changes:
            return result
        self._update(session, changes)
        event_ids = self._insert_events(session, changes)
        self._queue(session, changes, event_ids, result)
        result.done = [(c.row.id, c.what) for c in changes]
        return result

    def _attention(self, row: Any, after: Any, reminded: set[int] | None = None
                   ) -> date | None:
        """The due index's day for `row`, standing as `after` once written, with the actions
        `reminded` (ids) given their reminder, as the service layer's flush would give it."""
        open_actions = self.open_actions.get(row.id, [])
        if not open_actions:
            key = _watched(after)
            if key not in self._days:
                self._days[key] = next_attention(self.protocol, self.cal, self.tz, after,
                                                 from_day=self.today)
            return self._days[key]
        actions = [SimpleNamespace(**{**a._asdict(), "reminded_at": self.now})
                   if reminded and a.id in reminded else a for a in open_actions]
        return next_attention(self.protocol, self.cal, self.tz, after, actions,
                              from_day=self.today)

    def _update(self, session: Session, changes: list[_Change]) -> None:
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for c in changes:
            row = {"id": c.row.id, "version": c.row.version, "last_seq": c.row.last_seq + 1,
                   **{name: c.values[name] for name in sorted(c.values)}}
            by_columns.setdefault(tuple(row), []).append(row)
        for batch in by_columns.values():
            updated = update_alerts(session.connection(), batch)
            if updated != len(batch):
                raise StaleChunk(f"{len(batch) - updated} alert(s) changed during the run")

    def _insert_events(self, session: Session, changes: list[_Change]) -> list[int]:
        rows = insert_rows(session.connection(), EVENT, [c.event for c in changes],
                           "id", "alert_id")
        ids = {alert_id: event_id for event_id, alert_id in rows}  # one event per alert here
        return [ids[c.row.id] for c in changes]

    def _queue(self, session: Session, changes: list[_Change], event_ids: Iterable[int],
               result: ChunkResult) -> None:
        if self.notifier is None:
            return
        outbox: list[dict[str, Any]] = []
        already_missing = len(self.notifier.missing)
        for c, event_id in zip(changes, event_ids, strict=True):
            alert = cast(Alert, c.after)
            notice = Notice(cast(Event, SimpleNamespace(id=event_id, kind=c.event["kind"])),
                            c.previous_stage)
            outbox += self.notifier.deferred(session, self.protocol, alert, c.line, notice,
                                             self.now, self.org)
        # Named in the run's report once the chunk has committed (a redone chunk says it again).
        result.missing += self.notifier.missing[already_missing:]
        del self.notifier.missing[already_missing:]
        insert_rows(session.connection(), OUTBOX, outbox)
