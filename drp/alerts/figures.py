"""The figures at a glance for those who oversee the service (heads of service, service
managers, the IRO manager, the assistant director and the director), and the list filters
that show exactly the alerts behind each figure.

Each figure counts what the lists show, by the same rules: the access policy's
`visible_alerts` (a head of service sees their services), `drp.ladder.due` for overdue (each
view's `overdue`), `current_due` for the date a list shows and `Queries.list_dates` for the
working days open. A few queries whatever the number of alerts; not audited (a count shows no
record, as `work_counts`; the lists each figure links to are)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func
from sqlmodel import col, select

from ..errors import BadValue
from ..ladder import access
from ..models import Alert, Child, Referral
from ..schemas import AlertView
from .listing import Shown, Standing, Window, current_due, has_status, list_order, window
from .queries import Queries
from .unit import known_id

DUE_WEEK = "due_week"  # the status filter of the alerts due by the end of this week
MONTH = re.compile(r"(\d{4})-(\d{2})")


def due_by(v: Shown, end: date) -> bool:
    """Open, running (not on hold), not yet overdue, and its shown due date is by `end`."""
    shown, state = current_due(v)
    return state in ("open", "awaiting_iro") and not v.overdue and shown is not None \
        and shown <= end


def week_end(today: date) -> date:
    """The Sunday ending today's week (Monday to Sunday)."""
    return today + timedelta(days=6 - today.weekday())


def month_of(text: str | None) -> date | None:
    """The first day of the month written YYYY-MM, or None for none given."""
    if not text:
        return None
    found = MONTH.fullmatch(text)
    if found is None or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 2000:
        raise BadValue("the month must be written like 2027-03", field="raised")
    return date(int(found.group(1)), int(found.group(2)), 1)


def next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


@dataclass(frozen=True)
class StageCount:
    key: str
    title: str
    count: int


@dataclass(frozen=True)
class Glance:
    """The figures, each with the list filters that show exactly its alerts."""
    today: date
    week_end: date
    open: int
    by_stage: list[StageCount]
    referred: int  # open alerts referred to Cafcass (also counted at their stage)
    cafcass: str  # the referral's key, the stage filter of the referred
    overdue: int
    due_this_week: int
    on_hold: int
    average_days_open: float | None  # working days, the open alerts raised to today
    this_month: date  # its first day
    last_month: date
    raised_this_month: int
    raised_last_month: int


class Figures(Queries):
    def _raised_in(self, first: date) -> ColumnElement[bool]:
        """Raised in the council's month beginning `first` (its local midnights)."""
        start = datetime.combine(first, time(0), tzinfo=self.tz)
        end = datetime.combine(next_month(first), time(0), tzinfo=self.tz)
        return and_(col(Alert.raised_at) >= start, col(Alert.raised_at) < end)

    def alert_list(self, username: str, status: str | None = None, *, raised: str | None = None,
                   kind: str | None = None, mine: bool = False, page: int | None = None,
                   **filters: Any) -> tuple[list[AlertView], Window]:
        """`list_alerts` with the figures' filters too, in the lists' order (`list_order`):
        `status` may be DUE_WEEK (open, running and due by Sunday), `raised` a month
        (YYYY-MM) and `kind` concern or good_practice. The views of page `page`'s rows
        (`listing.window`; None: of every row) and which page that is; audited as a list
        with those alerts shown. The rows are filtered and put in order by their standing
        (`listing.Standing`, read as a few columns of each: `_standings`) first, so a page
        reads whole, and makes the views of, only its own rows: a director's page of the
        council's every alert costs 50 rows' work and a column read of the rest."""
        if kind not in (None, "concern", "good_practice"):
            raise BadValue("the kind must be concern or good_practice", field="kind")
        first = month_of(raised)
        clauses = []
        if first is not None:
            clauses.append(self._raised_in(first))
        if kind is not None:
            clauses.append(col(Alert.kind) == kind)
        where = and_(*clauses) if clauses else None
        asking = "open" if status == DUE_WEEK else status
        today, end_of_week = self.today, week_end(self.today)

        def wanted(st: Standing) -> bool:
            return has_status(st, status) and (status != DUE_WEEK or due_by(st, end_of_week))

        if page is None:  # every row (a CSV): read whole, in one statement
            actor, rows = self._alert_rows(username, asking, where=where, mine=mine, **filters)
            whole = {known_id(a.id): (a, c, t) for a, c, t in rows}
            kept = sorted((st for a, _c, _t in rows if wanted(st := Standing.of(a, today))),
                          key=list_order)
            on = window(len(kept), None)
            shown = {known_id(st.id): st for st in kept}
        else:
            actor, standings = self._standings(username, asking, where=where, mine=mine,
                                               **filters)
            kept = sorted((st for st, _stage in standings if wanted(st)), key=list_order)
            on = window(len(kept), page)
            ids = [known_id(st.id) for st in kept[on.rows]]
            # The page's rows read whole, by id and the same filters again, each standing as
            # its row reads now: a change committed between the two reads leaves the page a
            # row short for each alert changed, never showing (or recording as shown) what no
            # longer fits.
            by_id = col(Alert.id).in_(ids)
            _actor, rows = self._alert_rows(
                username, asking, where=by_id if where is None else and_(by_id, where),
                mine=mine, **filters) if ids else (actor, [])
            whole = {known_id(a.id): (a, c, t) for a, c, t in rows}
            fresh = {i: Standing.of(whole[i][0], today) for i in ids if i in whole}
            shown = {i: st for i, st in fresh.items() if wanted(st)}
        views = [view for view, _alert, _line in self._views(
            actor, [whole[i] for i in shown], None, shown)]
        asked = {"status": status or "all", "raised": raised, "kind": kind,
                 "mine": mine or None, **filters}
        self._audit(actor, "list", None, ", ".join(f"{k}={v}" for k, v in asked.items() if v),
                    [known_id(v.id) for v in views], on)
        return views, on

    def glance(self, username: str) -> Glance:
        """The figures for this person, over the open alerts they may see: counted by each
        alert's standing (`listing.Standing`, as the lists filter them), not by their views."""
        actor, read = self._standings(username, "open")
        today = self.today
        end = week_end(today)
        standings = [st for st, _stage in read]
        stages: dict[str, int] = {}
        for _st, stage in read:
            stages[stage] = stages.get(stage, 0) + 1
        order = [*self.protocol.keys, *sorted(set(stages) - set(self.protocol.keys))]
        ids = [known_id(v.id) for v in standings]
        days = self.list_dates(ids)
        referred = self.s.exec(select(func.count(func.distinct(Referral.alert_id))).where(
            col(Referral.alert_id).in_(ids))).one() if ids else 0
        open_days = [d["days_open"] for d in days.values() if isinstance(d["days_open"], int)]
        this_month = today.replace(day=1)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        counts = {first: 0 for first in (this_month, last_month)}
        for at in self.s.exec(select(Alert.raised_at).join(
                Child, col(Child.id) == Alert.child_id).where(
                access.visible_alerts(actor), col(Alert.kind) == "concern",
                col(Alert.raised_at) >= datetime.combine(last_month, time(0), tzinfo=self.tz),
                col(Alert.raised_at) < datetime.combine(next_month(this_month), time(0),
                                                        tzinfo=self.tz))):
            counts[at.astimezone(self.tz).date().replace(day=1)] += 1
        return Glance(
            today=today, week_end=end, open=len(standings),
            by_stage=[StageCount(k, self.protocol.title(k), stages.get(k, 0)) for k in order],
            referred=referred,
            cafcass=self.protocol.cafcass.key,
            overdue=sum(1 for v in standings if v.overdue),
            due_this_week=sum(1 for v in standings if due_by(v, end)),
            on_hold=sum(1 for v in standings if v.on_hold),
            average_days_open=(round(sum(open_days) / len(open_days), 1) if open_days
                               else None),
            this_month=this_month, last_month=last_month,
            raised_this_month=counts[this_month], raised_last_month=counts[last_month])
