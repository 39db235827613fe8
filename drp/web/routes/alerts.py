"""The alert lists and their CSV exports, each a thin shell over the service layer, decided by
the same access policy. Raising is in raising.py, one alert's page and its forms in alert.py."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ...alerts import AlertService
from ...alerts.figures import DUE_WEEK, month_of
from ...alerts.listing import Window, current_due, window
from ...runtime import Runtime
from ...schemas import AlertView
from ..deps import (
    Context,
    CurrentUser,
    Page,
    PageRenderer,
    RuntimeDep,
    SignedInUser,
    UnitOfWork,
    Work,
    kept_page,
    page_frame,
    unit_of_work,
    web_context,
)

router = APIRouter(include_in_schema=False)

CSV_COLUMNS = ["id", "child", "team", "status", "stage", "responsible", "theme", "raised_at",
               "stage_due", "resolution_due", "overdue", "summary", "kind", "team_name",
               "iro_name", "responsible_name", "state", "current_due", "responded_on",
               "closed_on", "days_open"]
ACTION_COLUMNS = ["alert", "action", "text", "due", "overdue", "child", "team_name",
                  "alert_state", "responded_on", "closed_on", "days_open"]


# -- the lists --------------------------------------------------------------------------------
# Each list is one page and its CSV twin (the page's address + ".csv"), from the same rows:
# what a CSV holds is what the screen shows, with the same filters.
FILTER_KEYS = ("status", "team", "stage", "theme", "service", "raised", "kind")
BASIC_FILTERS = ("status", "team", "stage", "theme", "service")
STATUSES = [("", "Any"), ("open", "Open"), ("overdue", "Overdue"), (DUE_WEEK, "Due this week"),
            ("on_hold", "On hold"), ("awaiting_iro", "Awaiting the IRO's decision"),
            ("closed", "Closed")]
WHY = {"response": "Response received: accept and resolve, or escalate",
       "overdue": "Overdue: escalate, extend or resolve",
       "hold_ending": "Hold ending: resume, or hold again"}


# The rows of a list's page (None: of every row, for the CSV), in the list's order, and which
# page that is, from the service, which records as shown the rows of that page.
Fetch = Callable[[AlertService, str, dict[str, Any], int | None], tuple[list[Any], Window]]


def _paged(rows: list[Any], page: int | None) -> tuple[list[Any], Window]:
    """A whole list's rows as `Fetch` gives them: those of page `page` (the window the service
    recorded as shown), and which page that is."""
    on = window(len(rows), page)
    return rows[on.rows], on


@dataclass(frozen=True)
class WorkList:
    title: str
    intro: str
    fetch: Fetch
    default_status: str | None = None
    filters: bool = True
    actions: bool = False  # rows are (action, alert), not alerts
    figures: bool = True  # takes the figures' filters (due this week, raised in a month)


def _alerts(mine: bool = False) -> Fetch:
    # (with the figures' filters: due this week, raised in a month, the kind)
    return lambda svc, who, f, page: svc.alert_list(who, mine=mine, page=page, **f)


LISTS: dict[str, WorkList] = {
    "/my-alerts": WorkList(
        "My alerts", "Alerts you raised or hold as the child's IRO: open first, overdue"
        " highlighted.", _alerts(mine=True)),
    "/awaiting-decision": WorkList(
        "Awaiting my decision", "Your alerts waiting for you as the child's IRO: a response"
        " received, a stage overdue, or a hold ending within 5 working days.",
        lambda svc, who, f, page: _paged(svc.awaiting_decision(who, page, **f), page),
        figures=False),
    "/inbox": WorkList(
        "Alerts awaiting your response", "Alerts at a stage where you are asked to respond,"
        " oldest due first.", lambda svc, who, f, page: _paged(svc.inbox(who, page), page),
        filters=False, figures=False),
    "/responded": WorkList(
        "Responded, actions open", "Alerts you responded to whose agreed actions are not all"
        " done: open one to mark an action done.",
        lambda svc, who, f, page: _paged(svc.responded_open(who, page, **f), page),
        figures=False),
    "/my-actions": WorkList(
        "My actions", "Agreed actions you own that are not done yet, soonest due first.",
        lambda svc, who, f, page: _paged(svc.my_actions(who, page, **f), page),
        actions=True, figures=False),
    "/outstanding": WorkList(
        "Outstanding alerts", "The open alerts of the services you can see, overdue first:"
        " the on-screen twin of the fortnightly digest.", _alerts(), default_status="open"),
    "/alerts": WorkList("Alerts", "Every alert you can see.", _alerts()),
}


def _filters(request: Request) -> dict[str, str | None]:
    q = request.query_params
    return {k: (q.get(k) or None) for k in FILTER_KEYS}


STATE_WORDS = {"on_hold": "on hold", "awaiting_iro": "awaiting the IRO's decision",
               "overdue": "overdue", "open": "open"}


def state_of(v: AlertView) -> str:
    """The status as the list's tag says it (a held alert is "on hold", not "open")."""
    if v.status != "open":
        return "good practice" if v.kind == "good_practice" else v.status
    state = current_due(v)[1]
    if v.overdue and state == "awaiting_iro":
        return "overdue, awaiting the IRO's decision"
    return STATE_WORDS[state]


def alert_of(row: Any) -> AlertView:
    """The alert of a list's row: the row itself, or the alert of an (action, alert) or an
    (alert, why) pair."""
    if isinstance(row, AlertView):
        return row
    return next(part for part in row if isinstance(part, AlertView))


def _rows(spec: WorkList, request: Request, user: SignedInUser, work: UnitOfWork,
          page: int | None = None, frame: bool = False,
          ) -> tuple[list[Any], Window, dict[str, str | None], dict[str, Any]]:
    """The rows of the list's page `page` (None: all of them, for the CSV) as on screen, in
    the list's order, filtered; which page that is; the filters; and what names the rows
    (and, for the page, its frame: `page_frame`). Only the page's rows are recorded as
    shown, named and dated."""
    keys = FILTER_KEYS if spec.figures else BASIC_FILTERS
    f = {k: v for k, v in _filters(request).items() if k in keys}
    f["status"] = f["status"] or spec.default_status
    asked = {k: v for k, v in f.items() if v} if spec.filters else {}
    with work() as svc:
        rows, on = spec.fetch(svc, user.username, asked, page)
        people, teams = svc.names_for_lists(user.username, [alert_of(r) for r in rows])
        dates = svc.list_dates([alert_of(r).id for r in rows])
        shown = page_frame(svc, user) if frame else {}
    return rows, on, f, {"people": people, "teams": teams, "team_names": dict(teams),
                         "dates": dates, "alert_of": alert_of,  # (a row's alert, for the page)
                         **shown}


PAGE_ASKED = re.compile(r"[0-9]{1,6}")  # (ASCII digits: "²" is a digit to str.isdigit)


def _page_asked(request: Request) -> int:
    """The page asked for by `?page=` (from 1; anything else, the first)."""
    asked = request.query_params.get("page", "1")
    return int(asked) if PAGE_ASKED.fullmatch(asked) else 1


def _list_page(request: Request, rt: Runtime, user: SignedInUser, work: UnitOfWork,
               page: PageRenderer) -> Response:
    path = request.url.path
    spec = LISTS[path]
    rows, on, f, named = _rows(spec, request, user, work, _page_asked(request), frame=True)
    query = urlencode({k: v for k, v in f.items() if v})

    def page_url(n: int) -> str:
        return f"{path}?" + urlencode({**{k: v for k, v in f.items() if v}, "page": n})

    return page("alerts.html", user, title=spec.title, intro=spec.intro, total=on.total,
                rows=rows, page_number=on.number, pages=on.pages, page_url=page_url,
                filters=f, status_filter=f["status"], show_filters=spec.filters,
                statuses=[s for s in STATUSES if spec.figures or s[0] != DUE_WEEK],
                raised_month=month_of(f.get("raised")),
                actions_list=spec.actions, why=WHY, path=path,
                csv_url=f"{path}.csv" + (f"?{query}" if query else ""),
                stages=[(k, rt.protocol.title(k))
                        for k in [*rt.protocol.keys, rt.protocol.cafcass.key]],
                themes=[(t.key, t.title) for t in rt.taxonomy.themes],
                current_due=current_due, state_of=state_of,
                **named)


def _list_csv(request: Request, user: SignedInUser, work: UnitOfWork) -> Response:
    path = request.url.path.removesuffix(".csv")
    spec = LISTS[path]
    rows, _on, _f, named = _rows(spec, request, user, work)
    people, teams, dates = named["people"], named["team_names"], named["dates"]
    name = path.strip("/")
    if spec.actions:
        return csv_response([
            {"alert": v.id, "action": a.no, "text": a.text, "due": a.due,
             "overdue": a.overdue, "child": v.child, "team_name": teams.get(v.team, v.team),
             "alert_state": state_of(v), **dates[v.id]} for a, v in rows],
            f"drp-{name}.csv", ACTION_COLUMNS)
    out = []
    for row in rows:
        v = alert_of(row)
        shown_due, _state = current_due(v)
        out.append({
            "id": v.id, "child": v.child, "team": v.team, "status": v.status,
            "stage": v.stage, "responsible": v.responsible, "theme": v.theme,
            "raised_at": v.raised_at.isoformat(), "stage_due": v.stage_due,
            "resolution_due": v.resolution_due, "overdue": v.overdue,
            "summary": v.summary, "kind": v.kind, "team_name": teams.get(v.team, v.team),
            "iro_name": people.get(v.iro, v.iro),
            "responsible_name": people.get(v.responsible or "", v.responsible),
            "state": state_of(v), "current_due": shown_due, **dates[v.id]})
    return csv_response(out, f"drp-{name}.csv", CSV_COLUMNS)


def _register(path: str) -> None:
    def page_view(request: Request, context: Context, rt: RuntimeDep, user: CurrentUser,
                  work: Work, page: Page) -> Response:
        return kept_page(request, context, user,
                         lambda: _list_page(request, rt, user, work, page))

    def csv_view(request: Request, user: CurrentUser, work: Work) -> Response:
        return _list_csv(request, user, work)

    name = path.strip("/").replace("-", "_") or "alerts"
    router.add_api_route(path, page_view, methods=["GET"], response_class=HTMLResponse,
                         name=name)
    router.add_api_route(f"{path}.csv", csv_view, methods=["GET"], name=f"{name}_csv")


for _path in LISTS:
    _register(_path)


def nav_counts(request: Request, user: SignedInUser | None) -> dict[str, int]:
    """The counts the navigation shows beside each work list (`Queries.work_counts`): for
    the templates' globals (drp.web.app), called from base.html's navigation."""
    if user is None:
        return {}
    work = unit_of_work(request, web_context(request))
    with work() as svc:
        return svc.work_counts(user.username)


def csv_safe(value: Any) -> str:
    """Cells a spreadsheet would run as a formula are prefixed with an apostrophe."""
    text_value = "" if value is None else str(value)
    if text_value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text_value
    return text_value


def csv_response(rows: list[dict[str, Any]], filename: str, columns: list[str]) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()  # even with no rows, so a spreadsheet knows the columns
    for row in rows:
        writer.writerow({k: csv_safe(v.isoformat() if isinstance(v, date) else v)
                         for k, v in row.items()})
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
