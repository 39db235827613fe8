"""Raising an alert (a concern, or a record of good practice): the form and its post, a thin
shell over the service layer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import idempotency
from ...alerts import AlertService
from ...errors import BadValue, DrpError, InvalidTransition
from ...ladder import due
from ...runtime import Runtime
from ..deps import (
    Context,
    CurrentUser,
    Page,
    PageRenderer,
    PostedFields,
    RuntimeDep,
    SignedInUser,
    UnitOfWork,
    Work,
    back_to_form,
    kept_form,
)
from ..forms import field_of, on_the_page, once_only, optional_date

router = APIRouter(include_in_schema=False)

# Which form field a refusal is about, from the words of its message (first match wins),
# where the service layer does not name it (BadValue.field).
RAISE_FIELDS = (("summary", "summary"), ("impact", "impact"), ("detail", "detail"),
                ("outcome wanted", "outcome_wanted"), ("theme", "theme"), ("stage", "stage"),
                ("informal due date", "due"), ("child", "child"))


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
def new_alert(request: Request, context: Context, rt: RuntimeDep, user: CurrentUser,
              work: Work, page: Page) -> Response:
    """The raise form; after a refusal or a suggestion (each posted, then redirected here), or
    a sign-in when the session had ended, with what was typed."""
    kept = kept_form(request, context, user)
    values = dict(kept.values) if kept else {}
    status = int(values.pop("status", 200))
    return _raise_form(rt, user, work, page, status=status,
                       form=kept.fields if kept else None, **values)


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
def create_alert(request: Request, context: Context, rt: RuntimeDep, user: CurrentUser,
                 form: PostedFields, work: Work) -> Response:
    """Raise, or suggest a theme; a suggestion or a refusal goes back to the form's page
    (Post/Redirect/Get) with what was typed, so reloading it never posts again."""
    if form.get("do") == "suggest":
        text = " ".join(form.get(k, "") for k in ("summary", "detail", "impact"))
        found = rt.suggest([text]) if text.strip() else []
        return back_to_form(context, user, "/alerts/new#theme", form, 200,
                            suggestion=found[0] if found else None)
    done = "good_practice" if form.get("kind") == "good_practice" else "raised"
    try:
        url = once_only(request, form, work, user.username, lambda svc: (
            f"/alerts/{_raise(svc, user.username, form)}?done={done}"))
    except InvalidTransition as exc:
        # The child has an open concern already: the IRO confirms this one is separate.
        open_ids = _open_concerns(work, user.username, form.get("child", ""))
        return back_to_form(context, user, "/alerts/new", form, exc.http_status,
                            error=on_the_page(exc),
                            error_field="separate" if open_ids else None,
                            open_alerts=open_ids)
    except DrpError as exc:
        return back_to_form(context, user, "/alerts/new", form, exc.http_status,
                            error=on_the_page(exc), error_field=field_of(exc, RAISE_FIELDS))
    return RedirectResponse(url, 303)


def _open_concerns(work: UnitOfWork, who: str, child: str) -> list[int]:
    """The child's open concerns the person can see (the ones the refusal named)."""
    with work() as svc:
        return [v.id for v in svc.list_alerts(who, "open")
                if v.child == child and v.kind == "concern"]
