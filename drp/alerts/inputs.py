"""What people type, cleaned and limited in one place: text (no control characters or
bidirectional overrides, a length limit each), working days, agreed actions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from ..calendar import WorkingCalendar
from ..clock import within_range
from ..errors import BadValue

SUMMARY_MAX = 500
DETAIL_MAX = 10000
TEXT_MAX = 5000
ACTION_MAX = 2000
LEGAL_ADVICE_MAX = 500
_BIDI_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_CC = r"\x00-\x1f\x7f-\x9f"  # Unicode's control characters (Cc), as a regex class's inside
_CC_IN_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # the same but tab and line breaks
_CONTROL = re.compile(f"[{_CC}]")
_CONTROL_IN_TEXT = re.compile(f"[{_CC_IN_TEXT}]")
# The same rule as the JSON API's schema says it (OpenAPI `pattern`), so clients and schema
# tests know what `plain` refuses: one line, or free text.
PLAIN_PATTERN = f"^[^{_CC}]*$"
TEXT_PATTERN = f"^[^{_CC_IN_TEXT}]*$"


@dataclass(frozen=True)
class ActionIn:
    text: str
    due: date
    owner: str | None = None


def text(value: str | None, what: str, *, required: bool, limit: int) -> str | None:
    # Bidirectional overrides can make text read differently from what it says
    # ("fdp.exe" shown as "exe.pdf"); control characters have no place in a record.
    value = "".join(ch for ch in (value or "") if ch not in _BIDI_OVERRIDES
                    and (ch in "\n\t" or ord(ch) >= 32)).strip()
    if not value:
        if required:
            raise BadValue(f"{what} is empty; say it in a few words")
        return None
    if len(value) > limit:
        raise BadValue(f"{what} is {len(value)} characters long; the limit is {limit}")
    return value


def plain(value: str, what: str, *, field: str | None = None, lines: bool = False) -> str:
    """Refuse a value holding a control character (NUL above all: PostgreSQL cannot even
    compare text with one), naming the input: every query parameter, form field and JSON
    string the web app and the API receive, and every argument of the command line, passes
    here before anything reads it. `lines`: a tab or line break is allowed (free text, which
    `text` then cleans)."""
    found = (_CONTROL_IN_TEXT if lines else _CONTROL).search(value)
    if found is not None:
        ch = found.group()
        name = "NUL" if ch == "\x00" else f"U+{ord(ch):04X}"
        raise BadValue(f"{what} holds a control character ({name}) at position"
                       f" {found.start() + 1}; remove it", field=field)
    return value


def working_day(calendar: WorkingCalendar, day: date, what: str) -> date:
    if not calendar.is_working_day(day):
        why = calendar.holiday_name(day) or day.strftime("%A")
        nxt = calendar.next_working_day(day)
        raise BadValue(
            f"{what} {day.isoformat()} is not a working day ({why}); the next working day"
            f" is {nxt.isoformat()}"
        )
    return day



def day(value: date, what: str, *, field: str | None = None) -> date:
    """Any date a person gives, within the dates drp accepts (`drp.clock.within_range`)."""
    return within_range(value, what, field=field)
