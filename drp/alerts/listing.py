"""How a work list shows its rows, for its page, its CSV twin and the access log alike: the
date a row shows (`current_due`), the lists' order (`list_order`) and their pages (`window`).

A page shows PAGE_SIZE rows and only those are recorded as shown (one `listed` access-log row
each): a director's list of every alert of the council's history shows fifty at a time, and
the log says which fifty they saw. The CSV holds every row, and records every row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from sqlalchemy import ColumnElement, or_
from sqlmodel import col, select

from ..errors import BadValue
from ..ladder import access, due
from ..ladder.access import Actor
from ..ladder.protocol import Protocol as Ladder
from ..models import Alert, Child, Referral, Service, Team

PAGE_SIZE = 50  # rows a list's page shows (its CSV holds them all)
# The statuses a list may ask for that are kinds of open alert (see `has_status`).
OPEN_STATUSES = ("open", "overdue", "on_hold", "awaiting_iro")
# What a list reads of every alert it may show, to filter and order them before it reads its
# page's rows whole (`Queries._standings`): `Standing`'s columns, and the stage.
STANDING_COLUMNS = (col(Alert.id), col(Alert.status), col(Alert.on_hold), col(Alert.hold_until),
                    col(Alert.stage_responded_at), col(Alert.stage_due),
                    col(Alert.resolution_due), col(Alert.stage))


class Shown(Protocol):
    """What the lists' order and their status filters read of an alert: an AlertView, or its
    `Standing` (read before a list makes the views of the rows it shows)."""

    @property
    def id(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def overdue(self) -> bool: ...
    @property
    def on_hold(self) -> bool: ...
    @property
    def hold_until(self) -> date | None: ...
    @property
    def stage_responded(self) -> bool: ...
    @property
    def stage_due(self) -> date | None: ...
    @property
    def resolution_due(self) -> date | None: ...


@dataclass(frozen=True)
class Standing:
    """An alert as a list shows its state (these fields of its AlertView; the view takes its
    overdue, stage due and stage responded from here): so a long list is filtered and put in
    order before the views of its page's rows are made."""

    id: int | None
    status: str
    overdue: bool
    on_hold: bool
    hold_until: date | None
    stage_responded: bool
    stage_due: date | None  # the stage's due date, while open
    resolution_due: date | None

    @classmethod
    def of(cls, alert: Any, today: date) -> Standing:
        """From an alert's row or model, as of `today`."""
        return cls(id=alert.id, status=alert.status, overdue=due.alert_overdue(alert, today),
                   on_hold=alert.on_hold, hold_until=alert.hold_until,
                   stage_responded=alert.stage_responded_at is not None,
                   stage_due=alert.stage_due if alert.status == "open" else None,
                   resolution_due=alert.resolution_due)


def current_due(v: Shown) -> tuple[date | None, str]:
    """The date a list shows for an open alert, and what it is: a held alert's hold end, an
    answered stage's resolution due date (the IRO decides), else the stage's due date."""
    if v.status != "open":
        return None, "closed"
    if v.on_hold:
        return v.hold_until, "on_hold"
    if v.stage_responded:
        return v.resolution_due, "awaiting_iro"
    return v.stage_due or v.resolution_due, "overdue" if v.overdue else "open"


def has_status(view: Shown, status: str | None) -> bool:
    """The rest of a status filter (what the query's SQL leaves: the kinds of open alert), on
    a view or standing of an alert the query found."""
    if status == "overdue":
        return view.overdue
    if status == "on_hold":
        return view.on_hold
    if status == "awaiting_iro":  # the stage has answered: the IRO resolves or escalates
        return view.stage_responded and not view.on_hold
    return True


def list_order(v: Shown) -> tuple[bool, bool, date, int]:
    """The work lists' order: open alerts first, the overdue first among them, then by the
    date the list shows (soonest first), then by number."""
    return v.status != "open", not v.overdue, current_due(v)[0] or date.max, v.id or 0


@dataclass(frozen=True)
class Window:
    """The rows of a list one page shows: page `number` (from 1) of `pages`, of `total`
    rows; `size` None shows every row (a CSV, or a caller that does not page)."""

    number: int
    pages: int
    total: int
    size: int | None = PAGE_SIZE

    @property
    def rows(self) -> slice:
        if self.size is None:
            return slice(None)
        return slice((self.number - 1) * self.size, self.number * self.size)


def window(total: int, page: int | None) -> Window:
    """Page `page` of a list of `total` rows (from 1; a page past the end shows the last, one
    before the first the first); None: every row."""
    if page is None:
        return Window(1, 1, total, None)
    pages = max(1, -(-total // PAGE_SIZE))
    return Window(min(max(page, 1), pages), pages, total)


def alert_query(actor: Actor, protocol: Ladder, columns: Iterable[Any], status: str | None, *,
                team: str | None = None, stage: str | None = None, theme: str | None = None,
                service: str | None = None, mine: bool = False,
                where: ColumnElement[bool] | None = None) -> Any:
    """`columns` of the alerts this person may see, joined to their children and teams,
    filtered as a list asks (by SQL: the status's kind of open alert is `has_status`'s), in
    id order. `stage` may be the Cafcass referral's key (the alerts referred, whatever their
    stage); `where`: a further clause over Alert."""
    query = (
        select(*columns)
        .select_from(Alert)
        .join(Child, col(Child.id) == Alert.child_id)
        .join(Team, col(Team.id) == Child.team_id)
        .where(access.visible_alerts(actor))
        .order_by(col(Alert.id))
    )
    if team:
        query = query.where(Team.key == team)
    if stage and stage == protocol.cafcass.key:
        query = query.where(col(Alert.id).in_(select(Referral.alert_id)))
    elif stage:
        query = query.where(Alert.stage == stage)
    if where is not None:
        query = query.where(where)
    if theme:
        query = query.where(Alert.theme == theme)
    if service:
        query = query.join(Service, col(Service.id) == Team.service_id).where(
            Service.key == service)
    if mine:
        query = query.where(or_(col(Alert.iro_id) == actor.id, col(Child.iro_id) == actor.id))
    if status in OPEN_STATUSES:
        query = query.where(Alert.status == "open")
    elif status == "closed":
        query = query.where(col(Alert.status).in_(("resolved", "withdrawn", "closed")))
    elif status is not None:
        raise BadValue(f"the status {status[:40]!r} is not known; use open, overdue,"
                       " on_hold, awaiting_iro or closed", field="status")
    return query
