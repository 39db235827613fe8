"""The organisation file's field types: names, usernames, keys, references, e-mail addresses
and free text, each refused with the reason (a control character or bidirectional override,
the wrong shape, more than one address) before anything is loaded."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
)

from .errors import BadValue


def _no_control(value: Any, lines: bool = False) -> Any:
    """Every string the file gives: no control character (`drp.alerts.inputs.plain`, the one
    rule: a name holding CR LF "Bcc: ..." reaches e-mail headers, an escape sequence a
    terminal) and no bidirectional override (text reading otherwise than it says), refused
    before the field's own pattern, so the refusal says which character. `lines`: free text
    (a cover's reason), where tab and line breaks are allowed."""
    from .alerts.inputs import _BIDI_OVERRIDES, plain  # (drp.alerts imports this module)

    if isinstance(value, str):
        try:
            plain(value, "the value", lines=lines)
        except BadValue as exc:
            raise ValueError(exc.message) from None
        at = next((i for i, ch in enumerate(value) if ch in _BIDI_OVERRIDES), None)
        if at is not None:
            raise ValueError(f"the value holds a bidirectional override (U+{ord(value[at]):04X})"
                             f" at position {at + 1}; remove it")
    return value


Plain = BeforeValidator(_no_control)
Reason = Annotated[str, BeforeValidator(lambda value: _no_control(value, lines=True))]
Name = Annotated[str, Plain, Field(min_length=1, max_length=200)]
Username = Annotated[str, Plain,
                     StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")]
Key = Annotated[str, Plain, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")]
_ATEXT = frozenset("!#$%&'*+/=?^_`{|}~-")  # RFC 5322's atom characters besides letters, digits


def _atom(part: str, extra: frozenset[str]) -> bool:
    """Letters and digits (any script: SMTPUTF8 and internationalised domains) and `extra`."""
    return bool(part) and all(ch.isalnum() or ch in extra for ch in part)


def email_problem(value: str) -> str | None:
    """What keeps `value` from being one e-mail address (None when nothing): one `@`, a dot-atom
    before it (no commas, spaces, quotes, brackets or names: `a@x.test,b@y.test` or
    `Ann <a@x.test>` would reach more than one recipient, or another than meant) and a domain
    name of two or more labels after it."""
    if value.count("@") != 1:
        return ("holds more than one '@': give one address" if value.count("@") > 1
                else "has no '@'")
    local, domain = value.split("@")
    if len(value) > 254 or len(local) > 64:
        return "is too long for an e-mail address"
    if not all(_atom(p, _ATEXT) for p in local.split(".")):
        bad = next((ch for ch in local if not (ch.isalnum() or ch in _ATEXT or ch == ".")), "")
        return (f"has {bad!r} before the '@'" if bad else "has a misplaced '.' before the '@'"
                ) + " (one address, nothing else)"
    labels = domain.split(".")
    if len(labels) < 2 or not all(
            _atom(p, frozenset("-")) and len(p) <= 63 and not p.startswith("-")
            and not p.endswith("-") for p in labels):
        return f"has {domain!r} after the '@', which is not a domain name"
    return None


def _email(value: str, info: ValidationInfo) -> str:
    problem = email_problem(value)
    if problem is not None:
        who = info.data.get("username")
        raise ValueError(f"{value!r} is not an e-mail address{f' for {who}' if who else ''}:"
                         f" it {problem} (name@example.org)")
    return value


Email = Annotated[str, Plain, AfterValidator(_email)]
ChildRef = Annotated[str, Plain,
                     StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9/_-]{0,39}$")]
EARLIEST_BIRTH = date(1900, 1, 1)


def _born(value: date) -> date:
    """A child's date of birth (drp.retention keeps alert records to a birthday): a real date,
    not before 1900 (a typing slip would otherwise remove a record decades early); a date
    after today is refused by the loader, which knows today."""
    if value < EARLIEST_BIRTH:
        raise ValueError(f"{value.isoformat()} is before 1900; give the child's date of birth,"
                         " e.g. 2012-05-31")
    return value


BirthDate = Annotated[date, AfterValidator(_born)]
# The child's record id in the council's case-management system (LCS, Mosaic): digits or a
# code, as that system writes it (drp.casenotes keys case notes by it).
RecordId = Annotated[str, Plain,
                     StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,39}$")]
