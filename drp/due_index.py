"""Keeping the due index (`Alert.attention_on`, drp.ladder.attention) where the dates change.

One home for every writer:
- the service layer's units of work (raise, respond, acknowledge, escalate, hold and resume,
  extend, resolve, withdraw, reopen, agreed actions, closure days, system actions, and
  whatever is added later): a `before_flush` hook recomputes the day of each alert whose
  clocks, guards or agreed actions changed, with the unit's protocol, calendar and zone
  (`attach`);
- the timescale run's set-based writer (drp/batch.py) calls `next_attention` itself;
- the run, at its end, settles the alerts whose day has come and left nothing to do
  (`settle`): their next day from the run's day on.

A session without a unit of work (a script writing rows directly) marks the alerts it changes
EARLIEST: the next run looks at them, as it looked at every alert before the index, and
settles them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    String,
    bindparam,
    event,
    exists,
    inspect,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .calendar import WorkingCalendar
from .db import among
from .ladder.attention import EARLIEST, next_attention
from .ladder.protocol import Protocol
from .models import Action, Alert, Council

ALERT = cast(Any, Alert).__table__
ACTION = cast(Any, Action).__table__
COUNCIL = cast(Any, Council).__table__
STALE = -1  # come()'s answer when the stored days were worked out under other rules
UNIT = "drp.due_index.unit"  # session.info key: an object with protocol, cal and tz
# session.info key: alert id -> its agreed actions not done, as this transaction has them
# (read at a flush, or told by the unit of work that has just counted them: `no_open_actions`).
OPEN = "drp.due_index.open_actions"
# The columns the run's rules read (drp.ladder.due): a change to any of them moves the day.
WATCHED = ("status", "stage", "on_hold", "hold_until", "stage_due", "stage_entered_at",
           "stage_responded_at", "acknowledged_at", "reminded_for", "ack_reminded_for",
           "overdue_notified_for")
ACTION_WATCHED = ("due", "done_at", "reminded_at", "overdue_notified_at", "agreed_at",
                  "alert_id")
SETTLE_CHUNK = 1000


def attach(session: Session, unit: Any) -> None:
    """Let `unit` (anything with `protocol`, `cal` and `tz`, read at each flush, so a unit
    that changes its calendar mid-way is followed) date the alerts `session` writes."""
    session.info[UNIT] = unit


def _changed(obj: Any, names: Iterable[str]) -> bool:
    attrs = inspect(obj).attrs
    return any(attrs[name].history.has_changes() for name in names)


def no_open_actions(session: Session, alert_id: int) -> None:
    """The unit of work has just counted the alert's open actions in this transaction and
    found none: its flushes need not read them (actions it adds are seen as they flush)."""
    session.info.setdefault(OPEN, {})[alert_id] = []


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, _transaction: Any) -> None:
    session.info.pop(OPEN, None)


@event.listens_for(Session, "do_orm_execute")
def _written(state: Any) -> None:
    if not state.is_select:  # a statement may have written actions: read them again
        state.session.info.pop(OPEN, None)


@event.listens_for(Session, "before_flush")
def _keep(session: Session, _context: Any, _instances: Any) -> None:
    alerts: dict[int, Alert] = {}
    pending_actions: list[Action] = []
    if any(isinstance(obj, Action) for obj in session.deleted):
        session.info.pop(OPEN, None)
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Alert) and (obj in session.new or _changed(obj, WATCHED)):
            alerts[id(obj)] = obj
        elif isinstance(obj, Action) and (obj in session.new or _changed(obj, ACTION_WATCHED)):
            pending_actions.append(obj)
            owner = session.get(Alert, obj.alert_id) if obj.alert_id is not None else None
            if owner is not None:
                alerts[id(owner)] = owner
    for alert in alerts.values():
        date_alert(session, alert, pending_actions)


def date_alert(session: Session, alert: Alert, pending_actions: list[Action]) -> None:
    """Set the alert's day (`attention_on`) from its columns as they stand and its agreed
    actions as this session has them (`pending_actions`: added or changed, not flushed): what
    each flush does for the alerts it writes, and a unit of work writing one directly."""
    unit = session.info.get(UNIT)
    if unit is None:
        day: date | None = EARLIEST
    else:
        day = next_attention(unit.protocol, unit.cal, unit.tz, alert,
                             _open_actions(session, alert, pending_actions),
                             from_day=unit.today)
    if alert.attention_on != day:
        alert.attention_on = day


def watched_changed(alert: Alert) -> bool:
    """Has a column the run's rules read changed on this alert since it was read?"""
    return _changed(alert, WATCHED)


def _open_actions(session: Session, alert: Alert, pending: list[Action]) -> list[Action]:
    """The alert's agreed actions as this session has them (changes not yet flushed count)."""
    if alert.id is None:
        return [a for a in pending if a.done_at is None]
    known = session.info.setdefault(OPEN, {})
    read = known.get(alert.id)
    if read is None:
        read = list(session.scalars(_OPEN_ACTIONS, {"alert_id": alert.id}))
    found = {id(a): a for a in read}
    found.update({id(a): a for a in pending if a.alert_id == alert.id})
    known[alert.id] = open_now = [a for a in found.values()
                                  if a.done_at is None and a.alert_id == alert.id]
    return open_now


_OPEN_ACTIONS = select(Action).where(ACTION.c.alert_id == bindparam("alert_id"),
                                     ACTION.c.done_at.is_(None))


def basis(protocol: Protocol, calendar: WorkingCalendar) -> str:
    """What every stored day was worked out from: the protocol (its timescales and policies)
    and the calendar (the bank holidays' library and the council's closure days). When it
    changes, a stored day may be too late, so the days are worked out again (come)."""
    import holidays

    text = "|".join((protocol.model_dump_json(), str(getattr(holidays, "__version__", "")),
                      ",".join(sorted(d.isoformat() for d in calendar.extra))))
    return hashlib.sha256(text.encode()).hexdigest()


def come(connection: Connection, today: date, rules: str) -> list[int]:
    """The alerts whose day has come, from the index alone: with nothing due, one probe. The
    same statement asks whether the days were worked out under other rules than `rules`
    (basis): then every alert the run may need is looked at again (restart), as after the
    migration that made the index."""
    found = sorted(connection.execute(_PROBE, {"today": today, "rules": rules}).scalars())
    if found[:1] != [STALE]:
        return found
    restart(connection, today, rules)
    return sorted(connection.execute(_DUE, {"today": today}).scalars())


# The probe, built once (a run with nothing due spends its time on the database, not on
# building and keying the statement). No ORDER BY: SQLite would walk the table in id order
# rather than the index's range.
_DUE = select(ALERT.c.id).where(ALERT.c.attention_on <= bindparam("today", type_=Date))
_PROBE = union_all(_DUE, select(literal(STALE)).where(
    COUNCIL.c.id == 1, or_(COUNCIL.c.attention_basis.is_(None),
                           COUNCIL.c.attention_basis != bindparam("rules", type_=String))))


def restart(connection: Connection, today: date, rules: str) -> None:
    """Every alert the run may need (open and not held with its stage awaiting a response, a
    held one, or one with agreed actions not done) is looked at by this run, and the council
    records the rules its days will be worked out under (committed with it)."""
    open_actions = exists().where(ACTION.c.alert_id == ALERT.c.id, ACTION.c.done_at.is_(None))
    connection.execute(update(ALERT).where(or_(
        (ALERT.c.status == "open") & (ALERT.c.on_hold == true()),
        (ALERT.c.status == "open") & ALERT.c.stage_due.is_not(None)
        & ALERT.c.stage_responded_at.is_(None),
        ALERT.c.status.in_(("open", "resolved")) & open_actions)).values(attention_on=EARLIEST))
    connection.execute(update(COUNCIL).where(COUNCIL.c.id == 1).values(attention_basis=rules))
    connection.commit()


def settle(connection: Connection, protocol: Protocol, calendar: WorkingCalendar,
           tz: ZoneInfo, today: date, ids: list[int]) -> int:
    """Give each of the alerts `ids` whose day has come its next day from `today` on (those
    still due today keep a day no later than today, for the next run). Guarded by the version
    read, so an alert someone changed meanwhile keeps the day their writer gave it; and the
    version moves, so a writer who read the alert before this settled it does not write over
    a day worked out from the state it replaced. Returns how many days were moved."""
    moved = 0
    for start in range(0, len(ids), SETTLE_CHUNK):
        rows = connection.execute(
            select(ALERT).where(among(connection, ALERT.c.id, ids[start:start + SETTLE_CHUNK]),
                                ALERT.c.attention_on <= today)).all()
        if not rows:
            continue
        actions: dict[int, list[Any]] = {}
        for a in connection.execute(select(ACTION).where(
                among(connection, ACTION.c.alert_id, [r.id for r in rows]),
                ACTION.c.done_at.is_(None))):
            actions.setdefault(a.alert_id, []).append(a)
        changes = []
        for row in rows:
            day = next_attention(protocol, calendar, tz, row, actions.get(row.id, ()),
                                 from_day=today)
            if day != row.attention_on:
                changes.append({"b_id": row.id, "b_version": row.version, "b_day": day})
        if changes:
            moved += connection.execute(
                update(ALERT).where(ALERT.c.id == bindparam("b_id"),
                                    ALERT.c.version == bindparam("b_version"))
                .values(attention_on=bindparam("b_day"), version=ALERT.c.version + 1),
                changes).rowcount
    return moved
