"""What every form page shares: a change done once for its form's one-time key, a refusal's
message as the page shows it and the field it is about, dates as typed (GOV.UK's day, month
and year fields), and every problem of a form at once (Problems).

A form checks each field up front with the service layer's own rules (drp.alerts.inputs, the
ladder's date rules) through `Problems.check`, so the page lists every problem in one go; the
service still checks everything when the change is made, and its refusal, shown through
`refused`, is the last word."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, TypeVar

from fastapi import Request

from .. import idempotency
from ..alerts import AlertService
from ..clock import FIRST_DATE, LAST_DATE, parse_date, within_range
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
# An option named in the words ("--due sets the informal stage's date"), and what a page calls it.
_OPTION_WORD = re.compile(r"--([a-z][a-z-]*)")
_OPTION_WORDS = {"due": "the due date", "separate": "a separate matter",
                 "legal-advice": "the legal advice", "until": "the end date",
                 "advised-on": "the date of the advice"}
# A command to run, in brackets or after a colon ("(... recorded: drp cover set)").
_CLI_COMMAND = re.compile(r"(?::| with| by)? `?drp [a-z]+(?: [a-z-]+)?`?(?=\)|;|$|\.)")
_FORMAT = re.compile(r" \(YYYY-MM-DD\)|,? ?(?:write it as|as) YYYY-MM-DD(?:, e\.g\. [0-9-]+)?")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
# The service's shapes of a refused value, and how a page says them (GOV.UK's error messages).
_SHAPES = (
    (re.compile(r"^(?P<what>.+?) is empty(?:;.*)?$"), "Enter {what}"),
    (re.compile(r"^(?P<what>.+?) is \d+ characters long; the limit is (?P<limit>\d+)$"),
     "{What} must be {limit} characters or fewer"),
    (re.compile(r"^(?P<what>.+?) '[^']*' is not a date\b.*$"), "{What} must be a real date"),
    (re.compile(r"^(?P<what>.+?) \S+ is outside the dates drp accepts.*$"),
     "{What} must be between {first} and {last}"),
)


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def long_date(day: date) -> str:
    """A date as pages show it: 9 March 2026."""
    return f"{day.day} {day:%B %Y}"


def _page_date(found: re.Match[str]) -> str:
    try:
        return long_date(date.fromisoformat(found.group()))
    except ValueError:
        return found.group()


def on_the_page(exc: DrpError, who: str | None = None) -> str:
    """A refusal's message as a page shows it (GOV.UK's style): capitalised, in the page's
    words rather than the command line's (no option names, commands or YYYY-MM-DD), dates as
    "9 March 2026", and `who` (the person's username) as "you"."""
    message = _CLI_OPTION.sub("", exc.message).strip()
    for shape, says in _SHAPES:
        found = shape.match(message)
        if found:
            what = found.group("what")
            message = says.format(what=what, What=capitalised(what),
                                  first=long_date(FIRST_DATE), last=long_date(LAST_DATE),
                                  limit=found.groupdict().get("limit"))
            break
    message = _FORMAT.sub("", message)
    message = _CLI_COMMAND.sub("", message)
    message = _OPTION_WORD.sub(lambda m: _OPTION_WORDS.get(m.group(1),
                                                         m.group(1).replace("-", " ")), message)
    message = _ISO_DATE.sub(_page_date, message)
    if who:
        message = re.sub(rf"(?<![\w.-]){re.escape(who)}(?![\w.-])", "you", message)
    return capitalised(message.replace("()", "").replace("  ", " ").strip())


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




# -- GOV.UK's date input: day, month and year fields -----------------------------------------
DATE_PARTS = ("day", "month", "year")


def date_part_id(name: str, part: str) -> str:
    """The id of a date's part: the day's is the date's own name (where the error summary's
    link goes), the others `<name>-month` and `<name>-year`."""
    return name if part == "day" else f"{name}-{part}"


class DateProblem(BadValue):
    """A date typed wrongly: `field` is the first part to put right, `parts` those to
    highlight."""

    def __init__(self, message: str, *, name: str, parts: tuple[str, ...]) -> None:
        super().__init__(message, field=date_part_id(name, parts[0]))
        self.name = name
        self.parts = parts


def date_input(form: Mapping[str, str], name: str, label: str, *,
               required: bool = False) -> date | None:
    """The date posted in GOV.UK's date input (`<name>-day`, `<name>-month`, `<name>-year`):
    None when all three are empty (unless `required`), else the date, or a DateProblem in
    GOV.UK's words ("The end date must include a month"). `label` in lower case as a
    sentence's middle says it ("the end date"). A date posted whole as `<name>` (YYYY-MM-DD,
    a script's or an older page's) is read too. Within the dates drp accepts (2000 to 2100)."""
    typed = {part: form.get(f"{name}-{part}", "").strip() for part in DATE_PARTS}
    what = capitalised(label)
    if not any(typed.values()):
        whole = form.get(name, "").strip()
        if whole:
            try:
                return within_range(date.fromisoformat(whole), label, field=name)
            except (ValueError, BadValue):
                raise DateProblem(f"{what} must be a real date", name=name,
                                  parts=DATE_PARTS) from None
        if required:
            raise DateProblem(f"Enter {label}", name=name, parts=DATE_PARTS)
        return None
    missing = tuple(part for part in DATE_PARTS if not typed[part])
    if missing:
        raise DateProblem(f"{what} must include a {' and '.join(missing)}", name=name,
                          parts=missing)
    wrong = tuple(part for part in DATE_PARTS if not typed[part].isdigit()
                  or len(typed[part]) > (4 if part == "year" else 2))
    if wrong:
        raise DateProblem(f"{what} must be a real date", name=name, parts=wrong)
    if len(typed["year"]) != 4:
        raise DateProblem(f"The year of {label} must include 4 numbers", name=name,
                          parts=("year",))
    day, month, year = (int(typed[part]) for part in DATE_PARTS)
    try:
        value = date(year, month, day)
    except ValueError:
        # A month past 12 or a day past 31 is that box's mistake; a day the month does not
        # have (31 February) is the date's as a whole: all three boxes marked (GOV.UK).
        parts = ("month",) if not 1 <= month <= 12 else (
            ("day",) if not 1 <= day <= 31 else DATE_PARTS)
        raise DateProblem(f"{what} must be a real date", name=name, parts=parts) from None
    try:
        return within_range(value, label)
    except BadValue:
        raise DateProblem(f"{what} must be between {FIRST_DATE.year} and {LAST_DATE.year}",
                          name=name, parts=("year",)) from None


# -- every problem at once -------------------------------------------------------------------
T = TypeVar("T")


class FormProblems(BadValue):
    """Every problem a form's fields have: `errors`, (field id, message) in the form's order,
    as base.html's error summary lists them; `parts`, a date's parts to highlight."""

    def __init__(self, errors: list[tuple[str, str]],
                 parts: dict[str, tuple[str, ...]] | None = None) -> None:
        super().__init__(errors[0][1], field=errors[0][0])
        self.errors = errors
        self.parts = parts or {}


class Problems:
    """Collects a form's problems, each field checked by the service layer's own rule:

        problems = Problems(who=user.username)
        summary = problems.check("summary", lambda: inputs.text(...))
        due = problems.check("due", lambda: date_input(form, "due", "the due date"))
        problems.raise_any()  # FormProblems, when any field was refused

    A check that refuses (BadValue) records its message as a page says it (on_the_page) and
    returns None; any other error goes up as it is."""

    def __init__(self, who: str | None = None) -> None:
        self.who = who
        self.errors: list[tuple[str, str]] = []
        self.parts: dict[str, tuple[str, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.errors)

    def has(self, field: str) -> bool:
        return any(name == field or name.startswith(f"{field}-") for name, _ in self.errors)

    def add(self, field: str, message: str) -> None:
        self.errors.append((field, message))

    def check(self, field: str, rule: Callable[[], T]) -> T | None:
        """`rule()`'s value, or None after recording its refusal against `field` (or a part
        of it: a date's month)."""
        try:
            return rule()
        except BadValue as exc:
            if isinstance(exc, DateProblem):
                self.parts[exc.name] = exc.parts
            named = exc.field if exc.field and exc.field.startswith(f"{field}-") else field
            self.add(named, exc.message if isinstance(exc, DateProblem)
                     else on_the_page(exc, self.who))
            return None

    def raise_any(self) -> None:
        if self.errors:
            raise FormProblems(list(self.errors), dict(self.parts))


def refused(exc: DrpError, words: tuple[tuple[str, str], ...] = (), *,
            default: str = "main-content", who: str | None = None) -> dict[str, Any]:
    """What a page shows of a refusal (splat into back_to_form or the page): `errors`, every
    (field id, message), and `error_parts`, a date's parts to highlight. A service refusal is
    one error, against the field it names (field_of with `words`) or `default`."""
    if isinstance(exc, FormProblems):
        return {"errors": exc.errors, "error_parts": exc.parts}
    if isinstance(exc, DateProblem):
        return {"errors": [(exc.field or default, exc.message)],
                "error_parts": {exc.name: exc.parts}}
    return {"errors": [(field_of(exc, words) or default, on_the_page(exc, who))],
            "error_parts": {}}
