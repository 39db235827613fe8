"""A unit of work's common writes without the ORM's flush: the unit loads an alert as an
entity and changes it, but its own writes are rows of a few statements (issue 19: a command
within 3x the bare SQL of its writes; the ORM's flush, its unit of work's bookkeeping, was a
fifth of a command). Each falls back to the flush (returns False, having written nothing)
when the session holds anything else, so whatever a command adds is written as before.
The caller forgets what it read (its read memo) after either."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import bindparam, event, insert, inspect, update
from sqlalchemy.orm import make_transient, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from .. import due_index
from ..models import Alert, Event

_ALERT_T: Any = cast(Any, Alert).__table__
_EVENT_T: Any = cast(Any, Event).__table__
_EVENT_COLUMNS = tuple(c.key for c in _EVENT_T.columns if c.key != "id")
_INSERT_EVENTS = insert(_EVENT_T).returning(_EVENT_T.c.id, sort_by_parameter_order=True)
_ALERT_COLUMNS = tuple(c.key for c in _ALERT_T.columns if c.key != "id")
_INSERT_ALERT = insert(_ALERT_T).returning(_ALERT_T.c.id)
# The columns that changed are the parameters' keys; the version read is the condition.
_UPDATE_ALERT = update(_ALERT_T).where(_ALERT_T.c.id == bindparam("b_id"),
                                       _ALERT_T.c.version == bindparam("b_version"))


# session.info key: the rows written here in the session's transaction, as objects in the
# session (`_as_written`): a rollback takes them out of it, as it takes out what a flush
# inserted.
_WRITTEN = "drp.writes.inserted"


def _as_written(session: Session, obj: Any) -> None:
    """A new row's object, its id set, in the session as if loaded."""
    make_transient_to_detached(obj)
    session.add(obj)
    session.info.setdefault(_WRITTEN, []).append(obj)


@event.listens_for(Session, "after_soft_rollback")
def _unwrite(session: Session, previous: Any) -> None:
    if previous.parent is None:  # the outermost transaction: its rows are gone
        for obj in session.info.pop(_WRITTEN, ()):
            if obj in session:
                session.expunge(obj)
            make_transient(obj)


@event.listens_for(Session, "after_commit")
def _written(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


def insert_directly(session: Session, alert: Alert) -> bool:
    """A new alert in one INSERT, without the ORM's flush, dated for the due index as a flush
    would date it; then in the session as if loaded (its id set). False, and nothing written,
    when the session holds other changes: the caller adds it and flushes."""
    if session.new or session.deleted or session.dirty:
        return False
    due_index.date_alert(session, alert, [])
    alert.id = session.connection().execute(
        _INSERT_ALERT, {key: getattr(alert, key) for key in _ALERT_COLUMNS}).scalar_one()
    _as_written(session, alert)
    return True


def write_directly(session: Session) -> bool:
    """A command's common write, without the ORM's flush: what the session holds is alerts
    changed and new events only (a response, an escalation, a closure...). Each alert is one
    UPDATE of the columns that changed, dated for the due index (`due_index.date_alert`, as a
    flush would) and checking the version it read (a concurrent change raises StaleDataError,
    as a flush would); then the events in one INSERT, their ids set on them. False, and nothing
    written, when the session holds anything else: the caller flushes."""
    if session.deleted:
        return False
    events = list(session.new)
    alerts = list(session.dirty)
    if (not all(type(o) is Event for o in events)
            or not all(type(o) is Alert for o in alerts)):
        return False
    connection = session.connection()
    for alert in sorted(alerts, key=lambda a: a.id):  # in the flush's order (no deadlock)
        state: Any = inspect(alert)
        if due_index.watched_changed(alert):
            with session.no_autoflush:  # its open actions, if read: all written already
                due_index.date_alert(session, alert, [])
        changed = {key: state.dict[key] for key in state.committed_state
                   if state.attrs[key].history.has_changes()}  # set again to the same: not
        if not changed:
            state._commit_all(state.dict, session.identity_map)
            continue
        version = alert.version
        done = connection.execute(_UPDATE_ALERT, {**changed, "version": version + 1,
                                                  "b_id": alert.id, "b_version": version})
        if done.rowcount != 1:
            raise StaleDataError(f"alert {alert.id}: version {version} was changed")
        alert.version = version + 1
        state._commit_all(state.dict, session.identity_map)  # as written, as a flush leaves it
    if events:
        events.sort(key=lambda e: inspect(e).insert_order)
        ids = connection.execute(_INSERT_EVENTS, [
            {key: getattr(e, key) for key in _EVENT_COLUMNS} for e in events]).scalars().all()
        for e, event_id in zip(events, ids, strict=True):
            session.expunge(e)
            e.id = event_id
            _as_written(session, e)  # in the session, as a flush leaves it
    return True
