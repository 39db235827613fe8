"""The FastAPI application: pages for people, /api for the council's other systems. This module
only builds the app: its context (deps.WebContext), security headers, error pages, and the
routers of drp.web.routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notifications.render import CompiledOnce

from .. import audit, mail
from ..alerts.inputs import plain
from ..clock import Clock
from ..errors import BadValue, DrpError, NotFound
from ..keys import secret_key
from ..ladder.access import may_administer, may_see_report
from ..notify import Notifier
from ..runtime import Runtime
from . import pagecache, staticfiles
from .auth import Auth, Signed
from .deps import (
    SignInNeeded,
    WebContext,
    attach,
    council_name,
    remember_form,
    render,
    signed_in,
    signed_out_mid_form,
    web_context,
)
from .kept import form_page, to_sign_in
from .routes import admin, alert, alerts, api, children, raising, reports, signin, sso

HERE = Path(__file__).resolve().parent
NOT_YOURS = "There is no such page, or it is not one you can see."
BAD_ADDRESS = ("Part of the page's address is not right. Go back and follow a link or use the"
               " form again.")


# HTTPS only, for a year, this host and any below it (ASVS 5.0 3.4.1), sent when drp's address
# is https (DRP_BASE_URL): behind a proxy that ends TLS, as docs/deploying.md says.
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(response: Response) -> None:
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")


def error_links(errors: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The error summary's list (GOV.UK Frontend's errorList): each message linking to its
    field by id."""
    return [{"text": message, "href": f"#{field}"} for field, message in errors]


@jinja2.pass_context
def field_error(ctx: jinja2.runtime.Context, field: str) -> dict[str, str] | None:
    """A field's error message for a GOV.UK component's `errorMessage`, from the page's
    `errors` (or its single `error` and `error_field`): None when the field has none."""
    errors = ctx.get("errors") or ([(ctx.get("error_field"), ctx.get("error"))]
                                   if ctx.get("error") else [])
    for name, message in errors:
        if name == field:
            return {"text": message}
    return None


_COMPILED = CompiledOnce()  # for make_templates' environment (its options never change)


def make_templates(rt: Runtime) -> Jinja2Templates:
    settings = rt.settings
    # drp's own templates, and GOV.UK Frontend's components (govuk-frontend-jinja) under the
    # prefix its macros import each other by.
    loader = jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(str(HERE / "templates")),
        jinja2.PrefixLoader({"govuk_frontend_jinja": jinja2.PackageLoader("govuk_frontend_jinja")}),
    ])
    # Compiled once, on first use: never looked at again on disk (auto_reload), so a page
    # costs no stat of each template it extends and imports.
    # The compiled code is kept for the process (an app made again, as each test does, does
    # not compile them again).
    templates = Jinja2Templates(env=jinja2.Environment(
        loader=loader, autoescape=True, extensions=["jinja2.ext.do"], auto_reload=False,
        bytecode_cache=_COMPILED))

    def day(d: date | None) -> str:
        return f"{d.day} {d:%B %Y}" if d else "-"

    def when(t: datetime | None) -> str:
        return t.astimezone(settings.tz).strftime("%-d %b %Y %H:%M") if t else "-"

    def stage_title(key: str) -> str:
        known = (*rt.protocol.keys, rt.protocol.cafcass.key)
        return rt.protocol.title(key) if key in known else key

    templates.env.filters["date"] = day
    templates.env.filters["when"] = when
    templates.env.filters["error_links"] = error_links
    templates.env.globals["field_error"] = field_error
    templates.env.globals["static_url"] = staticfiles.static_url
    templates.env.filters["intersects"] = lambda roles, names: bool(set(roles) & set(names))
    templates.env.globals["theme_title"] = rt.taxonomy.title
    templates.env.globals["council_name"] = lambda: council_name(rt.engine)
    templates.env.globals["stage_title"] = stage_title
    # The navigation offers the report and the administration pages by the access policy.
    templates.env.globals["may_see_report"] = may_see_report
    templates.env.globals["may_administer"] = may_administer
    templates.env.globals["nav_counts"] = alerts.nav_counts  # base.html's work lists
    return templates


def create_app(rt: Runtime, clock: Clock | None = None) -> FastAPI:
    settings = rt.settings
    signer = Signed(secret_key(settings))
    clock = clock or Clock()
    deliverer = mail.Deliverer(rt.engine, settings, clock)
    context = WebContext(
        rt=rt, clock=clock, auth=Auth(rt.engine, settings), signer=signer,
        templates=make_templates(rt), secure_cookies=settings.base_url.startswith("https://"),
        deliverer=deliverer, access_log=audit.AccessLogWriter(rt.engine),
        notifier=_notifier(rt),
        page_cache=pagecache.PageCache(settings.page_cache_mb * 2**20)
        if settings.page_cache_mb else None,
    )
    pagecache.watch(rt.engine)

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
        # No Swagger page: it loads its scripts from a CDN, which the app's own policy
        # (script-src 'self') blocks. /openapi.json describes the API for any client.
        docs_url=None, redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan,
        dependencies=[Depends(_plain_input)],
    )
    attach(app, context)
    app.mount(staticfiles.PREFIX.rstrip("/"), StaticFiles(directory=str(staticfiles.FOLDER)),
              name="static")
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.middleware("http")(_headers_for(https=context.secure_cookies))  # (outside: on a 413 too)
    _handle_errors(app)
    for router in (signin.router, raising.router, alerts.router, alert.router, reports.router,
                   admin.router, api.router):
        app.include_router(router)
    app.include_router(children.router)
    if settings.oidc_metadata_url:
        app.add_middleware(SessionMiddleware, secret_key=signer.key, session_cookie="drp_sso",
                           max_age=600, same_site="lax", https_only=context.secure_cookies)
        app.include_router(sso.router_for(context))
    return app


def _notifier(rt: Runtime) -> Notifier | None:
    """The app's notifier (its e-mail templates loaded once), which each unit of work copies;
    None where the settings cannot make one, so each unit of work reports that itself."""
    try:
        return rt.notifier()
    except DrpError:
        return None


def _headers_for(*, https: bool) -> Callable[..., Awaitable[Response]]:
    async def _headers(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if response.status_code in (200, 304) and (cache := staticfiles.cache_control(
                request.url.path, request.query_params.get("v"))):
            response.headers["Cache-Control"] = cache  # before security_headers' no-store
        if "Content-Security-Policy" not in response.headers:
            security_headers(response)
        else:  # a page with a policy of its own (the report) keeps it
            csp = response.headers["Content-Security-Policy"]
            security_headers(response)
            response.headers["Content-Security-Policy"] = csp
        if https:
            response.headers["Strict-Transport-Security"] = HSTS
        return response

    return _headers


class BodyLimit:
    """A request body larger than `limit` bytes is refused (413) before the app reads any of
    it: by its Content-Length, or as it arrives when it has none."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, receive, send)
            return
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body.append(message.get("body", b""))
            size += len(body[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
        whole: list[Message] = [{"type": "http.request", "body": b"".join(body),
                                 "more_body": False}]

        async def replay() -> Message:
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (f"the request is larger than {self.limit:,} bytes, the most drp accepts"
                   " (DRP_MAX_REQUEST_BYTES)")
        await JSONResponse({"detail": message}, 413, headers={"Connection": "close"})(
            scope, receive, send)


JSON_DEPTH = 32  # drp's bodies nest three levels (an action in a response); far more is refused


def _strings(value: Any, where: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string in a JSON document (keys too), with where it is (`actions[0].owner`)."""
    if depth > JSON_DEPTH:
        raise BadValue(f"the JSON body nests deeper than {JSON_DEPTH} levels; send drp's"
                       " fields as /openapi.json describes them", field=where or None)
    if isinstance(value, str):
        yield where or "(the body)", value
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            yield name, str(key)
            yield from _strings(item, name, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]", depth + 1)


async def _plain_input(request: Request) -> None:
    """Every query parameter (a name, a filter, a date: no control character at all), form
    field and JSON string (no control character but tab and line breaks) is checked by
    `drp.alerts.inputs.plain` before any handler reads it: a NUL byte is refused naming the
    input (422) instead of reaching the database (PostgreSQL refuses it with a 500)."""
    for name, value in request.query_params.multi_items():
        plain(name, "a query parameter's name", field=name)
        plain(value, f"the query parameter {name!r}", field=name)
    kind = request.headers.get("content-type", "")
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        remember_form(request, form)  # (for the sign-in page, should the session have ended)
        for name, posted in form.multi_items():
            plain(name, "a form field's name", field=name)
            if isinstance(posted, str):  # (a file is its reader's: the YAML loader's)
                plain(posted, f"the field {name!r}", field=name, lines=True)
    elif "json" in kind:
        try:
            document = json.loads(await request.body())
        except ValueError:
            return  # FastAPI's own validation answers
        except RecursionError:  # "[[[[..." a hundred thousand deep: a 500 before this
            raise BadValue(f"the JSON body nests deeper than {JSON_DEPTH} levels; send drp's"
                           " fields as /openapi.json describes them") from None
        for name, value in _strings(document):
            plain(value, f"{name!r}", field=name, lines=True)


def refusal(exc: DrpError) -> dict[str, str]:
    """The API's answer to a refused request: what is wrong and how to fix it ("detail"), and
    the input it is about ("field", a key of the request's body) where the service names it."""
    field = getattr(exc, "field", None)
    return {"detail": exc.message, **({"field": str(field)} if field else {})}


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api") or request.url.path == "/openapi.json":
            # FastAPI's own answer, without the input it refused: that may be megabytes long
            # (a 10 MB summary came back whole), and is the client's own anyway.
            # A field's name is the client's input too (an unknown key of a megabyte came back
            # whole in `loc`): each part of a location is cut to 64 characters.
            errors = [{k: ([p[:64] if isinstance(p, str) else p for p in v] if k == "loc" else v)
                       for k, v in e.items() if k != "input"} for e in exc.errors()]
            return JSONResponse({"detail": jsonable_encoder(errors)}, 422)
        # A page: an address with a path part that is no record (/alerts/abc) is a page that
        # does not exist (404); a bad query value, a 400; both as drp's error page, not JSON.
        context = web_context(request)
        in_path = any(e.get("loc", ("",))[0] == "path" for e in exc.errors())
        status, message = (404, NOT_YOURS) if in_path else (400, BAD_ADDRESS)
        return render(request, context, "error.html", signed_in(request, context),
                      status=status, message=message)

    @app.exception_handler(SignInNeeded)
    def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": "sign in first: send a bearer token"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        if request.method in ("GET", "HEAD"):
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(to_sign_in(back), 303)
        return signed_out_mid_form(request, web_context(request))

    @app.exception_handler(405)
    def _wrong_method(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": "Method Not Allowed"}, 405,
                                headers=getattr(exc, "headers", None))
        page = form_page(request.url.path)
        if request.method == "GET" and page is not None:  # a form's address, opened
            return RedirectResponse(page, 303)
        context = web_context(request)
        return render(request, context, "error.html", signed_in(request, context),
                      status=405, message=BAD_ADDRESS)

    # A handler that reads the database (the signed-in person, the council's name) is a plain
    # `def`: Starlette runs it on its thread pool, not on the event loop.
    @app.exception_handler(DrpError)
    def _refused(request: Request, exc: DrpError) -> Response:
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
    def _missing(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": "not found"}, 404)
        context = web_context(request)
        return render(request, context, "error.html", signed_in(request, context),
                      status=404, message=NOT_YOURS)
