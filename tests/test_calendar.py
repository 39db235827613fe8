from datetime import date

import pytest

from drp.calendar import WorkingCalendar
from drp.errors import BadValue

cal = WorkingCalendar()


@pytest.mark.parametrize(
    "day",
    [
        date(2022, 9, 19),   # state funeral of Queen Elizabeth II (announced nine days ahead)
        date(2023, 5, 8),    # coronation of King Charles III
        date(2022, 6, 3),    # platinum jubilee
        date(2021, 12, 27), date(2021, 12, 28),  # Christmas and Boxing Day, substitute days
        date(2022, 1, 3),    # New Year's Day substitute
        date(2026, 12, 28),  # Boxing Day on a Saturday: substitute Monday
        date(2024, 3, 29), date(2024, 4, 1),    # Easter 2024
        date(2025, 4, 18), date(2025, 4, 21),   # Easter 2025
        date(2026, 4, 3), date(2026, 4, 6),     # Easter 2026
        date(2027, 3, 26), date(2027, 3, 29),   # Easter 2027
    ],
)
def test_bank_holidays_in_england_are_not_working_days(day: date) -> None:
    assert not cal.is_working_day(day)


def test_weekends_are_not_working_days_and_ordinary_weekdays_are() -> None:
    assert not cal.is_working_day(date(2026, 3, 7))
    assert not cal.is_working_day(date(2026, 3, 8))
    assert cal.is_working_day(date(2026, 3, 9))


def test_scottish_only_holidays_do_not_count_in_england() -> None:
    assert cal.is_working_day(date(2026, 1, 2))  # 2 January is a holiday in Scotland only
    assert cal.is_working_day(date(2026, 11, 30))  # St Andrew's Day


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 3, 2), 5, date(2026, 3, 9)),      # Monday + 5 = next Monday
        (date(2026, 3, 2), 20, date(2026, 3, 30)),
        (date(2026, 3, 7), 1, date(2026, 3, 9)),      # from a Saturday
        (date(2026, 3, 30), 5, date(2026, 4, 8)),     # across Good Friday and Easter Monday
        (date(2026, 12, 22), 5, date(2026, 12, 31)),  # Christmas 2026: 25 and 28 Dec off
        (date(2026, 12, 22), 6, date(2027, 1, 4)),    # ... and New Year's Day
        (date(2025, 12, 22), 5, date(2025, 12, 31)),  # Christmas 2025
        (date(2024, 12, 23), 3, date(2024, 12, 30)),  # Christmas 2024
        (date(2022, 9, 15), 2, date(2022, 9, 20)),    # the state funeral
        (date(2023, 5, 5), 1, date(2023, 5, 9)),      # the coronation
        (date(2026, 3, 9), -5, date(2026, 3, 2)),     # backwards
        (date(2026, 4, 7), -1, date(2026, 4, 2)),     # backwards over Easter
        (date(2026, 3, 4), 0, date(2026, 3, 4)),
    ],
)
def test_add_working_days(start: date, n: int, expected: date) -> None:
    assert cal.add(start, n) == expected


def test_add_always_lands_on_a_working_day() -> None:
    start = date(2021, 12, 1)
    for offset in range(0, 400):
        day = date.fromordinal(start.toordinal() + offset)
        for n in (1, 5, 20, -1, -5):
            assert cal.is_working_day(cal.add(day, n))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (date(2026, 3, 2), date(2026, 3, 9), 5),
        (date(2026, 3, 2), date(2026, 3, 2), 0),
        (date(2026, 3, 9), date(2026, 3, 2), -5),
        (date(2026, 4, 1), date(2026, 4, 7), 2),      # 2 Apr, 7 Apr (3 and 6 are holidays)
        (date(2022, 9, 16), date(2022, 9, 20), 1),    # the state funeral does not count
        (date(2026, 12, 24), date(2027, 1, 4), 4),    # 29, 30, 31 Dec, 4 Jan
    ],
)
def test_between_counts_working_days_after_a_up_to_b(a: date, b: date, expected: int) -> None:
    assert cal.between(a, b) == expected


def test_between_and_add_agree() -> None:
    start = date(2026, 12, 18)
    for n in range(0, 30):
        assert cal.between(start, cal.add(start, n)) == n


def test_a_short_notice_holiday_can_be_added() -> None:
    extra = WorkingCalendar(extra=[date(2026, 3, 4)])
    assert not extra.is_working_day(date(2026, 3, 4))
    assert extra.add(date(2026, 3, 2), 5) == date(2026, 3, 10)


def test_closure_days_are_added_with_their_reasons_and_keep_the_earlier_ones() -> None:
    funeral = WorkingCalendar().with_days({date(2027, 3, 19): "State funeral"})
    both = funeral.with_days({date(2027, 3, 10): "Snow"})
    assert both.extra == {date(2027, 3, 19), date(2027, 3, 10)}
    assert both.holiday_name(date(2027, 3, 19)) == "State funeral"
    assert both.holiday_name(date(2027, 3, 10)) == "Snow"
    assert both.add(date(2027, 3, 9), 1) == date(2027, 3, 11)
    assert both.between(date(2027, 3, 9), date(2027, 3, 22)) == 7  # 11-12, 15-18, 22
    assert funeral.is_working_day(date(2027, 3, 10))  # the earlier calendar is unchanged


@pytest.mark.parametrize(("start", "n"), [
    (date(2090, 1, 1), 5000),     # about 2109: past drp's last date
    (date(2027, 1, 1), 2000000),  # about 9695: counted for 28 s before
    (date(2027, 1, 1), -10000),   # about 1988: before drp's first date
    (date(2101, 1, 1), 1),        # a start outside the range (an old row): nothing to count
    (date(2100, 12, 1), 21),      # 3 January 2101: the count fits, its last working day not
    (date(2000, 1, 31), -20),     # 30 December 1999
])
def test_a_count_beyond_the_dates_drp_accepts_is_refused_at_once(start: date, n: int) -> None:
    with pytest.raises(BadValue) as refused:
        cal.add(start, n)
    assert str(refused.value) == (
        f"{abs(n)} working day{'s' if abs(n) > 1 else ''} {'after' if n > 0 else 'before'} {start.isoformat()} is outside"
        " the dates drp accepts (2000-01-01 to 2100-12-31); correct the date or the count")


def test_counts_within_the_dates_drp_accepts_still_work_near_its_ends() -> None:
    assert cal.add(date(2100, 12, 1), 20) == date(2100, 12, 31)
    assert cal.add(date(2000, 1, 31), -19) == date(2000, 1, 4)  # 3 Jan 2000: a bank holiday
    assert cal.add(date(9999, 12, 31), 0) == date(9999, 12, 31)  # nothing to count
