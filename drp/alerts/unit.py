"""One unit of work of the service layer: its instant, who is acting, the alert and its line
as loaded, the machine, the events it writes and the e-mails they call for, and what a
concurrent change turns into. Commands, system actions and queries build on this."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, event, func, true
from sqlalchemy import exists as sa_exists
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from .. import audit, due_index, orgtoken
from ..audit import Origin
from ..calendar import WorkingCalendar
from ..clock import Clock, during_run, local_date
from ..directory import Directory
from ..errors import BadValue, Conflict, DrpError, NotFound, NotPermitted
from ..ladder import access, due
from ..ladder.access import SYSTEM_ACTOR, Actor, Line
from ..ladder.machine import VERBS, AlertState, describe_state, fire, possible_triggers
from ..ladder.protocol import Protocol
from ..models import (
    Action,
    Alert,
    Child,
    Council,
    Event,
    Referral,
    Service,
    Team,
    new_row,
)
from ..notify import Notice, Notifier, reads_iro_managers
from ..themes import Taxonomy
from . import steps
from .writes import insert_directly, write_directly

if TYPE_CHECKING:
    from ..classifier import Suggestion

F = TypeVar("F", bound=Callable[..., Any])


class NotYet(BadValue):
    """The system (a flow run, as of its fixed instant) met an alert with an event after that
    instant, within the run's window (`clock.during_run`): a person acted on it while the run
    ran. Not due yet as far as this run can tell; the next run takes it up. An event later than
    that, or a person's action dated before the alert's last event, is a plain BadValue."""


R = TypeVar("R")
# Statements built once per process (the unit of work only binds their values).
# A child's line's posts: its team, the team's service, the council (Line.build).
_LINE = (sa_select(Team, Service, Council).join(Service, col(Service.id) == Team.service_id)
         .outerjoin(Council, col(Council.id) == 1)
         .where(col(Team.id) == bindparam("team_id")))
# What a session read since it last wrote, for its unit of work to ask again without a query
# (`UnitOfWork.read_memo`: a page asks about its alert several times, the view, what may be
# done, whom an action may go to; and names people on a list and its frame). Any flush, write
# statement through the session, or transaction end forgets it. (Writes through
# `session.connection()` or another connection are not seen: a unit's own such writes,
# alerts/writes.py's, forget it themselves; no unit makes others in its own session.)
_READ = "drp.read"


@event.listens_for(Session, "after_flush")
@event.listens_for(Session, "after_transaction_end")
def _forget_read(session: Session, *_: Any) -> None:
    session.info.pop(_READ, None)


@event.listens_for(Session, "do_orm_execute")
def _forget_read_on_write(state: Any) -> None:
    if not state.is_select:
        state.session.info.pop(_READ, None)


_ALERT_ID: Any = bindparam("alert_id")
# What the machine's guards read beside the alert: its agreed actions still open, whether it was
# referred, its last event's time and number (`_adapter`; with the alert itself in `_LOAD`).
def _standing_of(alert_id: Any) -> tuple[Any, ...]:
    return (
        sa_select(func.count()).select_from(Action).where(
            col(Action.alert_id) == alert_id, col(Action.done_at).is_(None)).scalar_subquery(),
        sa_exists().where(col(Referral.alert_id) == alert_id),
        sa_select(func.max(Event.at)).where(col(Event.alert_id) == alert_id).scalar_subquery(),
        sa_select(func.max(Event.seq)).where(col(Event.alert_id) == alert_id).scalar_subquery(),
    )


_STANDING = sa_select(*_standing_of(_ALERT_ID))
# An alert, its child and the posts of the child's line, and its standing, in one query.
# With the organisation's token (drp.orgtoken), so the acting person and the line's people
# read after it need no statement of their own when this process has them under it.
_TOKEN = (orgtoken.TOKEN.c.org_token, orgtoken.TOKEN.c.org_changed)
_LOAD = (sa_select(Alert, Child, Team, Service, Council, *_standing_of(Alert.id), *_TOKEN)
         .join(Child, col(Child.id) == Alert.child_id)
         .join(Team, col(Team.id) == Child.team_id)
         .join(Service, col(Service.id) == Team.service_id)
         .outerjoin(Council, col(Council.id) == 1)
         .outerjoin(orgtoken.TOKEN, true())
         .where(col(Alert.id) == _ALERT_ID))
# A child by its reference, with the posts of its line, and its open concerns' ids (a row
# for each, in order; one row with None when it has none).
_CHILD_LINE = (sa_select(Child, Team, Service, Council, col(Alert.id), *_TOKEN)
               .join(Team, col(Team.id) == Child.team_id)
               .join(Service, col(Service.id) == Team.service_id)
               .outerjoin(Council, col(Council.id) == 1)
               .outerjoin(orgtoken.TOKEN, true())
               .outerjoin(Alert, and_(col(Alert.child_id) == Child.id, col(Alert.status) == "open",
                                      col(Alert.kind) == "concern"))
               .where(col(Child.ref) == bindparam("ref"))
               .order_by(col(Alert.id)))
log = logging.getLogger("drp.flows")


def alone(engine: Engine, work: Callable[[Session], R], item: object, *, run: str,
          not_yet: Callable[[], None], problem: Callable[[str], None]) -> R | None:
    """A flow's work on one item (`item` names it) in a transaction of its own, whatever goes
    wrong being this item's alone: touched while the run ran (`not_yet`), refused, the
    database busy (the next `run` takes it up) or a fault no path expects (logged); each
    other than the first is one `problem` line. Returns the work's result, or None."""
    from .. import db

    try:
        with db.transaction(engine) as session:
            return work(session)
    except NotYet:
        not_yet()
    except DrpError as exc:
        problem(f"{item}: {exc.message}")
    except OperationalError as exc:
        problem(f"{item}: database busy ({db.reason(exc)}); the next {run} will take it up")
    except Exception as exc:  # not KeyboardInterrupt or SystemExit: stopping still stops
        log.exception("alert %s failed; nothing was changed for it", item)
        problem(f"{item}: {type(exc).__name__}: {exc} (an unexpected error, logged;"
                " nothing was changed for this alert)")
    return None


def out_of_order(alert_id: int | None, last: datetime, now: datetime, tz: ZoneInfo, *,
                 system: bool) -> BadValue | None:
    """What acting on an alert as of `now` is, when its last event is at `last`: in order
    (None), not due yet for a flow run (NotYet), or refused, naming the event's local time."""
    if now >= last:
        return None
    if system and during_run(last, now):
        return NotYet(f"alert {alert_id} has an event after the time of this run")

    def local(t: datetime) -> str:
        return t.astimezone(tz).strftime("%-d %b %Y %H:%M")

    return BadValue(
        f"alert {alert_id} already has an event dated {local(last)}, after the time of"
        f" this action ({local(now)}); events must stay in order, so act as of"
        " a later time (was drp run with --now in the future?)"
    )


def reports_conflicts(method: F) -> F:
    """A concurrent change to the alert (a stale version at any flush) becomes a Conflict that
    names who made it; nothing of this unit of work is saved."""

    @functools.wraps(method)
    def wrapper(self: UnitOfWork, alert_id: int, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, alert_id, *args, **kwargs)
        except StaleDataError:
            raise self._conflict(alert_id) from None

    return cast(F, wrapper)


def known_id(value: int | None) -> int:
    """A row's id once it has been flushed."""
    assert value is not None
    return value


class UnitOfWork:
    def __init__(
        self,
        session: Session,
        *,
        protocol: Protocol,
        calendar: WorkingCalendar,
        clock: Clock,
        tz: ZoneInfo,
        taxonomy: Taxonomy | None = None,
        notifier: Notifier | None = None,
        suggester: Callable[[list[str]], list[Suggestion]] | None = None,
        origin: Origin | None = None,
    ) -> None:
        self.s = session
        due_index.attach(session, self)  # each flush dates the alerts it writes (the due index)
        # Where this unit of work's acts come from: given, or the entry point's (audit.py).
        self.origin = origin if origin is not None else audit.current()
        # Views refused in this unit of work (audit rows): the refusal rolls the unit's own
        # transaction back, so the entry point writes them after it (audit.keep_refused).
        self.refused: list[dict[str, Any]] = []
        self.protocol = protocol
        self.cal = calendar
        self.clock = clock
        self.tz = tz
        self.taxonomy = taxonomy
        self.notifier = notifier
        self.suggester = suggester
        self.last_suggestion: Suggestion | None = None
        self._now: datetime | None = None
        self._notices: list[tuple[Alert, Line, Notice]] = []
        self.queued = 0  # outbox rows written by this unit of work
        # The session's identity map holds rows weakly; a page asks about the same alert,
        # person and line several times in one unit of work, so keep what was read.
        self._actors: dict[str, Actor] = {}
        self._kept: list[Any] = []
        self._lines: dict[int, Line] = {}  # by alert id, as loaded
        self._cover_for: dict[int, str | None] = {}  # by alert id: whom the actor stands in for
        self._deputies: dict[int, int] | None = None
        self._last_event: dict[int, tuple[datetime | None, int | None]] = {}  # by alert id
        # People read in this unit of work, by id: kept, and shared with the notifier.
        self.directory = Directory(session)

    # -- time ---------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """One instant per unit of work, so every row it writes agrees."""
        if self._now is None:
            self._now = self.clock.now()
        return self._now

    @property
    def today(self) -> date:
        return local_date(self.now, self.tz)

    @property
    def deputies(self) -> dict[int, int]:
        """Today's cover periods, absent -> deputy (read once per unit of work)."""
        if self._deputies is None:
            today = self.today
            self._deputies = dict(orgtoken.kept_or_read(
                self.s, ("deputies", today), lambda: access.deputies_on(self.s, today)))
        return self._deputies

    def line_of(self, child: Child) -> Line:
        team, service, council = self.s.execute(_LINE, {"team_id": child.team_id}).one()
        self._kept.append((team, service, council))
        return Line.build(child, team, service, council, self.deputies)

    def child_by_ref(self, ref: str) -> tuple[Child | None, Line | None, list[int]]:
        """A child, its line and its open concerns' ids (one query), or (None, None, [])."""
        child, posts, open_ids = self._child_and_posts(ref)
        return child, self._line_of_posts(child, posts), open_ids

    def _child_and_posts(self, ref: str) -> tuple[Child | None, Any, list[int]]:
        """A child, the posts of its line (team, service, council) and its open concerns' ids,
        with the organisation's token (held from here), in one query; or (None, None, [])."""
        found = self.s.execute(_CHILD_LINE, {"ref": ref}).all()
        if not found:
            return None, None, []
        child, team, service, council, _, token, changed = first = found[0]
        orgtoken.hold(self.s, token, changed)
        self._kept.append(first)
        return child, (team, service, council), [row[4] for row in found if row[4] is not None]

    def _line_of_posts(self, child: Child | None, posts: Any) -> Line | None:
        if child is None:
            return None
        team, service, council = posts
        return Line.build(child, team, service, council, self.deputies)

    # -- loading ------------------------------------------------------------------------
    def actor(self, username: str) -> Actor:
        if username == access.SYSTEM:
            return SYSTEM_ACTOR
        known = self._actors.get(username)
        if known is not None:
            return known
        # The person, what they are today and today's cover periods: one statement.
        found = access.actor_named(self.s, username, self.today)
        if found is None or not found[0].active:
            raise NotFound(
                f"there is no active person {username!r}; check --as (people come from"
                " `drp org load`)"
            )
        person, actor, deputies = found
        if self._deputies is None:
            self._deputies = deputies
        self.directory.people[known_id(person.id)] = person
        self._actors[username] = actor
        return actor

    def read_memo(self) -> dict[Any, Any]:
        """What this unit read since its session last wrote (see `_READ`); empty while the
        session holds changes not yet flushed (a query would flush them and see them)."""
        if self.s.new or self.s.dirty or self.s.deleted:
            return {}
        return self.s.info.setdefault(_READ, {})  # type: ignore[no-any-return]

    def _read_alert(self, alert_id: int) -> Any:
        """The alert, its child, the posts of the child's line, its standing and the
        organisation's token (held from here), in one query; None when there is no such alert.
        Ids beyond a 32-bit integer cannot exist (and would overflow the database driver)."""
        found = self.read_memo().get(("alert", alert_id))
        if found is None and 0 < alert_id < 2**31:
            found = self.s.execute(_LOAD, {"alert_id": alert_id}).first()
            if found is not None:  # (the query flushed what was pending, forgetting the memo)
                self.read_memo()["alert", alert_id] = found
                orgtoken.hold(self.s, *found[9:11])
        return found

    def _acting_on(self, alert_id: int, username: str) -> tuple[Actor, Alert, Line]:
        """The person acting and the alert they act on, read in that order's reverse: the
        alert's read holds the organisation's token, so the person needs no statement when
        this process has them under it. Refusals as `actor` then `_load` make them."""
        self._read_alert(alert_id)
        actor = self.actor(username)
        return (actor, *self._load(alert_id, actor))

    def _load(self, alert_id: int, actor: Actor) -> tuple[Alert, Line]:
        found = self._read_alert(alert_id)
        alert, child = (found[0], found[1]) if found else (None, None)
        if alert is None or child is None or not access.can_see_child(actor, child, alert.iro_id):
            self.refuse(actor, f"alert {alert_id}" + ("" if alert else " (no such alert)"),
                        alert.id if alert else None)
            raise NotFound(
                f"there is no alert {alert_id} that {actor.username} can see; check the number"
                " with `drp alert list`"
            )
        assert found is not None
        line = Line.build(child, found[2], found[3], found[4], self.deputies)
        self._kept.append((alert, line))
        self._lines[alert_id] = line
        return alert, line

    def refuse(self, actor: Actor, asked: str, alert_id: int | None = None) -> None:
        """Note a record refused to `actor` (not theirs to see, or not there): who, what was
        asked (and through what), from where, when; kept by the entry point afterwards."""
        via = f" ({self.origin.via})" if self.origin is not None and self.origin.via else ""
        self.refused.append({"origin": self.origin, "at": self.now, "actor": actor.username,
                             "action": "refused", "alert_id": alert_id,
                             "detail": f"asked for {asked}{via}"})

    def _username(self, person_id: int | None) -> str | None:
        if person_id is None:
            return None
        person = self.directory.person(person_id)
        return person.username if person else None

    # -- the machine ----------------------------------------------------------------------------
    def _adapter(self, alert: Alert, actor: Actor, line: Line, **may_kw: Any) -> AlertState:
        # The agreed actions still open, whether it was referred, and its last event (for
        # `_not_before_last_event`, after the machine): read with the alert by `_load` unless
        # the unit has written since, else one query.
        found = self.read_memo().get(("alert", alert.id))
        outstanding, referred, last, last_seq = found[5:9] if found is not None else (
            self.s.execute(_STANDING, {"alert_id": alert.id}).one())
        self._last_event[known_id(alert.id)] = (last, last_seq)
        if not outstanding:  # the due index's flush need not read them again
            due_index.no_open_actions(self.s, known_id(alert.id))
        return steps.alert_state(self.protocol, alert, actor, line, outstanding,
                                 referred=bool(referred), **may_kw)

    def _fire(
        self, alert: Alert, actor: Actor, line: Line, trigger: str, *,
        may_kw: dict[str, Any] | None = None, **kwargs: Any,
    ) -> AlertState:
        adapter = self._check(alert, actor, line, trigger, may_kw, **kwargs)
        self._cover_for[known_id(alert.id)] = access.acting_as(actor, trigger, self.protocol,
                                                              alert, line)
        fire(self.protocol, adapter, trigger, f"alert {alert.id}", **kwargs)
        self._not_before_last_event(alert, actor)
        alert.status, alert.stage = adapter.status, adapter.stage
        return adapter

    def check(self, alert_id: int, username: str, trigger: str) -> None:
        """Raise what `trigger` would raise for this person now (NotFound, InvalidTransition,
        NotPermitted), without doing it: for pages that ask before they act."""
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        self._check(alert, actor, line, trigger, None)

    def _check(self, alert: Alert, actor: Actor, line: Line, trigger: str,
               may_kw: dict[str, Any] | None, **kwargs: Any) -> AlertState:
        adapter = self._adapter(alert, actor, line, **(may_kw or {}))
        subject = f"alert {alert.id}"
        if trigger not in possible_triggers(self.protocol, adapter.state):
            fire(self.protocol, adapter, trigger, subject, **kwargs)  # raises InvalidTransition
        if not adapter.permitted(trigger):
            # Wrong person: refused before the stage is even considered, naming who may.
            where = describe_state(self.protocol, adapter)
            raise NotPermitted(
                f"{actor.username} may not {VERBS[trigger]} alert {alert.id} ({where}):"
                f" {access.who_may(trigger, self.protocol, alert, line)} may"
            )
        return adapter

    def _not_before_last_event(self, alert: Alert, actor: Actor | None = None) -> None:
        # As read with the alert's standing in this unit of work (nothing has written an event
        # since: a concurrent writer's shows as a stale version at the flush), else now.
        known = self._last_event.pop(known_id(alert.id), None)
        last, last_seq = known if known is not None else self.s.exec(
            select(func.max(Event.at), func.max(Event.seq)).where(Event.alert_id == alert.id)
        ).one()
        if last_seq is not None and last_seq > alert.last_seq:
            # Someone else's event committed since this unit of work read the alert: that is
            # a concurrent change (say who made it), not a clock out of order.
            raise self._conflict(known_id(alert.id))
        refused = None if last is None else out_of_order(
            alert.id, last, self.now, self.tz, system=actor is not None and actor.is_system)
        if refused is not None:
            raise refused

    # -- what a unit of work writes ---------------------------------------------------------------
    def _new_alert(self, alert: Alert, actor: Actor, line: Line) -> None:
        """A new alert, INSERTed with the seq of the first event its caller writes next
        (`_event(..., first=True)`), so it is written once, not inserted and then updated."""
        alert.last_seq = 1
        if insert_directly(self.s, alert):
            self.s.info.pop(_READ, None)
        else:
            self.s.add(alert)
            self.s.flush()
        self._lines[known_id(alert.id)] = line
        self._cover_for[known_id(alert.id)] = access.acting_for(actor, alert.iro_id)

    def _event(
        self, alert: Alert, actor: Actor, kind: str, *, from_stage: str | None = None,
        to_stage: str | None = None, comment: str | None = None,
        data: dict[str, Any] | None = None, line: Line | None = None,
        first: bool = False,
    ) -> Event:
        """`first`: a new alert's first event, whose seq its INSERT carried (`_new_alert`)."""
        if not first:
            alert.last_seq += 1
        self._last_event.pop(known_id(alert.id), None)  # read before this one
        line = line or self._lines.get(known_id(alert.id))
        if line is not None:  # the IRO named here and the people its e-mails go to: one query
            self.directory.load(line.people(alert.iro_id), managers=(
                self.notifier is not None and reads_iro_managers(kind)))
        event = new_row(Event, **steps.event_values(
            alert, seq=alert.last_seq, at=self.now, actor=actor.username, kind=kind,
            from_stage=from_stage, to_stage=to_stage, comment=comment, data=data,
            team=line.team.key if line else None, iro=self._username(alert.iro_id),
            as_cover_for=None if actor.is_system else self._cover_for.get(known_id(alert.id)),
            origin=self.origin))
        self.s.add(alert)
        self.s.add(event)
        return event

    def _notice(self, alert: Alert, line: Line, event: Event, *,
                previous_stage: str | None = None, **extra: Any) -> None:
        self._notices.append((alert, line, Notice(event, previous_stage, extra)))

    def _commit_point(self, alert: Alert) -> None:
        """Write now, so a concurrent change surfaces inside the unit of work; then queue the
        e-mails the events call for, in the same transaction."""
        if write_directly(self.s):
            self.s.info.pop(_READ, None)  # what it read may have changed
        else:
            self.s.flush()
        notices, self._notices = self._notices, []
        if self.notifier is None:
            return
        for n_alert, line, notice in notices:
            known = self._actors.get(notice.event.actor)
            self.queued += self.notifier.queue(
                self.s, self.protocol, n_alert, line, notice, self.now,
                actor_name=known.name if known else None, directory=self.directory)
        self.s.flush()

    def _conflict(self, alert_id: int) -> Conflict:
        self.s.rollback()
        last = self.s.exec(
            select(Event).where(Event.alert_id == alert_id).order_by(col(Event.seq).desc())
        ).first()
        who = ""
        if last is not None:
            who = f" by {last.actor} at {last.at.astimezone(self.tz):%Y-%m-%d %H:%M}"
        return Conflict(
            f"alert {alert_id} was changed{who} while you were acting; nothing was saved."
            f" Look at it again (drp alert show {alert_id}) and retry if still needed"
        )

    def _enter_stage(self, alert: Alert, stage_key: str, informal: date | None = None) -> None:
        for column, value in due.stage_entry(self.protocol, self.cal, alert, stage_key,
                                             now=self.now, today=self.today,
                                             informal=informal).items():
            setattr(alert, column, value)
