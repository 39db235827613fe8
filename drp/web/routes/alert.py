"""One alert's page and what may be done to it: each form a thin shell over one command of
the service layer, offered only when the service's `allowed()` includes its trigger (the
access policy decides, never this module)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import correction, idempotency
from ...alerts import ActionIn, AlertService, inputs
from ...alerts.commands import CAFCASS_RESPONSES
from ...alerts.records import EVENT_WORDS
from ...errors import BadValue, DrpError
from ...ladder import due
from ...ladder.machine import possible_triggers
from ...models import Alert
from ...runtime import Runtime
from ...schemas import AlertDetail
from ..deps import (
    Context,
    CurrentUser,
    Page,
    PageRenderer,
    PostedFields,
    RuntimeDep,
    SignedInUser,
    UnitOfWork,
    WebContext,
    Work,
    kept_page,
    page_frame,
)
from ..forms import (
    DATE_PARTS,
    Problems,
    capitalised,
    date_input,
    long_date,
    once_only,
    refused,
)
from ..kept import back_to_form, kept_form
from ..referral import referral_fields

router = APIRouter(include_in_schema=False)

ACTION_LABELS = {
    "respond": "Respond", "escalate": "Escalate", "resolve": "Resolve",
    "withdraw": "Withdraw", "hold": "Put on hold", "resume": "Resume",
    "extend": "Change the due date", "refer": "Refer to Cafcass", "reopen": "Reopen",
    "set_theme": "Confirm or change the theme", "cafcass_response": "Cafcass's response",
    "acknowledge": "Acknowledge", "move": "Move to another child",
    "link": "Link a related alert", "correct": "Correct a text",
}
DONE = {
    "raised": "the alert was raised", "good_practice": "the good practice was recorded",
    "respond": "your response was recorded", "escalate": "the alert was escalated",
    "resolve": "the alert was resolved", "withdraw": "the alert was withdrawn",
    "hold": "the alert is on hold", "resume": "the alert has resumed",
    "extend": "the new due date was agreed",
    "refer": "the referral to Cafcass was recorded; the alert stays open",
    "cafcass": "Cafcass's response was recorded", "acknowledge": "you acknowledged the alert",
    "move": "the alert was moved to the right child", "link": "the alerts were linked",
    "reopen": "the alert was reopened", "theme": "the theme was recorded",
    "action": "the action was marked done", "correct": "the text was corrected",
}
REFER_FIELDS = (("legal advice date", "advised_on"), ("legal advice", "legal_advice"),
                ("reason", "reason"))
# Where a refusal names no field (BadValue.field), the words that point at one, per form, and
# the field it is about otherwise (its first).
FORM_FIELDS = {
    "move": (("child", "child"), ("reason", "reason-move")),
    "link": (("linked to itself", "other"), ("alert", "other")),
    "cafcass": (("response", "response"), ("note", "note")),
    "hold": (("reason", "reason-hold"),), "extend": (("reason", "reason-extend"),),
    "respond": (("response", "message"),),
}
FIRST_FIELD = {
    "respond": "message", "escalate": "reason-escalate", "resolve": "outcome",
    "withdraw": "reason-withdraw", "reopen": "reason-reopen", "hold": "reason-hold",
    "extend": "until", "cafcass": "response", "move": "move-child", "link": "other",
    "theme": "theme", "correct": "correct-field",
}
# The forms whose trigger has another name (the rest are named as their trigger).
FORM_OF = {"cafcass_response": "cafcass", "set_theme": "theme"}
TRIGGER_OF = {form: trigger for trigger, form in FORM_OF.items()}
# Each form's main text field, checked up front by the service layer's own rule (so a page
# lists every problem at once): (field id, posted name, what it is, its limit).
TEXTS = {
    "respond": ("message", "message", "your response", inputs.DETAIL_MAX),
    "escalate": ("reason-escalate", "reason", "the reason", inputs.TEXT_MAX),
    "resolve": ("outcome", "outcome", "the outcome", inputs.TEXT_MAX),
    "withdraw": ("reason-withdraw", "reason", "the reason", inputs.TEXT_MAX),
    "reopen": ("reason-reopen", "reason", "the reason", inputs.TEXT_MAX),
    "hold": ("reason-hold", "reason", "the reason", inputs.TEXT_MAX),
    "extend": ("reason-extend", "reason", "the reason", inputs.TEXT_MAX),
}
ACTION_ROWS = (1, 2, 3)


def limits(svc: AlertService, view: AlertDetail) -> dict[str, Any]:
    """The protocol's limits as the hold and extension forms show them (dates as of today, on
    the council's calendar). Hints only: the service layer refuses what is past them."""
    protocol = svc.protocol
    out: dict[str, Any] = {
        "hold_days": protocol.max_hold_working_days,
        "hold_latest": due.latest_hold_until(protocol, svc.cal, svc.today),
        "extend_days": protocol.max_extension_working_days,
        "resolution_days": protocol.resolution_working_days, "today": svc.today,
        "formal": protocol.is_formal(view.stage) if view.stage in protocol.keys else False,
    }
    if view.stage_due is not None:
        out["extend_latest"] = due.latest_extension(protocol, svc.cal, view.stage_due)
    if view.on_hold and view.hold_until is not None and view.resolution_due is not None:
        # Held days do not count: the resolution date it would have on resuming as planned,
        # by the rule resuming uses (due.after_hold).
        alert = svc.s.get(Alert, view.id)
        if alert is not None and alert.held_since is not None:
            out["resolution_if_resumed"] = due.after_hold(svc.cal, alert, view.hold_until)[1]
    return out


def held_days(view: AlertDetail) -> dict[int, int]:
    """Working days each hold took, by the index of the event that resumed it (as resuming
    counted them, recorded on the event)."""
    return {i: int(e.data["held_working_days"]) for i, e in enumerate(view.events)
            if e.kind == "resumed" and e.data and "held_working_days" in e.data}


def event_dates(view: AlertDetail) -> dict[int, str]:
    """The dates an event set, in words, by its index: a hold's end, an extension's new due
    date, an agreed action's due date (as the events recorded them)."""
    def day(value: object) -> str | None:
        try:
            return long_date(date.fromisoformat(str(value))) if value else None
        except ValueError:
            return None

    out: dict[int, str] = {}
    for i, e in enumerate(view.events):
        data = e.data or {}
        if e.kind == "held" and day(data.get("until")):
            out[i] = f"On hold until {day(data.get('until'))}"
        elif e.kind == "extended" and day(data.get("to")):
            was = day(data.get("from"))
            out[i] = f"Due date {'from ' + was + ' ' if was else ''}to {day(data.get('to'))}"
        elif e.kind == "action_agreed" and day(data.get("due")):
            out[i] = f"Action {data.get('no', '')} due {day(data.get('due'))}"
    return out


def suggested_theme(view: AlertDetail) -> str | None:
    """drp's suggestion for an alert whose theme no IRO has chosen or confirmed yet, as the
    event log holds it: raising records the classifier's suggestion (when the IRO let drp
    suggest), the themes flow may record one later; a confirmation ends it."""
    suggested = None
    for e in view.events:
        data = e.data or {}
        if e.kind == "theme_confirmed" or (e.kind == "raised" and data.get("theme_confirmed")):
            suggested = None
        elif e.kind in ("raised", "theme_suggested") and data.get("suggested"):
            suggested = str(data["suggested"])
    return suggested


def _opened(asked: str | None, allowed: list[str], may_mark: list[int]) -> str | None:
    """The one form the page opens: the one asked for (`?act=`, or the form a refusal or an
    ended session came back to), if this person may use it now."""
    if not asked:
        return None
    if asked.startswith("action-"):
        no = asked.removeprefix("action-")
        return asked if no.isdigit() and int(no) in may_mark else None
    return asked if TRIGGER_OF.get(asked, asked) in allowed and asked != "refer" else None


def _alert_page(request: Request, rt: Runtime, user: SignedInUser, work: UnitOfWork,
                page: PageRenderer, alert_id: int, status: int = 200,
                form: dict[str, str] | None = None, **values: Any) -> Response:
    values.setdefault("typed_for", values.get("error_action"))
    with work() as svc:
        reading = svc.alert_page(alert_id, user.username)
        view = reading.view
        allowed = svc.allowed(alert_id, user.username)
        if correction.may_correct_alert(svc, alert_id, user.username):
            allowed = [*allowed, "correct"]  # not a trigger: access.may_correct decides
        people = [p for p in svc.people_on_line(alert_id, user.username)
                  if p[0] != user.username]  # "Me" is offered already
        shown_limits = limits(svc, view)
        frame = page_frame(svc, user)
    asked = values.get("typed_for") or request.query_params.get("act")
    done = request.query_params.get("done")
    notice = None
    if done in DONE and not values.get("errors") and status < 400:
        notice = capitalised(DONE[done])
    following = rt.protocol.next_stage(view.stage) if view.stage in rt.protocol.keys else None
    return page("alert.html", user, status=status, view=view, standing=reading.standing,
                may_mark_done=reading.may_mark_done, allowed=allowed,
                forms=[FORM_OF.get(t, t) for t in allowed], labels=ACTION_LABELS,
                people=people, stages=rt.protocol.keys, next_stage=following,
                themes=rt.taxonomy.themes, notice=notice, event_words=EVENT_WORDS,
                responses=CAFCASS_RESPONSES, limits=shown_limits,
                answered=view.stage_responded, held_days=held_days(view),
                event_dates=event_dates(view), opened=_opened(asked, allowed,
                                                              reading.may_mark_done),
                form=form or {}, form_key=idempotency.new_key,
                suggested=suggested_theme(view), action_rows=ACTION_ROWS,
                withdrawal_final="reopen" not in possible_triggers(rt.protocol, "withdrawn"),
                **frame, **values)


def _refer_again(user: SignedInUser, work: UnitOfWork, page: PageRenderer, alert_id: int,
                 status: int, form: dict[str, str], exc: DrpError) -> Response:
    """The referral form shown again after a refusal, the error beside its field."""
    with work() as svc:
        view = svc.show(alert_id, user.username)
    return page("refer.html", user, status=status, view=view, form=form,
                form_key=idempotency.new_key,
                **refused(exc, REFER_FIELDS, who=user.username, default="legal_advice"))


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def show_alert(request: Request, context: Context, rt: RuntimeDep, user: CurrentUser,
               work: Work, page: Page, alert_id: int) -> Response:
    """The alert's page; after a refused form (or a sign-in when the session had ended while
    a form was open), with the refusal and what was typed in that form, that form open."""
    kept = kept_form(request, context, user)
    if kept is None:
        return kept_page(request, context, user,
                         lambda: _alert_page(request, rt, user, work, page, alert_id))
    values = dict(kept.values)
    status = int(values.pop("status", 200))
    return _alert_page(request, rt, user, work, page, alert_id, status=status,
                       form=kept.fields, **values)


@router.get("/alerts/{alert_id}/refer", response_class=HTMLResponse)
def refer_pause(request: Request, context: Context, user: CurrentUser, work: Work, page: Page,
                alert_id: int) -> Response:
    kept = kept_form(request, context, user)
    values = dict(kept.values) if kept else {}
    status = int(values.pop("status", 200))
    with work() as svc:
        view = svc.show(alert_id, user.username)
        svc.check(alert_id, user.username, "refer")  # 403 or 409 with the reason
    return page("refer.html", user, status=status, view=view,
                form=kept.fields if kept else {}, form_key=idempotency.new_key, **values)


# What each action's form does: the service layer's command with the form's fields.
FormAction = Callable[[AlertService, int, str, dict[str, str]], object]


def _actions(form: dict[str, str], problems: Problems) -> list[ActionIn]:
    """The agreed actions typed in the response form (each needs what and when)."""
    out = []
    for i in ACTION_ROWS:
        what = form.get(f"action{i}", "").strip()
        name = f"action{i}_due"
        typed = any(form.get(f"{name}-{part}", "").strip() for part in DATE_PARTS)
        if not what and not typed and not form.get(name, "").strip():
            continue
        if not what:
            problems.add(f"action{i}", f"Enter what will be done for agreed action {i}")
        due_on = problems.check(name, partial(
            date_input, form, name, f"the due date of agreed action {i}", required=True))
        if what and due_on is not None:
            out.append(ActionIn(what, due_on, form.get(f"action{i}_owner") or None))
    return out


def _alert_number(form: dict[str, str], key: str) -> int:
    text = form.get(key, "").strip().lstrip("#")
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise BadValue("Enter the related alert's number, such as 42", field=key)
    return int(text)


def _checked(action: str, form: dict[str, str], who: str) -> dict[str, Any]:
    """Every problem of a form's own fields at once (the service layer's rules for its text
    and dates), before the service is asked; the values it read."""
    problems = Problems(who=who)
    if action in TEXTS:
        field, name, what, limit = TEXTS[action]
        problems.check(field, lambda: inputs.text(form.get(name), what, required=True,
                                                  limit=limit))
    read: dict[str, Any] = {}
    if action == "respond":
        read["actions"] = _actions(form, problems)
    elif action == "hold":
        read["until"] = problems.check("until", lambda: date_input(
            form, "until", "the end date", required=True))
    elif action == "extend":
        read["until"] = problems.check("until", lambda: date_input(
            form, "until", "the new due date", required=True))
    elif action == "correct":
        field = correction.field_choice(form.get("field", ""))[0]
        if field not in correction.FIELDS:
            problems.add("correct-field", "Select which text is wrong")
        problems.check("correct-text", lambda: correction.typed_text(field, form.get("text")))
        problems.check("reason-correct", lambda: correction.typed_reason(form.get("reason")))
    problems.raise_any()
    return read


def _form_action(action: str) -> FormAction | None:
    def run(svc: AlertService, aid: int, who: str, form: dict[str, str]) -> object:
        read = _checked(action, form, who)
        if action == "respond":
            return svc.respond(aid, who, form.get("message", ""), read["actions"])
        if action == "hold":
            return svc.hold(aid, who, form.get("reason", ""), read["until"])
        if action == "extend":
            return svc.extend(aid, who, read["until"], form.get("reason", ""))
        return FORM_ACTIONS[action](svc, aid, who, form)
    return run if action in FORM_ACTIONS or action in ("respond", "hold", "extend") else None


FORM_ACTIONS: dict[str, FormAction] = {
    "escalate": lambda svc, aid, who, form: svc.escalate(
        aid, who, form.get("reason", ""), to=form.get("to") or None),
    "resolve": lambda svc, aid, who, form: svc.resolve(aid, who, form.get("outcome", "")),
    "withdraw": lambda svc, aid, who, form: svc.withdraw(aid, who, form.get("reason", "")),
    "resume": lambda svc, aid, who, form: svc.resume(aid, who),
    "refer": lambda svc, aid, who, form: svc.refer(aid, who, **referral_fields(form, who)),
    "cafcass": lambda svc, aid, who, form: svc.cafcass_response(
        aid, who, form.get("response", ""), form.get("note") or None),
    "acknowledge": lambda svc, aid, who, form: svc.acknowledge(aid, who),
    "move": lambda svc, aid, who, form: svc.move(
        aid, who, form.get("child", "").strip(), form.get("reason", "")),
    "link": lambda svc, aid, who, form: svc.link(aid, _alert_number(form, "other"), who),
    "reopen": lambda svc, aid, who, form: svc.reopen(aid, who, form.get("reason", "")),
    "theme": lambda svc, aid, who, form: svc.set_theme(aid, who, form.get("theme", "")),
    "correct": lambda svc, aid, who, form: correction.correct(
        svc, aid, who, *correction.field_choice(form.get("field", ""))[:1],
        form.get("text", ""), form.get("reason", ""),
        response=correction.field_choice(form.get("field", ""))[1]),
}


@router.post("/alerts/{alert_id}/{action}", response_class=HTMLResponse)
def act(request: Request, context: Context, rt: RuntimeDep, user: CurrentUser,
        form: PostedFields, work: Work, page: Page, alert_id: int, action: str) -> Response:
    command = _form_action(action)

    def change(svc: AlertService) -> str:
        if command is None:
            raise BadValue(f"there is no action {action!r}")
        command(svc, alert_id, user.username, form)
        return f"/alerts/{alert_id}?done={action}"

    try:
        url = once_only(request, form, work, user.username, change)
    except DrpError as exc:
        if exc.http_status == 404:
            # The page again with the refusal beside the form, here, if the alert is one the
            # person may see (the child or alert the form named was not found); otherwise the
            # page itself answers 404, as a view of it would.
            if action == "refer":
                return _refer_again(user, work, page, alert_id, 404, form, exc)
            return _alert_page(request, rt, user, work, page, alert_id, status=404,
                               error_action=action, form=form,
                               **_errors(action, exc, user.username))
        return _refused(context, user, alert_id, action, form, exc)
    return RedirectResponse(url, 303)


# A field the service layer names by its posted name whose id on the page differs (the
# summary's link must reach it).
FIELD_IDS = {
    **{action: {name: field} for action, (field, name, _what, _limit) in TEXTS.items()},
    "move": {"child": "move-child", "reason": "reason-move"},
    "correct": {"field": "correct-field", "response": "correct-field", "text": "correct-text",
                "reason": "reason-correct"},
}


def _errors(action: str, exc: DrpError, who: str) -> dict[str, Any]:
    """A refusal as the page lists it: every problem, each against its field."""
    shown = refused(exc, FORM_FIELDS.get(action, ()), who=who,
                    default=FIRST_FIELD.get(action, "main-content"))
    ids = FIELD_IDS.get(action, {})
    shown["errors"] = [(ids.get(field, field), message) for field, message in shown["errors"]]
    return shown


def _refused(context: WebContext, user: SignedInUser, alert_id: int, action: str,
             form: dict[str, str], exc: DrpError) -> Response:
    """Post/Redirect/Get: back to the form's page (the referral's own, or the alert's with
    the form open), which shows every problem beside its field and what was typed."""
    if action == "refer" and exc.http_status in (400, 422):
        return back_to_form(context, user, f"/alerts/{alert_id}/refer", form,
                             exc.http_status, **refused(exc, REFER_FIELDS, who=user.username,
                                                        default="legal_advice"))
    return back_to_form(context, user, f"/alerts/{alert_id}#do-{action}", form,
                         exc.http_status, error_action=action,
                         **_errors(action, exc, user.username))


@router.post("/alerts/{alert_id}/actions/{no}/done")
def action_done(request: Request, context: Context, user: CurrentUser, form: PostedFields,
                work: Work, alert_id: int, no: int) -> Response:
    def change(svc: AlertService) -> str:
        svc.action_done(alert_id, no, user.username, form.get("comment") or None)
        return f"/alerts/{alert_id}?done=action"

    try:
        url = once_only(request, form, work, user.username, change)
    except DrpError as exc:
        if exc.http_status == 404:
            raise
        return back_to_form(context, user, f"/alerts/{alert_id}#do-action-{no}", form,
                            exc.http_status, error_action=f"action-{no}",
                            **refused(exc, (), who=user.username, default=f"comment-{no}"))
    return RedirectResponse(url, 303)
