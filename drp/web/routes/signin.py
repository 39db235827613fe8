"""Health, sign-in and sign-out, and each person's first page."""

from __future__ import annotations

import secrets
from functools import partial
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from ...errors import DrpError
from ..auth import LOGIN_COOKIE, SESSION_COOKIE, check_password, same, sign_in_limiter
from ..deps import Context, CurrentUser, Forbidden, Page, PostedForm, RuntimeDep

router = APIRouter(include_in_schema=False)

HOME_FOR = (  # the first page for each role, in order of precedence
    ("admin", "/admin"), ("iro_manager", "/alerts"), ("director", "/alerts"),
    ("assistant_director", "/alerts"), ("head_of_service", "/outstanding"),
    ("service_manager", "/outstanding"), ("iro", "/my-alerts"),
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
    try:
        attempt = await anyio.to_thread.run_sync(
            auth.begin, str(form.get("username", "")), client, now, limiter=limiter)
        ok = await check_password(attempt, str(form.get("password", "")))
        token, _web = await anyio.to_thread.run_sync(auth.finish, attempt, ok, now,
                                                     limiter=limiter)
    except DrpError as exc:
        # Rendering reads the council's name from the database: off the loop too.
        return await anyio.to_thread.run_sync(partial(
            _login_page, context, page, status=400, error=exc.message, next=next_url,
            username=form.get("username", "")), limiter=limiter)
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
