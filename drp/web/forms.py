"""What every form page shares: a change done once for its form's one-time key, a refusal's
message as the page shows it and the field it is about, and dates as typed."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from fastapi import Request

from .. import idempotency
from ..alerts import AlertService
from ..clock import parse_date
from ..errors import BadValue, DrpError
from .deps import UnitOfWork


def once_only(request: Request, form: dict[str, str], work: UnitOfWork, who: str,
              change: Callable[[AlertService], str]) -> str:
    """A form's change, which returns the page to go to, in one transaction with the form's
    one-time key (drp.idempotency): the same key sent again (a double click, a resubmitted
    page) gets the first submission's page and changes nothing. A form without a key (a
    script's post) is done as a fresh submission."""
    once = idempotency.for_form(form, f"POST {request.url.path}")
    with work() as svc:
        first = once.claim(svc.s, who, svc.now) if once else None
        if first is not None:
            return first.result
        url = change(svc)
        if once:
            once.record(svc.s, who, 303, url)
    return url


# A command-line option the service's message names in brackets, e.g. "(--until YYYY-MM-DD)":
# a page points at its own field instead.
_CLI_OPTION = re.compile(r" \(--[a-z-]+(?: [A-Z-]+)?\)")


def on_the_page(exc: DrpError) -> str:
    """A refusal's message as a page shows it, beside the field: without the option name."""
    return _CLI_OPTION.sub("", exc.message)


def optional_date(form: dict[str, str], key: str, what: str) -> date | None:
    """A date field left empty is None; one not a date is refused naming the field."""
    value = form.get(key, "").strip()
    if not value:
        return None
    try:
        return parse_date(value, what)
    except BadValue as exc:
        raise BadValue(exc.message, field=key) from None


def field_of(exc: DrpError, words: tuple[tuple[str, str], ...]) -> str | None:
    """The form field a refusal is about: the one the service layer named (BadValue.field),
    else the first whose words its message holds."""
    named = getattr(exc, "field", None)
    if named:
        return str(named)
    for said, field in words:
        if said in exc.message:
            return field
    return None


