"""The alert pages: the lists, raising an alert, one alert and what may be done to it. Each a
thin shell over the service layer, decided by the same access policy."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...alerts import ActionIn, AlertService
from ...clock import parse_date
from ...errors import BadValue, DrpError
from ...runtime import Runtime
from ..deps import (
    CurrentUser,
    Page,
    PageRenderer,
    PostedFields,
    PostedForm,
    RuntimeDep,
    SignedInUser,
    UnitOfWork,
    Work,
)

router = APIRouter(include_in_schema=False)

CSV_COLUMNS = ["id", "child", "team", "status", "stage", "responsible", "theme", "raised_at",
               "stage_due", "resolution_due", "overdue", "summary"]
ACTION_LABELS = {
    "respond": "Respond", "escalate": "Escalate", "resolve": "Resolve",
    "withdraw": "Withdraw", "hold": "Put on hold", "resume": "Resume",
    "extend": "Agree an extension", "refer": "Refer to Cafcass", "reopen": "Reopen",
    "set_theme": "Confirm or change the theme",
}
# Which form field a refusal is about, from the words of its message (first match wins).
RAISE_FIELDS = (("summary", "summary"), ("impact", "impact"), ("detail", "detail"),
                ("outcome wanted", "outcome_wanted"), ("theme", "theme"), ("stage", "stage"),
                ("child", "child"))
REFER_FIELDS = (("legal advice date", "advised_on"), ("legal advice", "legal_advice"),
                ("reason", "reason"))


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
             "summary": v.summary} for v in views]
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
    return page("raise.html", user, status=status, children=children,
                themes=rt.taxonomy.themes, stages=list(rt.protocol.stages), form=form or {},
                **values)


@router.get("/alerts/new", response_class=HTMLResponse)
def new_alert(rt: RuntimeDep, user: CurrentUser, work: Work, page: Page) -> Response:
    return _raise_form(rt, user, work, page)


@router.post("/alerts/new", response_class=HTMLResponse)
def create_alert(rt: RuntimeDep, user: CurrentUser, form: PostedFields, work: Work,
                 page: Page) -> Response:
    if form.get("do") == "suggest":
        text = " ".join(form.get(k, "") for k in ("summary", "detail", "impact"))
        found = rt.suggest([text]) if text.strip() else []
        return _raise_form(rt, user, work, page, form=form,
                           suggestion=found[0] if found else None)
    try:
        with work() as svc:
            alert = svc.raise_alert(
                user.username, form.get("child", ""), form.get("summary", ""),
                detail=form.get("detail"), impact=form.get("impact"),
                outcome_wanted=form.get("outcome_wanted"), theme=form.get("theme") or None,
                stage=form.get("stage") or None)
            aid = alert.id
    except DrpError as exc:
        return _raise_form(rt, user, work, page, status=exc.http_status, form=form,
                           error=exc.message, error_field=_field_of(exc.message, RAISE_FIELDS))
    return RedirectResponse(f"/alerts/{aid}?done=raised", 303)


# -- one alert --------------------------------------------------------------------------------
def _alert_page(request: Request, rt: Runtime, user: SignedInUser, work: UnitOfWork,
                page: PageRenderer, alert_id: int, status: int = 200,
                form: dict[str, str] | None = None, **values: Any) -> Response:
    with work() as svc:
        view = svc.show(alert_id, user.username)
        allowed = svc.allowed(alert_id, user.username)
        people = [p for p in svc.people_on_line(alert_id, user.username)
                  if p[0] != user.username]  # "Me" is offered already
    return page("alert.html", user, status=status, view=view, allowed=allowed,
                labels=ACTION_LABELS, people=people, stages=rt.protocol.keys,
                themes=rt.taxonomy.themes, done=request.query_params.get("done"),
                form=form or {}, **values)


def _refer_again(user: SignedInUser, work: UnitOfWork, page: PageRenderer, alert_id: int,
                 status: int, form: dict[str, str], error: str) -> Response:
    """The referral form shown again after a refusal, the error beside its field."""
    with work() as svc:
        view = svc.show(alert_id, user.username)
    return page("refer.html", user, status=status, view=view, form=form, error=error,
                error_field=_field_of(error, REFER_FIELDS))


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def show_alert(request: Request, rt: RuntimeDep, user: CurrentUser, work: Work, page: Page,
               alert_id: int) -> Response:
    return _alert_page(request, rt, user, work, page, alert_id)


@router.get("/alerts/{alert_id}/refer", response_class=HTMLResponse)
def refer_pause(user: CurrentUser, work: Work, page: Page, alert_id: int) -> Response:
    with work() as svc:
        view = svc.show(alert_id, user.username)
        svc.check(alert_id, user.username, "refer")  # 403 or 409 with the reason
    return page("refer.html", user, view=view, form={})


# What each action's form does: the service layer's command with the form's fields.
FormAction = Callable[[AlertService, int, str, dict[str, str]], object]


def _optional_date(form: dict[str, str], key: str, what: str) -> date | None:
    value = form.get(key, "").strip()
    return parse_date(value, what) if value else None


def _actions(form: dict[str, str]) -> list[ActionIn]:
    out = []
    for i in range(1, 4):
        what = form.get(f"action{i}", "").strip()
        due = form.get(f"action{i}_due", "").strip()
        if not what and not due:
            continue
        if not what or not due:
            raise BadValue(f"agreed action {i} needs both what will be done and a due date")
        out.append(ActionIn(what, parse_date(due, f"action {i}'s due date"),
                            form.get(f"action{i}_owner") or None))
    return out


FORM_ACTIONS: dict[str, FormAction] = {
    "respond": lambda svc, aid, who, form: svc.respond(
        aid, who, form.get("message", ""), _actions(form)),
    "escalate": lambda svc, aid, who, form: svc.escalate(
        aid, who, form.get("reason", ""), to=form.get("to") or None),
    "resolve": lambda svc, aid, who, form: svc.resolve(aid, who, form.get("outcome", "")),
    "withdraw": lambda svc, aid, who, form: svc.withdraw(aid, who, form.get("reason", "")),
    "hold": lambda svc, aid, who, form: svc.hold(
        aid, who, form.get("reason", ""), _optional_date(form, "until", "the end date")),
    "resume": lambda svc, aid, who, form: svc.resume(aid, who),
    "extend": lambda svc, aid, who, form: svc.extend(
        aid, who, parse_date(form.get("until", ""), "the new due date"),
        form.get("reason", "")),
    "refer": lambda svc, aid, who, form: svc.refer(
        aid, who, form.get("reason", ""), legal_advice=form.get("legal_advice"),
        advised_on=_optional_date(form, "advised_on", "the legal advice date")),
    "reopen": lambda svc, aid, who, form: svc.reopen(aid, who, form.get("reason", "")),
    "theme": lambda svc, aid, who, form: svc.set_theme(aid, who, form.get("theme", "")),
}


@router.post("/alerts/{alert_id}/{action}", response_class=HTMLResponse)
def act(request: Request, rt: RuntimeDep, user: CurrentUser, form: PostedFields, work: Work,
        page: Page, alert_id: int, action: str) -> Response:
    command = FORM_ACTIONS.get(action)
    try:
        if command is None:
            raise BadValue(f"there is no action {action!r}")
        with work() as svc:
            command(svc, alert_id, user.username, form)
    except DrpError as exc:
        if exc.http_status == 404:
            raise
        if action == "refer" and exc.http_status in (400, 422):
            return _refer_again(user, work, page, alert_id, exc.http_status, form,
                                exc.message)
        return _alert_page(request, rt, user, work, page, alert_id, status=exc.http_status,
                           error=exc.message, error_action=action, form=form)
    return RedirectResponse(f"/alerts/{alert_id}?done={action}", 303)


@router.post("/alerts/{alert_id}/actions/{no}/done")
def action_done(request: Request, rt: RuntimeDep, user: CurrentUser, _form: PostedForm,
                work: Work, page: Page, alert_id: int, no: int) -> Response:
    try:
        with work() as svc:
            svc.action_done(alert_id, no, user.username)
    except DrpError as exc:
        if exc.http_status == 404:
            raise
        return _alert_page(request, rt, user, work, page, alert_id, status=exc.http_status,
                           error=exc.message)
    return RedirectResponse(f"/alerts/{alert_id}?done=action", 303)


def _field_of(message: str, fields: tuple[tuple[str, str], ...]) -> str | None:
    for words, field in fields:
        if words in message:
            return field
    return None
