"""What a person typed, kept across a redirect: a refused form's Post/Redirect/Get, and a form
posted after the session ended (kept for the person whose session it was, until they have
signed in again). Split from deps.py, which re-exports these names."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import Response

from .. import db
from ..models import Person, WebSession
from ..runtime import Runtime
from .auth import SESSION_COOKIE, Signed, _digest, same


class WebContext(Protocol):
    """What these need of deps.WebContext (not imported: deps imports this module)."""

    @property
    def rt(self) -> Runtime: ...
    @property
    def signer(self) -> Signed: ...
    @property
    def kept(self) -> FormKeeper: ...
    @property
    def secure_cookies(self) -> bool: ...


class SignedInUser(Protocol):
    """What these need of deps.SignedInUser."""

    @property
    def person(self) -> Person: ...

# -- what was typed, kept across a redirect ------------------------------------------------------
KEPT_COOKIE = "drp_form"
LOST_COOKIE = "drp_lost"  # a form's page: its form was posted without a session (nothing kept)
REFUSED_SECONDS = 300  # a refused form's errors and text, until its page is shown
SIGNED_OUT_SECONDS = 1800  # a form posted after the session ended, until the person is back
KEPT_MAX_CHARS = 200_000  # one form's text at most (more is not kept; a raise form holds ~21k)
KEPT_MAX_FORMS = 128  # forms kept at once (the oldest go first)
KEPT_PER_PERSON = 4  # forms kept for one person at once
_NOT_KEPT = re.compile(r"csrf_token|idempotency_key|.*password.*", re.IGNORECASE)


@dataclass(frozen=True)
class KeptForm:
    owner: int  # the person's id: only they get it back
    path: str  # the page (GET address) that shows it
    fields: dict[str, str]
    values: dict[str, Any]  # what the page shows beside it (the error, its field, a notice)
    until: float  # time.monotonic()


class FormKeeper:
    """What a person typed into a form, kept in this process's memory for a few minutes and
    given back once, to that person, on the form's page: never in an address, never the
    password or a form's tokens. Bounded: a form of more than KEPT_MAX_CHARS characters is not
    kept, at most KEPT_PER_PERSON forms a person and KEPT_MAX_FORMS in all (the oldest go).
    The browser holds only a signed random key (cookie drp_form); a restart of the app forgets
    what was kept, and the person types it again."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, KeptForm] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, owner: int, path: str, fields: Mapping[str, str], values: dict[str, Any],
             seconds: float) -> str | None:
        kept = {k: v for k, v in fields.items() if not _NOT_KEPT.fullmatch(k)}
        if sum(len(k) + len(v) for k, v in kept.items()) > KEPT_MAX_CHARS:
            kept = {}
            if not values:
                return None
        key = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            for old in [k for k, f in self._kept.items() if f.until < now]:
                del self._kept[old]
            mine = [k for k, f in self._kept.items() if f.owner == owner]
            for old in mine[:max(0, len(mine) - KEPT_PER_PERSON + 1)]:
                del self._kept[old]
            while len(self._kept) >= KEPT_MAX_FORMS:
                self._kept.popitem(last=False)
            self._kept[key] = KeptForm(owner, path, kept, values, now + seconds)
        return key

    def take(self, key: str | None, owner: int, path: str) -> KeptForm | None:
        """The form kept under `key`, once, if it is this person's and for this page."""
        if not key:
            return None
        with self._lock:
            found = self._kept.get(key)
            if found is None or found.owner != owner or found.path != path:
                return None
            del self._kept[key]
        return found if found.until >= time.monotonic() else None


def keep_form(response: Response, context: WebContext, owner: int, path: str,
              fields: Mapping[str, str], values: dict[str, Any] | None = None,
              seconds: float = REFUSED_SECONDS) -> Response:
    """Keep what was typed (and the page's `values`) for the page at `path`; the key goes
    to the browser in a signed, HttpOnly cookie."""
    key = context.kept.keep(owner, path, fields, values or {}, seconds)
    if key is not None:
        response.set_cookie(KEPT_COOKIE, context.signer.sign(key, "form"), httponly=True,
                            samesite="lax", secure=context.secure_cookies, max_age=int(seconds))
    return response


def kept_form(request: Request, context: WebContext, user: SignedInUser) -> KeptForm | None:
    """What this person typed for this page, kept by keep_form (once)."""
    key = context.signer.unsign(request.cookies.get(KEPT_COOKIE), "form")
    person_id = user.person.id
    return None if person_id is None else context.kept.take(key, person_id, request.url.path)


def back_to_form(context: WebContext, user: SignedInUser, path: str, form: Mapping[str, str],
                  status: int, **values: Any) -> Response:
    """Post/Redirect/Get for a refused form: 303 to its page, which shows the refusal (and
    answers with its status) and what was typed; reloading that page shows the form afresh."""
    response = Response(status_code=303, headers={"Location": path})
    return keep_form(response, context, user.person.id or 0, path.split("#")[0].split("?")[0],
                     form, {"status": status, **values})


# The page (GET address) of each form that is posted elsewhere: an alert's forms are on its
# page; the raise form and the referral have pages of their own.
_ALERT_FORM = re.compile(r"/alerts/(\d{1,10})/(?:actions/(\d{1,10})/done|([a-z_]{1,20}))")


def form_page(path: str) -> str | None:
    """The page that shows the form posted to `path`, or None for a form drp does not know."""
    if path in ("/alerts/new",):
        return path
    found = _ALERT_FORM.fullmatch(path)
    if found is None:
        return None
    return path if path.endswith("/refer") else f"/alerts/{found.group(1)}"


def form_name(path: str) -> str | None:
    """The name of the form posted to `path` as the alert's page opens it (`?act=`, and its
    id `do-<name>`): `action-N` for marking agreed action N done, else the address's last
    part (respond, hold, theme ...); None for a form with a page of its own."""
    found = _ALERT_FORM.fullmatch(path)
    if found is None or form_page(path) == path:
        return None
    return f"action-{found.group(2)}" if found.group(2) else found.group(3)


def ended_session_owner(request: Request, context: WebContext, sent_csrf: str) -> int | None:
    """The person whose session (live or not: idle, too old, signed out) the request's cookie
    names, when the form carries that session's CSRF token: whose typed text this is."""
    token = context.signer.unsign(request.cookies.get(SESSION_COOKIE), "session")
    if not token:
        return None
    with db.transaction(context.rt.engine) as session:
        web = session.get(WebSession, _digest(token))
        if web is None or not same(sent_csrf, web.csrf):
            return None
        return int(web.person_id)


def to_sign_in(back: str) -> str:
    """The sign-in page, to return to `back` (a path of drp's, its query escaped)."""
    return "/login?" + urlencode({"next": back}, safe="/", quote_via=quote)
