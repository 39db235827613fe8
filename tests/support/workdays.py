"""An oracle for working days, independent of drp.calendar and the `holidays` package: the
England and Wales bank holidays written out by hand (gov.uk/bank-holidays, substitute days
included) and a naive count, day by day. Dates outside the list's years are refused, so a
test cannot silently rely on a year nobody wrote down."""

from __future__ import annotations

from datetime import date, timedelta

FIRST, LAST = date(2026, 1, 1), date(2029, 12, 31)

BANK_HOLIDAYS = frozenset({
    # 2026: Boxing Day is a Saturday, so Monday 28 December instead.
    date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 4),
    date(2026, 5, 25), date(2026, 8, 31), date(2026, 12, 25), date(2026, 12, 28),
    # 2027: Easter Sunday 28 March; Christmas and Boxing Day fall at the weekend.
    date(2027, 1, 1), date(2027, 3, 26), date(2027, 3, 29), date(2027, 5, 3),
    date(2027, 5, 31), date(2027, 8, 30), date(2027, 12, 27), date(2027, 12, 28),
    # 2028: New Year's Day is a Saturday, so Monday 3 January; Easter Sunday 16 April.
    date(2028, 1, 3), date(2028, 4, 14), date(2028, 4, 17), date(2028, 5, 1),
    date(2028, 5, 29), date(2028, 8, 28), date(2028, 12, 25), date(2028, 12, 26),
    # 2029: Easter Sunday 1 April.
    date(2029, 1, 1), date(2029, 3, 30), date(2029, 4, 2), date(2029, 5, 7),
    date(2029, 5, 28), date(2029, 8, 27), date(2029, 12, 25), date(2029, 12, 26),
})


def _known(day: date) -> date:
    if not FIRST <= day <= LAST:
        raise ValueError(f"{day} is outside the hand-written bank holidays"
                         f" ({FIRST.year}-{LAST.year}); add that year to {__name__}")
    return day


def is_working_day(day: date) -> bool:
    return _known(day).weekday() < 5 and day not in BANK_HOLIDAYS


def add(start: date, n: int) -> date:
    """The n-th working day after `start` (before it for negative n); `start` never counts."""
    step = timedelta(days=1 if n >= 0 else -1)
    day, found = start, 0
    while found < abs(n):
        day += step
        if is_working_day(day):
            found += 1
    return day


def between(a: date, b: date) -> int:
    """How many working days after `a` up to and including `b` (negative if b is before a)."""
    if b < a:
        return -between(b, a)
    days = [a + timedelta(days=i) for i in range(1, (b - a).days + 1)]
    return len([d for d in days if is_working_day(d)])


def on_or_after(day: date) -> date:
    """`day` if it is a working day, else the next one."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day
