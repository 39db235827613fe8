"""The administration pages about people's sign-in: who has signed in lately, each person's
sign-in (unlock, send a password reset link) and the addresses whose failed sign-ins hold
others back. Each change is the one `drp user unlock` makes (drp.web.auth.Auth.unlock and
unlock_client) or drp.web.resets'; an administrator's only (access.may_administer)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from ... import idempotency
from ...errors import DrpError, NotFound
from ...models import LoginAttempt, Person
from ...runtime import Runtime
from .. import resets
from ..auth import Auth
from ..deps import (
    Administrator,
    Context,
    Page,
    PageRenderer,
    PostedFields,
    RuntimeDep,
    SignedInUser,
    WebContext,
    Work,
    origin_of,
)
from ..forms import once_only

router = APIRouter(include_in_schema=False)

SIGN_INS_SHOWN = 50  # a page of the sign-ins table
COUNTING = timedelta(days=1)  # the longest a failed sign-in holds anyone back (auth.limits)

DONE = {
    "unlock": "{name} can sign in again: their failed sign-ins no longer count.",
    "reset": "A link to set a new password is on its way to {name}. It works once, within"
             " 24 hours.",
    "address": "The failed sign-ins from that address no longer count.",
}


def _person(rt: Runtime, person_id: int) -> Person:
    with Session(rt.engine) as s:
        person = s.get(Person, person_id)
    if person is None or not person.active:
        raise NotFound("there is no such person in the organisation now")
    return person


def _people(rt: Runtime, auth: Auth, now: datetime) -> list[dict[str, Any]]:
    """Everyone in the organisation, by name: when they last signed in and how many failed
    sign-ins of theirs count now."""
    with Session(rt.engine) as s:
        last = {u: at for u, at in s.execute(
            sa_select(col(LoginAttempt.username), func.max(LoginAttempt.at))
            .where(col(LoginAttempt.ok).is_(True)).group_by(col(LoginAttempt.username)))}
        strikes = {u: n for u, n in s.execute(
            sa_select(col(LoginAttempt.username), func.count())
            .where(col(LoginAttempt.strike).is_(True),
                   col(LoginAttempt.at) > now - COUNTING)
            .group_by(col(LoginAttempt.username)))}
        people = s.exec(select(Person).where(col(Person.active).is_(True))
                        .order_by(col(Person.name))).all()
        return [{"id": p.id, "name": p.name, "email": bool(p.email),
                 "last": last.get(p.username), "strikes": int(strikes.get(p.username, 0)),
                 "locked": bool(strikes.get(p.username)) and auth.locked(s, p.username, now)}
                for p in people]


def _addresses(rt: Runtime, now: datetime) -> list[tuple[str, int]]:
    """Addresses with failed sign-ins that count now, the most first."""
    with Session(rt.engine) as s:
        count = func.count()
        return [(str(a), int(n)) for a, n in s.execute(
            sa_select(col(LoginAttempt.client), count)
            .where(col(LoginAttempt.strike).is_(True), col(LoginAttempt.at) > now - COUNTING,
                   col(LoginAttempt.client) != "")
            .group_by(col(LoginAttempt.client)).order_by(count.desc()).limit(50)).all()]


@router.get("/admin/people", response_class=HTMLResponse)
def people(rt: RuntimeDep, context: Context, user: Administrator, page: Page,
           done: str = "") -> Response:
    now = context.clock.now()
    return page("admin_people.html", user, people=_people(rt, context.auth, now),
                addresses=_addresses(rt, now),
                notice=DONE["address"] if done == "address" else None)


@router.get("/admin/people/{person_id}", response_class=HTMLResponse)
def person_page(rt: RuntimeDep, context: Context, user: Administrator, page: Page,
                person_id: int, done: str = "") -> Response:
    return _person_page(rt, context, user, page, person_id, done=done)


def _person_page(rt: Runtime, context: WebContext, user: SignedInUser, page: PageRenderer,
                 person_id: int, done: str = "", status: int = 200,
                 errors: list[tuple[str, str]] | None = None) -> Response:
    person = _person(rt, person_id)
    mine = next(p for p in _people(rt, context.auth, context.clock.now())
                if p["id"] == person_id)
    notice = DONE[done].format(name=person.name) if done in ("unlock", "reset") else None
    return page("admin_person.html", user, status=status, person=person, row=mine,
                notice=notice, errors=errors or [], form_key=idempotency.new_key)


@router.post("/admin/people/{person_id}/unlock")
def unlock(request: Request, context: Context, user: Administrator, _form: PostedFields,
           person_id: int) -> Response:
    """`drp user unlock USERNAME`'s change (Auth.unlock), audited as this administrator's."""
    person = _person(context.rt, person_id)
    context.auth.unlock(person.username, context.clock.now(), origin_of(request),
                        by=user.username)
    return RedirectResponse(f"/admin/people/{person_id}?done=unlock", 303)


@router.post("/admin/people/{person_id}/reset", response_class=HTMLResponse)
def send_reset(request: Request, context: Context, user: Administrator, form: PostedFields,
               work: Work, page: Page, person_id: int) -> Response:
    """Queue the e-mail with a one-time link (never sent from the request: the background
    deliverer is woken). The form's one-time key makes a double click send one link."""
    rt = context.rt
    person = _person(rt, person_id)
    renderer = rt.notifier().renderer

    def change(svc: Any) -> str:
        resets.send_link(svc.s, renderer, rt.settings.base_url, person.username,
                         user.username, svc.now)
        return f"/admin/people/{person_id}?done=reset"

    try:
        url = once_only(request, form, work, user.username, change)
    except DrpError as exc:
        return _person_page(rt, context, user, page, person_id, status=exc.http_status,
                           errors=[("send-reset", exc.message[:1].upper() + exc.message[1:])])
    if context.deliverer is not None:
        context.deliverer.wake()
    return RedirectResponse(url, 303)


@router.post("/admin/addresses/unlock")
def unlock_address(request: Request, context: Context, user: Administrator,
                   form: PostedFields) -> Response:
    """`drp user unlock --client ADDRESS`'s change (Auth.unlock_client)."""
    context.auth.unlock_client(form.get("client", ""), context.clock.now(),
                               origin_of(request), by=user.username)
    return RedirectResponse("/admin/people?done=address", 303)


@router.get("/admin/sign-ins", response_class=HTMLResponse)
def sign_ins(rt: RuntimeDep, user: Administrator, page: Page, p: int = 1) -> Response:
    """The sign-in attempts, newest first, a page at a time: who (by name; a username that is
    nobody's is not shown, as it may be a password typed in the wrong box), when, from
    which address, and whether they signed in."""
    p = max(1, min(p, 10_000))
    with Session(rt.engine) as s:
        total = int(s.exec(select(func.count()).select_from(LoginAttempt)).one())
        rows = s.execute(
            sa_select(col(LoginAttempt.at), col(LoginAttempt.client), col(LoginAttempt.ok),
                      col(Person.name))
            .outerjoin(Person, col(Person.username) == col(LoginAttempt.username))
            .order_by(col(LoginAttempt.at).desc(), col(LoginAttempt.id).desc())
            .offset((p - 1) * SIGN_INS_SHOWN).limit(SIGN_INS_SHOWN)).all()
    pages = max(1, -(-total // SIGN_INS_SHOWN))
    return page("admin_sign_ins.html", user, rows=rows, page_no=min(p, pages), pages=pages,
                total=total, shown=SIGN_INS_SHOWN)
