"""Working days: weekends and England and Wales bank holidays excluded.

Bank holidays come from the `holidays` package (substitute days and one-off holidays such as
2022-09-19 and 2023-05-08 included); a council may add short-notice days of its own
(`extra`: its closure days, which an administrator records with `drp calendar close`, with
their reasons when given as a mapping)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from functools import lru_cache
from typing import NoReturn

import holidays

from .clock import FIRST_DATE, LAST_DATE
from .errors import BadValue


class WorkingCalendar:
    def __init__(self, extra: Iterable[date] | Mapping[date, str] = ()) -> None:
        self._names = dict(extra) if isinstance(extra, Mapping) else {}
        self._extra = frozenset(extra)
        self._bank = holidays.country_holidays("GB", subdiv="ENG")
        self._working: dict[date, bool] = {}  # the flows ask about the same days many times

    @property
    def extra(self) -> frozenset[date]:
        """The council's own non-working days (closures), beyond the bank holidays."""
        return self._extra

    def with_days(self, extra: Mapping[date, str]) -> WorkingCalendar:
        """This calendar with more days of the council's own (closures) added."""
        names = {d: self._names.get(d, "Additional holiday") for d in self._extra}
        return WorkingCalendar({**names, **extra})

    def is_holiday(self, day: date) -> bool:
        return day in self._bank or day in self._extra

    def holiday_name(self, day: date) -> str | None:
        if day in self._extra:
            return self._names.get(day) or "Additional holiday"
        name = self._bank.get(day)
        return str(name) if name else None

    def is_working_day(self, day: date) -> bool:
        known = self._working.get(day)
        if known is None:
            known = self._working[day] = day.weekday() < 5 and not self.is_holiday(day)
        return known

    def add(self, start: date, n: int) -> date:
        """The date `n` working days after `start` (before it when `n` is negative).

        `start` itself never counts, so the result of a non-zero `n` is always a working day;
        `add(d, 0)` is `d`. A count that leaves the dates drp accepts (`drp.clock`: a start
        outside them, an old row's, or n days past them, as n working days take at least n
        days) is refused before counting; one whose last working day falls just outside them,
        when it is reached."""
        if not n:
            return start
        step = 1 if n > 0 else -1
        room = (LAST_DATE - start).days if step > 0 else (start - FIRST_DATE).days
        if not FIRST_DATE <= start <= LAST_DATE or abs(n) > room:
            _beyond(start, n)
        day, left = start, abs(n)
        while left:
            day += timedelta(days=step)
            if not FIRST_DATE <= day <= LAST_DATE:
                _beyond(start, n)
            if self.is_working_day(day):
                left -= 1
        return day

    def between(self, a: date, b: date) -> int:
        """Working days after `a` up to and including `b` (negative when `b` is before `a`)."""
        if b < a:
            return -self.between(b, a)
        return sum(1 for i in range(1, (b - a).days + 1) if self.is_working_day(a + timedelta(i)))

    def next_working_day(self, day: date) -> date:
        """`day` itself when it is a working day, else the next one (beyond the dates Python
        holds, a due date of 9999-12-31 left by an older version or an API client, a BadValue
        that says so instead of an OverflowError)."""
        start = day
        while not self.is_working_day(day):
            try:
                day += timedelta(days=1)
            except OverflowError:
                _beyond(start, 0)
        return day


def _beyond(start: date, n: int) -> NoReturn:
    if n:
        raise BadValue(f"{abs(n)} working day{'s' if abs(n) != 1 else ''}"
                       f" {'after' if n > 0 else 'before'} {start.isoformat()} is outside the"
                       f" dates drp accepts ({FIRST_DATE.isoformat()} to"
                       f" {LAST_DATE.isoformat()}); correct the date or the count")
    raise BadValue(f"the first working day from {start.isoformat()} is beyond the dates the"
                   f" calendar can count ({date.min.isoformat()} to {date.max.isoformat()});"
                   " correct the date")


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    return WorkingCalendar()
