"""Raising an alert (a concern, or a record of good practice): the form and its post, a thin
shell over the service layer. Every field is checked up front with the service layer's own
rules (drp.alerts.inputs, the ladder's date rule, the children the person may raise for), so
the page lists every problem at once; the service checks all again when it raises."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import idempotency
from ...alerts import AlertService, inputs
from ...errors import DrpError, InvalidTransition
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
)
from ..forms import Problems, date_input, on_the_page, once_only, refused
from ..kept import back_to_form, kept_form

router = APIRouter(include_in_schema=False)

# Which form field a refusal is about, from the words of its message (first match wins),
# where the service layer does not name it (BadValue.field).
RAISE_FIELDS = (("summary", "summary"), ("impact", "impact"), ("detail", "detail"),
                ("outcome wanted", "outcome_wanted"), ("theme", "theme"), ("stage", "stage"),
                ("informal due date", "due"), ("child", "child"))
KINDS = ("concern", "good_practice")


def _raise_form(rt: Runtime, user: SignedInUser, work: UnitOfWork, page: PageRenderer,
                status: int = 200, form: dict[str, str] | None = None,
                **values: Any) -> Response:
    with work() as svc:
        children = svc.children_for(user.username)
        dates = informal_dates(svc)
    return page("raise.html", user, status=status, children=children,
                themes=rt.taxonomy.themes, stages=list(rt.protocol.stages), form=form or {},
                dates=dates, form_key=idempotency.new_key,
                limits={"detail": inputs.DETAIL_MAX, "text": inputs.TEXT_MAX}, **values)


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


# The form's text fields as the service layer names and limits them (drp.alerts.inputs).
TEXTS = (("summary", "the summary", inputs.SUMMARY_MAX, True),
         ("detail", "the detail", inputs.DETAIL_MAX, False),
         ("impact", "the impact on the child", inputs.TEXT_MAX, False),
         ("outcome_wanted", "the outcome wanted", inputs.TEXT_MAX, False))


def _text(value: str | None, what: str, limit: int, required: bool) -> Callable[[], str | None]:
    return lambda: inputs.text(value, what, required=required, limit=limit)


def _checked(svc: AlertService, who: str, form: dict[str, str]) -> dict[str, Any]:
    """Every field of the form, each by the rule the service applies to it; every problem
    at once (FormProblems), else the values to raise with."""
    problems = Problems(who)
    kind = form.get("kind") or "concern"
    if kind not in KINDS:
        problems.add("kind", "Choose a concern or good practice")
    child = form.get("child", "").strip()
    not_theirs = (f"There is no child {child[:40]} whose alerts you may raise; check the"
                  " reference")
    if not child:
        problems.add("child", "Enter the child's reference")
    elif child not in svc.children_for(who):
        problems.add("child", not_theirs)
    values: dict[str, Any] = {"child": child, "kind": kind}
    for name, what, limit, required in TEXTS:
        values[name] = problems.check(name, _text(form.get(name), what, limit, required))
    stage = form.get("stage") or None
    day: date | None = problems.check("due", lambda: date_input(form, "due",
                                                                "the informal due date"))
    if day is not None and kind == "concern" and not svc.protocol.is_formal(
            stage if stage in svc.protocol.keys else svc.protocol.keys[0]):
        problems.check("due", lambda: due.informal_due(svc.protocol, svc.cal, svc.today, day))
    if problems.errors != [("child", not_theirs)]:
        problems.raise_any()
    # else only the child is not theirs: the service refuses it (404, or 403 with the reason),
    # as it answers the API and a script.
    return {**values, "stage": stage, "due": day, "theme": form.get("theme") or None,
            "separate": form.get("separate") == "yes"}


def _raise(svc: AlertService, who: str, form: dict[str, str]) -> int:
    v = _checked(svc, who, form)
    if v["kind"] == "good_practice":  # the service refuses a concern's fields, if filled in
        # (the stage is a choice the form always sends, so it is left aside)
        alert = svc.record_good_practice(
            who, v["child"], v["summary"] or "", detail=v["detail"], theme=v["theme"],
            due=v["due"], impact=v["impact"], outcome_wanted=v["outcome_wanted"])
    else:
        alert = svc.raise_alert(
            who, v["child"], v["summary"] or "", detail=v["detail"], impact=v["impact"],
            outcome_wanted=v["outcome_wanted"], theme=v["theme"], stage=v["stage"],
            due_on=v["due"], separate=v["separate"])
    return int(alert.id or 0)


@router.post("/alerts/new", response_class=HTMLResponse)
def create_alert(request: Request, context: Context, rt: RuntimeDep, user: CurrentUser,
                 form: PostedFields, work: Work) -> Response:
    """Raise, or suggest a theme; a suggestion or a refusal goes back to the form's page
    (Post/Redirect/Get) with what was typed, so reloading it never posts again."""
    child = form.get("child", "").strip()
    if form.get("do") == "suggest":
        text = " ".join(form.get(k, "") for k in ("summary", "detail", "impact"))
        found = rt.suggest([text]) if text.strip() else []
        return back_to_form(context, user, "/alerts/new#theme", form, 200,
                            suggestion=found[0] if found else None,
                            open_alerts=_open_concerns(work, user.username, child),
                            suggested=True)
    done = "good_practice" if form.get("kind") == "good_practice" else "raised"
    try:
        url = once_only(request, form, work, user.username, lambda svc: (
            f"/alerts/{_raise(svc, user.username, form)}?done={done}"))
    except InvalidTransition as exc:
        # The child has an open concern already: the IRO confirms this one is separate.
        shown = refused(exc, RAISE_FIELDS, who=user.username)
        open_ids = _open_concerns(work, user.username, child)
        if open_ids:
            shown["errors"] = [("separate", on_the_page(exc, user.username))]
        return back_to_form(context, user, "/alerts/new", form, exc.http_status,
                            open_alerts=open_ids, **shown)
    except DrpError as exc:
        return back_to_form(context, user, "/alerts/new", form, exc.http_status,
                            open_alerts=_open_concerns(work, user.username, child),
                            **refused(exc, RAISE_FIELDS, who=user.username))
    return RedirectResponse(url, 303)


def _open_concerns(work: UnitOfWork, who: str, child: str) -> list[int]:
    """The child's open concerns (the ones a refusal names), read as the raise command reads
    them."""
    if not child:
        return []
    with work() as svc:
        return svc.open_concerns(who, child)
