"""Health, sign-in and sign-out, setting a new password through a reset link (drp.web.resets),
and each person's first page."""

from __future__ import annotations

import secrets
from functools import partial
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from ...audit import Origin
from ...errors import BadValue, DrpError
from .. import resets
from ..auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    check_password,
    hash_off_loop,
    same,
    sign_in_limiter,
)
from ..deps import Context, CurrentUser, Forbidden, Page, PostedForm, RuntimeDep

router = APIRouter(include_in_schema=False)

HOME_FOR = (  # the first page for each role, in order of precedence
    ("admin", "/admin"), ("iro_manager", "/figures"), ("director", "/figures"),
    ("assistant_director", "/figures"), ("head_of_service", "/figures"),
    ("service_manager", "/figures"), ("iro", "/my-alerts"),
    ("team_manager", "/inbox"), ("social_worker", "/inbox"),
)


def _within_drp(url: str) -> str:
    """A return address on this site: a path (with its query), never another site's address
    (`//host`, `/\\host`, `https://...`) nor a control character; anything else is "/"."""
    parts = urlsplit(url)
    if (not url.startswith("/") or url.startswith("//") or "\\" in url or parts.scheme
            or parts.netloc or any(ord(c) < 32 or ord(c) == 127 for c in url)):
        return "/"
    return url


def _login_page(context: Context, page: Page, status: int = 200,
                **values: object) -> Response:
    """The sign-in form with a fresh token, also set (signed) in a short-lived cookie."""
    token = secrets.token_urlsafe(24)
    response = page("login.html", None, status=status, login_csrf=token,
                    sso=bool(context.settings.oidc_metadata_url), **values)
    response.set_cookie(LOGIN_COOKIE, context.signer.sign(token, "login"), httponly=True,
                        samesite="lax", secure=context.secure_cookies, max_age=1800)
    return response


@router.get("/healthz")
def healthz(rt: RuntimeDep) -> dict[str, str]:
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/login", response_class=HTMLResponse)
def login_form(context: Context, page: Page, next: str = "/") -> Response:
    return _login_page(context, page, next=_within_drp(next))


WRONG_SIGN_IN = "Enter a correct username and password"


def _sign_in_errors(username: str, password: str,
                    throttled: str | None) -> list[tuple[str, str]]:
    """A refused sign-in as the error summary lists it (GOV.UK's wording): a throttle's
    refusal as it is; else what is missing; else one message for a wrong username or
    password, which never says which was wrong."""
    if throttled:
        return [("username", f"You cannot sign in yet: {throttled}")]
    missing = [(field, f"Enter your {field}")
               for field, value in (("username", username.strip()), ("password", password))
               if not value]
    return missing or [("username", WRONG_SIGN_IN)]


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, context: Context, page: Page) -> Response:
    """Nothing blocking runs on the event loop: the database steps on threads, at most
    SIGN_INS_AT_ONCE at once, the password check (argon2) on threads of its own
    (auth.check_password), so a crowd of sign-ins neither stalls other requests nor takes
    their threads and database connections."""
    form = await request.form()
    expected = context.signer.unsign(request.cookies.get(LOGIN_COOKIE), "login")
    next_url = _within_drp(str(form.get("next") or "/"))
    if not same(str(form.get("csrf_token", "")), expected):
        raise Forbidden("the sign-in form has expired or was not sent by drp; reload the"
                        " page and try again")
    auth, now, limiter = context.auth, context.clock.now(), sign_in_limiter()
    client = request.client.host if request.client else ""
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    checked = False  # past the throttle: a refusal after this is a wrong username or password
    try:
        # Every attempt, an empty one too, is recorded and counted as before (the throttle);
        # only the words of a refusal depend on what was missing.
        attempt = await anyio.to_thread.run_sync(auth.begin, username, client, now,
                                                 limiter=limiter)
        checked = True
        ok = await check_password(attempt, password)
        token, _web = await anyio.to_thread.run_sync(auth.finish, attempt, ok, now,
                                                     limiter=limiter)
    except DrpError as exc:
        errors = _sign_in_errors(username, password, exc.message if not checked else None)
        # Rendering reads the council's name from the database: off the loop too.
        return await anyio.to_thread.run_sync(partial(
            _login_page, context, page, status=400, errors=errors, next=next_url,
            username=username, wrong=checked and username.strip() != "" and password != ""),
            limiter=limiter)
    done = RedirectResponse(next_url, 303)
    done.set_cookie(SESSION_COOKIE, context.signer.sign(token, "session"), httponly=True,
                    samesite="lax", secure=context.secure_cookies)
    done.delete_cookie(LOGIN_COOKIE)
    return done


@router.post("/logout")
def logout(context: Context, user: CurrentUser, _form: PostedForm) -> Response:
    context.auth.sign_out(user.token, context.clock.now())
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def home(user: CurrentUser) -> Response:
    for role, url in HOME_FOR:
        if role in user.roles:
            return RedirectResponse(url, 303)
    return RedirectResponse("/alerts", 303)


# -- a new password through a reset link ------------------------------------------------------
def _reset_origin(request: Request) -> Origin:
    """The request's origin without the link's token (the path would carry it into the
    audit log)."""
    return Origin.request("web", request.client.host if request.client else None,
                          request.method, "/reset")


def _not_usable(page: Page, exc: DrpError) -> Response:
    return page("reset_unusable.html", None, status=exc.http_status, message=exc.message)


@router.get("/reset/done", response_class=HTMLResponse)
def reset_done(page: Page) -> Response:
    return page("reset_done.html", None)


@router.get("/reset/{token}", response_class=HTMLResponse)
def reset_form(context: Context, page: Page, token: str) -> Response:
    try:
        name = resets.person_for(context.rt.engine, token, context.clock.now())
    except resets.LinkNotUsable as exc:
        return _not_usable(page, exc)
    return page("reset.html", None, person_name=name, token=token)


@router.post("/reset/{token}", response_class=HTMLResponse)
async def reset_password(request: Request, context: Context, page: Page,
                         token: str) -> Response:
    """As sign-in: the password is hashed (argon2) on the password threads and the database
    steps run on threads, so the event loop is never held. The link's token is the proof;
    a form from another site is refused all the same."""
    form = await request.form()
    origin = request.headers.get("origin")
    here = f"{request.url.scheme}://{request.url.netloc}"
    if origin and origin.rstrip("/") not in {context.settings.base_url.rstrip("/"), here}:
        raise Forbidden("this form came from another site; open the link again")
    engine, now, limiter = context.rt.engine, context.clock.now(), sign_in_limiter()
    password, confirm = str(form.get("password", "")), str(form.get("confirm", ""))
    try:
        name = await anyio.to_thread.run_sync(resets.person_for, engine, token, now,
                                              limiter=limiter)
    except resets.LinkNotUsable as exc:
        return await anyio.to_thread.run_sync(_not_usable, page, exc, limiter=limiter)
    try:
        resets.check_new_password(password, confirm)
        hashed = await hash_off_loop(password)
        await anyio.to_thread.run_sync(resets.use_link, engine, token, hashed, now,
                                       _reset_origin(request), limiter=limiter)
    except resets.LinkNotUsable as exc:
        return await anyio.to_thread.run_sync(_not_usable, page, exc, limiter=limiter)
    except BadValue as exc:
        field = exc.field or "password"
        message = exc.message[:1].upper() + exc.message[1:]
        return await anyio.to_thread.run_sync(partial(
            page, "reset.html", None, status=422, person_name=name, token=token,
            errors=[(field, message)]), limiter=limiter)
    return RedirectResponse("/reset/done", 303)
