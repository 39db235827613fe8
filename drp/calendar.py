"""Working days: weekends and England and Wales bank holidays excluded.

Bank holidays come from the `holidays` package (substitute days and one-off holidays such as
2022-09-19 and 2023-05-08 included); a council may add short-notice days of its own
(`extra`: its closure days, which an administrator records with `drp calendar close`, with
their reasons when given as a mapping)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from functools import lru_cache

import holidays


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
        `add(d, 0)` is `d`."""
        step = 1 if n >= 0 else -1
        day, left = start, abs(n)
        while left:
            day += timedelta(days=step)
            if self.is_working_day(day):
                left -= 1
        return day

    def between(self, a: date, b: date) -> int:
        """Working days after `a` up to and including `b` (negative when `b` is before `a`)."""
        if b < a:
            return -self.between(b, a)
        return sum(1 for i in range(1, (b - a).days + 1) if self.is_working_day(a + timedelta(i)))

    def next_working_day(self, day: date) -> date:
        """`day` itself when it is a working day, else the next one."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    return WorkingCalendar()
