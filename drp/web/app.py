"""The FastAPI application: pages for people, /api for the council's other systems. This module
only builds the app: its context (deps.WebContext), security headers, error pages, and the
routers of drp.web.routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError
from starlette.middleware.sessions import SessionMiddleware

from .. import mail
from ..clock import Clock
from ..errors import DrpError, NotFound
from ..keys import secret_key
from ..ladder.access import may_administer, may_see_report
from ..runtime import Runtime
from .auth import Auth, Signed
from .deps import SignInNeeded, WebContext, attach, council_name, render, signed_in, web_context
from .routes import admin, alert, alerts, api, reports, signin, sso

HERE = Path(__file__).resolve().parent
NOT_YOURS = "There is no such page, or it is not one you can see."


def security_headers(response: Response) -> None:
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")


def make_templates(rt: Runtime) -> Jinja2Templates:
    settings = rt.settings
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def day(d: date | None) -> str:
        return f"{d.day} {d:%B %Y}" if d else "-"

    def when(t: datetime | None) -> str:
        return t.astimezone(settings.tz).strftime("%-d %b %Y %H:%M") if t else "-"

    def stage_title(key: str) -> str:
        known = (*rt.protocol.keys, rt.protocol.cafcass.key)
        return rt.protocol.title(key) if key in known else key

    templates.env.filters["date"] = day
    templates.env.filters["when"] = when
    templates.env.filters["intersects"] = lambda roles, names: bool(set(roles) & set(names))
    templates.env.globals["theme_title"] = rt.taxonomy.title
    templates.env.globals["council_name"] = lambda: council_name(rt.engine)
    templates.env.globals["stage_title"] = stage_title
    # The navigation offers the report and the administration pages by the access policy.
    templates.env.globals["may_see_report"] = may_see_report
    templates.env.globals["may_administer"] = may_administer
    return templates


def create_app(rt: Runtime, clock: Clock | None = None) -> FastAPI:
    settings = rt.settings
    signer = Signed(secret_key(settings))
    clock = clock or Clock()
    deliverer = mail.Deliverer(rt.engine, settings, clock)
    context = WebContext(
        rt=rt, clock=clock, auth=Auth(rt.engine, settings), signer=signer,
        templates=make_templates(rt), secure_cookies=settings.base_url.startswith("https://"),
        deliverer=deliverer,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Mail goes from a background thread while the app serves (woken by each action
        that queues some, and every few seconds); it is stopped when the app stops."""
        deliverer.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(deliverer.stop)

    app = FastAPI(
        title="drp", version="0.1.0",
        description="Dispute resolution for IRO services: the JSON API. Authenticate with a"
                    " bearer token (`drp user token USERNAME`) or a signed-in session plus the"
                    " X-CSRF-Token header.",
        docs_url="/api/docs", redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan,
    )
    attach(app, context)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.middleware("http")(_headers)
    _handle_errors(app)
    for router in (signin.router, alerts.router, alert.router, reports.router, admin.router,
                   api.router):
        app.include_router(router)
    if settings.oidc_metadata_url:
        app.add_middleware(SessionMiddleware, secret_key=signer.key, session_cookie="drp_sso",
                           max_age=600, same_site="lax", https_only=context.secure_cookies)
        app.include_router(sso.router_for(context))
    return app


async def _headers(request: Request,
                   call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    if "Content-Security-Policy" not in response.headers:
        security_headers(response)
    else:  # a page with a policy of its own (the report) keeps it
        csp = response.headers["Content-Security-Policy"]
        security_headers(response)
        response.headers["Content-Security-Policy"] = csp
    return response


def refusal(exc: DrpError) -> dict[str, str]:
    """The API's answer to a refused request: what is wrong and how to fix it ("detail"), and
    the input it is about ("field", a key of the request's body) where the service names it."""
    field = getattr(exc, "field", None)
    return {"detail": exc.message, **({"field": str(field)} if field else {})}


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": "sign in first: send a bearer token"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        return RedirectResponse(f"/login?next={request.url.path}", 303)

    @app.exception_handler(DrpError)
    async def _refused(request: Request, exc: DrpError) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse(refusal(exc), exc.http_status)
        # The service's wording for NotFound speaks to the command line.
        message = NOT_YOURS if isinstance(exc, NotFound) else exc.message
        context = web_context(request)
        return render(request, context, "error.html", signed_in(request, context),
                      status=exc.http_status, message=message)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> Response:
        # The database restarting or unreachable: say so, and that nothing was saved (the
        # unit of work rolled back). Nothing about the request goes to the log.
        message = ("The database cannot be reached just now, so nothing was read or saved."
                   " Try again in a minute.")
        headers = {"Retry-After": "30"}
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": message}, 503, headers=headers)
        return web_context(request).templates.TemplateResponse(request, "error.html", {
            "user": None, "roles": frozenset(), "csrf": "", "council": "drp",
            "message": message}, status_code=503, headers=headers)

    @app.exception_handler(404)
    async def _missing(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": "not found"}, 404)
        context = web_context(request)
        return render(request, context, "error.html", signed_in(request, context),
                      status=404, message=NOT_YOURS)
