"""The FastAPI application: pages for people, /api for the council's other systems."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from .. import db, mail
from ..alerts import AlertService
from ..clock import Clock
from ..errors import BadValue, DrpError, NotFound
from ..models import Person, PersonRole
from ..runtime import Runtime
from .auth import LOGIN_COOKIE, SESSION_COOKIE, Auth, Signed, same, secret_key

HERE = Path(__file__).resolve().parent
HOME_FOR = (  # the first page for each role, in order of precedence
    ("admin", "/admin"), ("iro_manager", "/alerts"), ("director", "/alerts"),
    ("assistant_director", "/alerts"), ("head_of_service", "/outstanding"),
    ("service_manager", "/outstanding"), ("iro", "/my-alerts"),
    ("team_manager", "/inbox"), ("social_worker", "/inbox"),
)


class SignInNeeded(Exception):
    pass


@dataclass
class Who:
    person: Person
    roles: frozenset[str]
    csrf: str
    token: str | None  # the session's cookie token (None for API tokens)


def security_headers(response: Response) -> None:
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")


def create_app(rt: Runtime, clock: Clock | None = None) -> FastAPI:
    clock = clock or Clock()
    settings = rt.settings
    auth = Auth(rt.engine, settings)
    signer = Signed(secret_key(settings))
    secure_cookies = settings.base_url.startswith("https://")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["date"] = lambda d: f"{d.day} {d:%B %Y}" if d else "-"
    templates.env.filters["when"] = (
        lambda t: t.astimezone(settings.tz).strftime("%-d %b %Y %H:%M") if t else "-")
    templates.env.filters["intersects"] = lambda roles, names: bool(set(roles) & set(names))
    templates.env.globals["theme_title"] = rt.taxonomy.title
    templates.env.globals["council_name"] = lambda: council_name()
    templates.env.globals["stage_title"] = lambda k: rt.protocol.title(k) if k in (
        *rt.protocol.keys, rt.protocol.cafcass.key) else k

    app = FastAPI(
        title="drp", version="0.1.0",
        description="Dispute resolution for IRO services: the JSON API. Authenticate with a"
                    " bearer token (`drp user token USERNAME`) or a signed-in session plus the"
                    " X-CSRF-Token header.",
        docs_url="/api/docs", redoc_url=None, openapi_url="/openapi.json",
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.rt, app.state.auth, app.state.clock = rt, auth, clock

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[..., Any]) -> Response:
        response: Response = await call_next(request)
        if "Content-Security-Policy" not in response.headers:
            security_headers(response)
        else:
            csp = response.headers["Content-Security-Policy"]
            security_headers(response)
            response.headers["Content-Security-Policy"] = csp
        return response

    # -- who is asking -------------------------------------------------------------------------
    def who(request: Request) -> Who | None:
        token = signer.unsign(request.cookies.get(SESSION_COOKIE), "session")
        found = auth.session_for(token, clock.now())
        if found is None:
            return None
        web, person = found
        return Who(person, roles_of(person), web.csrf, token)

    def roles_of(person: Person) -> frozenset[str]:
        with db.transaction(rt.engine) as s:
            return frozenset(s.exec(select(PersonRole.role).where(
                PersonRole.person_id == person.id)))

    def need(request: Request) -> Who:
        user = who(request)
        if user is None:
            raise SignInNeeded
        return user

    @contextmanager
    def service() -> Iterator[AlertService]:
        notifier = rt.notifier()
        with db.transaction(rt.engine) as session:
            svc = rt.service(session, clock, notifier)
            yield svc
        if svc.queued:
            mail.send_after_commit(rt.engine, settings, clock)

    def page(request: Request, name: str, user: Who | None, status: int = 200,
             **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {
            "user": user, "roles": user.roles if user else frozenset(),
            "csrf": user.csrf if user else "", "council": council_name(), **context,
        }, status_code=status)

    def council_name() -> str:
        with db.transaction(rt.engine) as s:
            row = s.exec(text("SELECT name FROM council WHERE id = 1")).first()  # type: ignore[call-overload]
            return str(row[0]) if row else "drp"

    def check_csrf(request: Request, user: Who, form: dict[str, Any]) -> None:
        origin = request.headers.get("origin")
        if origin and origin.rstrip("/") not in allowed_origins(request):
            raise Forbidden("this form came from another site; open drp and try again")
        if not same(str(form.get("csrf_token", "")), user.csrf):
            raise Forbidden("the form has expired or was not sent by drp; reload the page"
                            " and try again")

    def allowed_origins(request: Request) -> set[str]:
        base = settings.base_url.rstrip("/")
        here = f"{request.url.scheme}://{request.url.netloc}"
        return {base, here}

    class Forbidden(DrpError):
        http_status = 403

    app.state.need, app.state.who, app.state.service = need, who, service
    app.state.page, app.state.check_csrf, app.state.Forbidden = page, check_csrf, Forbidden
    app.state.templates, app.state.signer = templates, signer

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": "sign in first: send a bearer token"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        return RedirectResponse(f"/login?next={request.url.path}", 303)

    @app.exception_handler(DrpError)
    async def _refused(request: Request, exc: DrpError) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": exc.message}, exc.http_status)
        message = exc.message
        if isinstance(exc, NotFound):  # the service's wording speaks to the command line
            message = "There is no such page, or it is not one you can see."
        return page(request, "error.html", who(request), status=exc.http_status,
                    message=message)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> Response:
        # The database restarting or unreachable: say so, and that nothing was saved (the
        # unit of work rolled back). Nothing about the request goes to the log.
        message = ("The database cannot be reached just now, so nothing was read or saved."
                   " Try again in a minute.")
        headers = {"Retry-After": "30"}
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": message}, 503, headers=headers)
        return templates.TemplateResponse(request, "error.html", {
            "user": None, "roles": frozenset(), "csrf": "", "council": "drp",
            "message": message}, status_code=503, headers=headers)

    @app.exception_handler(404)
    async def _missing(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": "not found"}, 404)
        return page(request, "error.html", who(request), status=404,
                    message="There is no such page, or it is not one you can see.")

    # -- health and sign-in ----------------------------------------------------------------------
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        import secrets

        token = secrets.token_urlsafe(24)
        response = page(request, "login.html", None, login_csrf=token,
                        next=next if next.startswith("/") and not next.startswith("//") else "/",
                        sso=bool(settings.oidc_metadata_url))
        response.set_cookie(LOGIN_COOKIE, signer.sign(token, "login"), httponly=True,
                            samesite="lax", secure=secure_cookies, max_age=1800)
        return response

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        expected = signer.unsign(request.cookies.get(LOGIN_COOKIE), "login")
        next_url = str(form.get("next") or "/")
        if not next_url.startswith("/") or next_url.startswith("//"):
            next_url = "/"
        if not same(str(form.get("csrf_token", "")), expected):
            raise Forbidden("the sign-in form has expired or was not sent by drp; reload the"
                            " page and try again")
        try:
            token, _web = auth.sign_in(str(form.get("username", "")),
                                       str(form.get("password", "")), clock.now())
        except DrpError as exc:
            import secrets

            fresh = secrets.token_urlsafe(24)
            response = page(request, "login.html", None, status=400, error=exc.message,
                            login_csrf=fresh, next=next_url, username=form.get("username", ""),
                            sso=bool(settings.oidc_metadata_url))
            response.set_cookie(LOGIN_COOKIE, signer.sign(fresh, "login"), httponly=True,
                                samesite="lax", secure=secure_cookies, max_age=1800)
            return response
        done = RedirectResponse(next_url, 303)
        done.set_cookie(SESSION_COOKIE, signer.sign(token, "session"), httponly=True,
                        samesite="lax", secure=secure_cookies)
        done.delete_cookie(LOGIN_COOKIE)
        return done

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        user = need(request)
        check_csrf(request, user, dict(await request.form()))
        auth.sign_out(user.token, clock.now())
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        user = need(request)
        for role, url in HOME_FOR:
            if role in user.roles:
                return RedirectResponse(url, 303)
        return RedirectResponse("/alerts", 303)

    if settings.oidc_metadata_url:
        add_single_sign_on(app, rt, auth, signer, secure_cookies)

    from . import api, pages

    pages.register(app)
    api.register(app)
    return app


def add_single_sign_on(app: FastAPI, rt: Runtime, auth: Auth, signer: Signed,
                       secure_cookies: bool) -> None:
    """OpenID Connect with the council's identity provider (e.g. Entra ID), via authlib.
    The person is matched by e-mail address (then username) to someone in the organisation
    file; nobody else gets in."""
    from authlib.integrations.starlette_client import OAuth, OAuthError
    from starlette.middleware.sessions import SessionMiddleware

    settings = rt.settings
    app.add_middleware(SessionMiddleware, secret_key=signer.key, session_cookie="drp_sso",
                       max_age=600, same_site="lax", https_only=secure_cookies)
    oauth = OAuth()
    oauth.register(
        "council", server_metadata_url=settings.oidc_metadata_url,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value()
        if settings.oidc_client_secret else None,
        client_kwargs={"scope": "openid email profile"},
    )

    @app.get("/login/sso", include_in_schema=False)
    async def sso(request: Request) -> Response:
        callback = settings.base_url.rstrip("/") + "/auth/callback"
        return await oauth.council.authorize_redirect(request, callback)

    @app.get("/auth/callback", include_in_schema=False)
    async def sso_callback(request: Request) -> Response:
        try:
            token = await oauth.council.authorize_access_token(request)
        except OAuthError:
            raise BadValue("single sign-on did not complete; try again") from None
        info = token.get("userinfo") or {}
        person = auth.person_for_identity(info.get("email"), info.get("preferred_username"))
        if person is None or person.id is None:
            raise BadValue("your council account is not a drp user; ask the drp administrator"
                           " to add your e-mail address to the organisation file")
        session_token, _ = auth.start_session(person.id, app.state.clock.now())
        response = RedirectResponse("/", 303)
        response.set_cookie(SESSION_COOKIE, signer.sign(session_token, "session"),
                            httponly=True, samesite="lax", secure=secure_cookies)
        return response


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
    if rows:
        for row in rows:
            writer.writerow({k: csv_safe(v.isoformat() if isinstance(v, date) else v)
                             for k, v in row.items()})
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


NotFoundError = NotFound
