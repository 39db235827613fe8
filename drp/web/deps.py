"""What a route needs, declared in its signature as typed FastAPI dependencies (after
fastapi/full-stack-fastapi-template's backend/app/api/deps.py).

create_app(rt, clock) is called with different runtimes and clocks (the tests build many
apps), so the per-app objects travel in one typed WebContext; `web_context` is the only
reader of `app.state`, and `attach` its only writer. Routes ask for:

- `Context`, `RuntimeDep`, `ClockDep`: the app's context, runtime and source of "now";
- `MaybeUser`, `CurrentUser`: the signed-in person (None, or SignInNeeded when nobody is);
- `ReportReader`, `Administrator`: the signed-in person, when access.py lets them in;
- `Work`: a unit of work, `with work() as service:` one transaction of the AlertService;
- `Page`: renders a template with the person, their roles and CSRF token;
- `PostedForm`, `PostedFields`: a form whose CSRF token and origin were checked;
- `ApiReader`, `ApiWriter`: the username behind an API request (bearer token or session);
- `keep_form`, `kept_form`: what a person typed, kept on the server across a redirect (a
  refused form's Post/Redirect/Get, or a sign-in when the session ended mid-form).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.datastructures import FormData

from .. import audit, db, mail
from ..alerts import AlertService
from ..clock import Clock, local_date
from ..errors import DrpError, NotPermitted
from ..ladder.access import may_administer, may_see_report
from ..models import Council, Person
from ..notify import Notifier
from ..runtime import Runtime
from ..settings import Settings
from . import pagecache
from .auth import SESSION_COOKIE, Auth, Signed, same

# What was typed, kept across a redirect: kept.py.
from .kept import (
    LOST_COOKIE,
    SIGNED_OUT_SECONDS,
    FormKeeper,
    ended_session_owner,
    form_name,
    form_page,
    keep_form,
    to_sign_in,
)


class SignInNeeded(Exception):
    """Nobody is signed in: pages redirect to /login, the API answers 401."""


class Forbidden(DrpError):
    """A form drp did not send (its CSRF token or origin is wrong)."""

    http_status = 403


# -- a form posted without a session (what was typed: kept.py) ---------------------------
def remember_form(request: Request, form: FormData) -> None:
    """The form a request posted, read once (by the input check) and kept on the request for
    signed_out_mid_form: the exception handler's request cannot read the body again."""
    request.state.form = form


def signed_out_mid_form(request: Request, context: WebContext) -> Response:
    """A form posted after its session ended (idle, too old, signed out elsewhere): what was
    typed is kept on the server for the person whose session it was (the form must carry that
    session's CSRF token and come from drp), and after signing in again they are back at the
    form's page with it. Never the password; never in the address."""
    page = form_page(request.url.path) or "/"
    response = RedirectResponse(to_sign_in(page), 303)
    form: FormData | None = getattr(request.state, "form", None)
    origin = request.headers.get("origin")
    base = context.settings.base_url.rstrip("/")
    here = f"{request.url.scheme}://{request.url.netloc}"
    if form is None or page == "/" or (origin and origin.rstrip("/") not in {base, here}):
        return response
    owner = ended_session_owner(request, context, str(form.get("csrf_token", "")))
    if owner is None:
        # No session to name the person (the cookie is gone, or names another session): the
        # text is nobody's drp can tell, so it is not kept; the form's page says so after
        # sign-in (the cookie holds only that page's address, signed).
        response.set_cookie(LOST_COOKIE, context.signer.sign(page, "lost"), httponly=True,
                            samesite="lax", secure=context.secure_cookies,
                            max_age=SIGNED_OUT_SECONDS)
        return response
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return keep_form(response, context, owner, page, fields,
                     {"typed_for": form_name(request.url.path), "signed_out": True},
                     seconds=SIGNED_OUT_SECONDS)


@dataclass(frozen=True)
class WebContext:
    """Everything the routes of one app share, built once by create_app."""

    rt: Runtime
    clock: Clock
    auth: Auth
    signer: Signed
    templates: Jinja2Templates
    secure_cookies: bool  # cookies marked Secure when drp is served over https
    deliverer: mail.Deliverer | None = None  # the app's background mail delivery
    kept: FormKeeper = field(default_factory=lambda: FormKeeper())  # typed text, briefly
    access_log: audit.AccessLogWriter | None = None  # the rows of reading (views, lists)
    notifier: Notifier | None = None  # copied for each unit of work (its e-mail templates once)
    page_cache: pagecache.PageCache | None = None  # pages answered again (pagecache.py)

    @property
    def settings(self) -> Settings:
        return self.rt.settings


def attach(app: FastAPI, context: WebContext) -> None:
    app.state.drp = context


def web_context(request: Request) -> WebContext:
    """The context of the app serving this request (the one reader of app.state)."""
    context = request.app.state.drp
    if not isinstance(context, WebContext):  # pragma: no cover - create_app always attaches
        raise TypeError("this app was not built by drp.web.app.create_app")
    return context


# Dependencies that do no I/O are coroutines: FastAPI runs a plain function on the thread
# pool, a hop to another thread and back for each one on every request.
async def _context(request: Request) -> WebContext:
    return web_context(request)


Context = Annotated[WebContext, Depends(_context)]


async def runtime_of(context: Context) -> Runtime:
    return context.rt


async def clock_of(context: Context) -> Clock:
    return context.clock


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
ClockDep = Annotated[Clock, Depends(clock_of)]


# -- who is asking ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedInUser:
    person: Person
    roles: frozenset[str]
    csrf: str
    token: str | None  # the session's cookie token
    # The organisation's and the data's tokens, read with the session (a page kept under
    # them is answered again: pagecache.py); None: not read.
    tokens: tuple[int, int] | None = None

    @property
    def username(self) -> str:
        return self.person.username


def signed_in(request: Request, context: WebContext) -> SignedInUser | None:
    """The person whose live session the request's cookie names, or None."""
    token = context.signer.unsign(request.cookies.get(SESSION_COOKIE), "session")
    found = context.auth.live_session(token, context.clock.now())
    if found is None:
        return None
    web, person, roles, tokens = found
    return SignedInUser(person, roles, web.csrf, token, tokens)


def maybe_user(request: Request, context: Context) -> SignedInUser | None:
    return signed_in(request, context)


MaybeUser = Annotated[SignedInUser | None, Depends(maybe_user)]


def current_user(user: MaybeUser) -> SignedInUser:
    if user is None:
        raise SignInNeeded
    return user


async def _current_user(user: MaybeUser) -> SignedInUser:
    return current_user(user)


CurrentUser = Annotated[SignedInUser, Depends(_current_user)]


async def report_reader(user: CurrentUser) -> SignedInUser:
    if not may_see_report(user.roles):
        raise NotPermitted("the dispute report is for IRO managers and senior managers")
    return user


async def administrator(user: CurrentUser) -> SignedInUser:
    if not may_administer(user.roles):
        raise NotPermitted("only an administrator may open the administration pages")
    return user


ReportReader = Annotated[SignedInUser, Depends(report_reader)]
Administrator = Annotated[SignedInUser, Depends(administrator)]


# -- forms -----------------------------------------------------------------------------------
def check_csrf(request: Request, context: WebContext, user: SignedInUser,
               sent: object) -> None:
    """The request came from drp's own page (its origin, if sent) with the session's token."""
    origin = request.headers.get("origin")
    base = context.settings.base_url.rstrip("/")
    here = f"{request.url.scheme}://{request.url.netloc}"
    if origin and origin.rstrip("/") not in {base, here}:
        raise Forbidden("this form came from another site; open drp and try again")
    if not same("" if sent is None else str(sent), user.csrf):
        raise Forbidden("the form has expired or was not sent by drp; reload the page"
                        " and try again")


async def posted_form(request: Request, context: Context, user: CurrentUser) -> FormData:
    form = await request.form()
    check_csrf(request, context, user, form.get("csrf_token"))
    return form


PostedForm = Annotated[FormData, Depends(posted_form)]


async def posted_fields(form: PostedForm) -> dict[str, str]:
    return {key: str(value) for key, value in form.items()}


PostedFields = Annotated[dict[str, str], Depends(posted_fields)]


# -- the service layer -----------------------------------------------------------------------
def origin_of(request: Request) -> audit.Origin:
    """Where a request comes from: the JSON API (under /api) or a web page, the client's
    address as the server sees it, and the method and path asked for."""
    path = request.url.path
    channel = "api" if path == "/api" or path.startswith("/api/") else "web"
    return audit.Origin.request(channel, request.client.host if request.client else None,
                                request.method, path)


@dataclass(frozen=True)
class UnitOfWork:
    """`with work() as service:` one transaction of the service layer, coming from the
    request's origin (on every row it writes; a view it refused is recorded after it); what it
    queued is delivered after the commit by the app's background deliverer, woken here: the
    request never waits for the mail server."""

    rt: Runtime
    clock: Clock
    deliverer: mail.Deliverer | None = None
    origin: audit.Origin | None = None
    access_log: audit.AccessLogWriter | None = None
    notifier: Notifier | None = None

    @contextmanager
    def __call__(self) -> Iterator[AlertService]:
        notifier = replace(self.notifier, missing=[]) if self.notifier is not None \
            else self.rt.notifier()
        refused: list[dict[str, Any]] = []
        with audit.coming_from(self.origin) if self.origin else nullcontext(), \
                audit.collecting() if self.access_log is not None else nullcontext() as reads:
            try:
                with db.transaction(self.rt.engine) as session:
                    service = self.rt.service(session, self.clock, notifier)
                    refused = service.refused
                    yield service
            finally:
                audit.keep_refused(self.rt.engine, refused)
        if reads and self.access_log is not None:  # committed before the page is answered
            self.access_log.write(reads)
            pagecache.recorded(reads)
        if service.queued and self.deliverer is not None:
            self.deliverer.wake()


def unit_of_work(request: Request, context: WebContext) -> UnitOfWork:
    return UnitOfWork(context.rt, context.clock, context.deliverer, origin_of(request),
                      context.access_log, context.notifier)


async def _unit_of_work(request: Request, context: Context) -> UnitOfWork:
    return unit_of_work(request, context)


Work = Annotated[UnitOfWork, Depends(_unit_of_work)]


# -- pages -----------------------------------------------------------------------------------
def council_name(engine: Engine) -> str:
    with db.transaction(engine) as session:
        return council_in(session)


# (a SELECT construct, not text: the unit of work keeps what it read across a SELECT, and
# cannot tell a text statement from a write)
_COUNCIL_NAME = select(col(Council.name)).where(col(Council.id) == 1)


def council_in(session: Session) -> str:
    name = session.exec(_COUNCIL_NAME).first()
    return str(name) if name else "drp"


def kept_page(request: Request, context: WebContext, user: SignedInUser,
              make: Callable[[], Response]) -> Response:
    """The page `make()` makes for `user`, answered again while nothing it shows has changed
    (pagecache.py: its access-log rows written again for this request). Kept only where the
    app writes the access log after each page (its rows are what an answer writes again)."""
    writer = context.access_log
    if writer is None:
        return make()
    now = context.clock.now()
    return pagecache.cached(
        request, context.page_cache, (user.person.id, user.csrf),
        user.tokens, local_date(now, context.settings.tz), origin_of(request), now,
        writer.write, make)


def page_frame(service: AlertService, user: SignedInUser) -> dict[str, Any]:
    """What every page's frame shows (base.html: the council's name, the counts beside the
    work lists), read in the page's own unit of work: a page that passes these to `render`
    spares a transaction of each of its own."""
    return {"council": council_in(service.s), "work_counts": service.work_counts(user.username)}


def render(request: Request, context: WebContext, name: str, user: SignedInUser | None,
           status: int = 200, **values: Any) -> HTMLResponse:
    lost = user is not None and context.signer.unsign(
        request.cookies.get(LOST_COOKIE), "lost") == request.url.path
    if lost:  # its form was posted after the session had gone: say nothing was saved (once)
        values = {**values, "signed_out": True, "nothing_kept": True}
    if "council" not in values:
        values = {**values, "council": council_name(context.rt.engine)}
    placeholder = pagecache.form_key()
    if placeholder is not None and "form_key" in values:  # (each answer's own: pagecache)
        values = {**values, "form_key": placeholder}
    response = context.templates.TemplateResponse(request, name, {
        "user": user, "roles": user.roles if user else frozenset(),
        "csrf": user.csrf if user else "", **values,
    }, status_code=status)
    if lost:
        response.delete_cookie(LOST_COOKIE)
    return response


@dataclass(frozen=True)
class PageRenderer:
    request: Request
    context: WebContext

    def __call__(self, name: str, user: SignedInUser | None, status: int = 200,
                 **values: Any) -> HTMLResponse:
        return render(self.request, self.context, name, user, status, **values)


async def page_renderer(request: Request, context: Context) -> PageRenderer:
    return PageRenderer(request, context)


Page = Annotated[PageRenderer, Depends(page_renderer)]


# -- the JSON API ----------------------------------------------------------------------------
def api_caller(request: Request, context: WebContext, changing: bool) -> str:
    """The username behind an API request: a bearer token (drp user token), or a signed-in
    session, which must also send its CSRF token in X-CSRF-Token to change anything."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        person = context.auth.api_person(header[7:].strip())
        if person is None:
            raise SignInNeeded
        return str(person.username)
    user = current_user(signed_in(request, context))
    if changing:
        check_csrf(request, context, user, request.headers.get("x-csrf-token"))
    return str(user.person.username)


# Dependencies, so who is asking is settled before the body is validated: a request without
# credentials is told 401, whatever it sent.
def api_reader(request: Request, context: Context) -> str:
    return api_caller(request, context, False)


def api_writer(request: Request, context: Context) -> str:
    return api_caller(request, context, True)


ApiReader = Annotated[str, Depends(api_reader)]
ApiWriter = Annotated[str, Depends(api_writer)]
