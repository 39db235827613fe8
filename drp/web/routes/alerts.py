"""The alert pages: the lists, the CSV export, and raising an alert (a concern, or a record
of good practice). Each a thin shell over the service layer, decided by the same access
policy. One alert's page and its forms are in alert.py."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import idempotency
from ...alerts import AlertService
from ...clock import parse_date
from ...errors import BadValue, DrpError, InvalidTransition
from ...ladder import due
from ...runtime import Runtime
from ..deps import (
    CurrentUser,
    Page,
    PageRenderer,
    PostedFields,
    RuntimeDep,
    SignedInUser,
    UnitOfWork,
    Work,
)

router = APIRouter(include_in_schema=False)

CSV_COLUMNS = ["id", "child", "team", "status", "stage", "responsible", "theme", "raised_at",
               "stage_due", "resolution_due", "overdue", "summary", "kind"]
# Which form field a refusal is about, from the words of its message (first match wins),
# where the service layer does not name it (BadValue.field).
RAISE_FIELDS = (("summary", "summary"), ("impact", "impact"), ("detail", "detail"),
                ("outcome wanted", "outcome_wanted"), ("theme", "theme"), ("stage", "stage"),
                ("informal due date", "due"), ("child", "child"))


# -- the lists --------------------------------------------------------------------------------
def _filters(request: Request) -> dict[str, str | None]:
    q = request.query_params
    return {k: (q.get(k) or None) for k in ("status", "team", "stage", "theme", "service")}


def _list_page(request: Request, rt: Runtime, user: SignedInUser, work: UnitOfWork,
               page: PageRenderer,
               title: str, intro: str, *, mine: bool = False, inbox: bool = False,
               default_status: str | None = None, export: bool = False) -> Response:
    f = _filters(request)
    status = f["status"] or default_status
    with work() as svc:
        if inbox:
            views = svc.inbox(user.username)
        else:
            views = svc.list_alerts(user.username, status, team=f["team"], stage=f["stage"],
                                    theme=f["theme"], service=f["service"], mine=mine)
    views.sort(key=lambda v: (v.status != "open", not v.overdue,
                              v.stage_due or v.resolution_due, v.id))
    return page("alerts.html", user, title=title, intro=intro, views=views, filters=f,
                status_filter=status, show_filters=not inbox, export=export,
                path=request.url.path, stages=rt.protocol.keys, themes=rt.taxonomy.themes)


@router.get("/my-alerts", response_class=HTMLResponse)
def my_alerts(request: Request, rt: RuntimeDep, user: CurrentUser, work: Work,
              page: Page) -> Response:
    return _list_page(request, rt, user, work, page, "My alerts",
                      "Alerts you raised or hold as the child's IRO: open first, overdue"
                      " highlighted.", mine=True)


@router.get("/inbox", response_class=HTMLResponse)
def inbox(request: Request, rt: RuntimeDep, user: CurrentUser, work: Work,
          page: Page) -> Response:
    return _list_page(request, rt, user, work, page, "Alerts awaiting your response",
                      "Alerts at a stage where you are asked to respond, oldest due first.",
                      inbox=True)


@router.get("/outstanding", response_class=HTMLResponse)
def outstanding(request: Request, rt: RuntimeDep, user: CurrentUser, work: Work,
                page: Page) -> Response:
    return _list_page(request, rt, user, work, page, "Outstanding alerts",
                      "The open alerts of the services you can see, overdue first: the"
                      " on-screen twin of the fortnightly digest.", default_status="open",
                      export=True)


@router.get("/alerts", response_class=HTMLResponse)
def all_alerts(request: Request, rt: RuntimeDep, user: CurrentUser, work: Work,
               page: Page) -> Response:
    return _list_page(request, rt, user, work, page, "Alerts", "Every alert you can see.",
                      export=True)


@router.get("/alerts.csv")
def alerts_csv(request: Request, user: CurrentUser, work: Work) -> Response:
    f = _filters(request)
    with work() as svc:
        views = svc.list_alerts(user.username, f["status"], team=f["team"], stage=f["stage"],
                                theme=f["theme"], service=f["service"])
    rows = [{"id": v.id, "child": v.child, "team": v.team, "status": v.status,
             "stage": v.stage, "responsible": v.responsible, "theme": v.theme,
             "raised_at": v.raised_at.isoformat(), "stage_due": v.stage_due,
             "resolution_due": v.resolution_due, "overdue": v.overdue,
             "summary": v.summary, "kind": v.kind} for v in views]
    return csv_response(rows, "drp-alerts.csv", CSV_COLUMNS)


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


# -- raising ----------------------------------------------------------------------------------
def _raise_form(rt: Runtime, user: SignedInUser, work: UnitOfWork, page: PageRenderer,
                status: int = 200, form: dict[str, str] | None = None,
                **values: Any) -> Response:
    with work() as svc:
        children = svc.children_for(user.username)
        dates = informal_dates(svc)
    return page("raise.html", user, status=status, children=children,
                themes=rt.taxonomy.themes, stages=list(rt.protocol.stages), form=form or {},
                dates=dates, form_key=idempotency.new_key, **values)


def informal_dates(svc: AlertService) -> dict[str, Any]:
    """What the raise form says about the informal due date: the protocol's default (the date
    the service gives when none is chosen) and its most, in working days and as a date. A
    hint only: the service layer refuses a date past the most (drp.ladder.due)."""
    stage = svc.protocol.stages[0]
    return {"default": due.informal_due(svc.protocol, svc.cal, svc.today, None),
            "default_days": stage.timescale_working_days,
            "latest": due.latest_informal_due(svc.protocol, svc.cal, svc.today),
            "max_days": stage.max_working_days, "today": svc.today}


@router.get("/alerts/new", response_class=HTMLResponse)
def new_alert(rt: RuntimeDep, user: CurrentUser, work: Work, page: Page) -> Response:
    return _raise_form(rt, user, work, page)


def _raise(svc: AlertService, who: str, form: dict[str, str]) -> int:
    kind = form.get("kind") or "concern"
    if kind == "good_practice":  # the service refuses a concern's fields, if filled in
        # (the stage is a choice the form always sends, so it is left aside)
        alert = svc.record_good_practice(
            who, form.get("child", ""), form.get("summary", ""), detail=form.get("detail"),
            theme=form.get("theme") or None, due=form.get("due", "").strip() or None,
            impact=form.get("impact"), outcome_wanted=form.get("outcome_wanted"))
    elif kind == "concern":
        alert = svc.raise_alert(
            who, form.get("child", ""), form.get("summary", ""), detail=form.get("detail"),
            impact=form.get("impact"), outcome_wanted=form.get("outcome_wanted"),
            theme=form.get("theme") or None, stage=form.get("stage") or None,
            due_on=optional_date(form, "due", "the informal due date"),
            separate=form.get("separate") == "yes")
    else:
        raise BadValue(f"{kind!r} is not a kind of alert; choose a concern or good practice",
                       field="kind")
    return int(alert.id or 0)


@router.post("/alerts/new", response_class=HTMLResponse)
def create_alert(request: Request, rt: RuntimeDep, user: CurrentUser, form: PostedFields,
                 work: Work, page: Page) -> Response:
    if form.get("do") == "suggest":
        text = " ".join(form.get(k, "") for k in ("summary", "detail", "impact"))
        found = rt.suggest([text]) if text.strip() else []
        return _raise_form(rt, user, work, page, form=form,
                           suggestion=found[0] if found else None)
    done = "good_practice" if form.get("kind") == "good_practice" else "raised"
    try:
        url = once_only(request, form, work, user.username, lambda svc: (
            f"/alerts/{_raise(svc, user.username, form)}?done={done}"))
    except InvalidTransition as exc:
        # The child has an open concern already: the IRO confirms this one is separate.
        open_ids = _open_concerns(work, user.username, form.get("child", ""))
        return _raise_form(rt, user, work, page, status=exc.http_status, form=form,
                           error=on_the_page(exc),
                           error_field="separate" if open_ids else None,
                           open_alerts=open_ids)
    except DrpError as exc:
        return _raise_form(rt, user, work, page, status=exc.http_status, form=form,
                           error=on_the_page(exc), error_field=field_of(exc, RAISE_FIELDS))
    return RedirectResponse(url, 303)


def once_only(request: Request, form: dict[str, str], work: UnitOfWork, who: str,
              change: Callable[[AlertService], str]) -> str:
    """A form's change, which returns the page to go to, in one transaction with the form's
    one-time key (drp.idempotency): the same key sent again (a double click, a resubmitted
    page) gets the first submission's page and changes nothing. A form without a key (a
    script's post) is done as a fresh submission."""
    once = idempotency.for_form(form, f"POST {request.url.path}")
    with work() as svc:
        first = once.claim(svc.s, who, svc.now) if once else None
        if first is not None:
            return first.result
        url = change(svc)
        if once:
            once.record(svc.s, 303, url)
    return url


def _open_concerns(work: UnitOfWork, who: str, child: str) -> list[int]:
    """The child's open concerns the person can see (the ones the refusal named)."""
    with work() as svc:
        return [v.id for v in svc.list_alerts(who, "open")
                if v.child == child and v.kind == "concern"]


# A command-line option the service's message names in brackets, e.g. "(--until YYYY-MM-DD)":
# a page points at its own field instead.
_CLI_OPTION = re.compile(r" \(--[a-z-]+(?: [A-Z-]+)?\)")


def on_the_page(exc: DrpError) -> str:
    """A refusal's message as a page shows it, beside the field: without the option name."""
    return _CLI_OPTION.sub("", exc.message)


def optional_date(form: dict[str, str], key: str, what: str) -> date | None:
    """A date field left empty is None; one not a date is refused naming the field."""
    value = form.get(key, "").strip()
    if not value:
        return None
    try:
        return parse_date(value, what)
    except BadValue as exc:
        raise BadValue(exc.message, field=key) from None


def field_of(exc: DrpError, words: tuple[tuple[str, str], ...]) -> str | None:
    """The form field a refusal is about: the one the service layer named (BadValue.field),
    else the first whose words its message holds."""
    named = getattr(exc, "field", None)
    if named:
        return str(named)
    for said, field in words:
        if said in exc.message:
            return field
    return None


