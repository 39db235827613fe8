"""The one source of "now". Nothing else in drp calls datetime.now(): every command and flow
can run as of a given instant (--now), for tests, backfills and simulation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from .errors import BadValue


class Clock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class FixedClock(Clock):
    instant: datetime

    def now(self) -> datetime:
        return self.instant


def parse_instant(text: str, tz: ZoneInfo) -> datetime:
    """Parse an ISO 8601 instant; without an offset it is local time in `tz`. Returns UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadValue(
            f"{text!r} is not a date and time; write it as ISO 8601, e.g. 2026-03-02T09:00"
        ) from None
    within_range(value.date(), "the time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


# The dates a person may give anywhere: 9999-12-31, a common "no end", is refused plainly
# rather than overflowing the calendar.
FIRST_DATE = date(2000, 1, 1)
LAST_DATE = date(2100, 12, 31)


def within_range(value: date, what: str, *, field: str | None = None) -> date:
    if not FIRST_DATE <= value <= LAST_DATE:
        raise BadValue(f"{what} {value.isoformat()} is outside the dates drp accepts"
                       f" ({FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()}); give a real"
                       " date", field=field)
    return value


def parse_date(text: str, what: str = "date") -> date:
    try:
        value = date.fromisoformat(text.strip())
    except ValueError:
        raise BadValue(
            f"{what} {text!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-03-09"
        ) from None
    return within_range(value, what)


# Acting as of a future instant writes events dated ahead (after which acting at the real time
# on that alert is refused) and so is refused, unless this is set to 1 in the environment: tests,
# simulations, demos and training copies that move time on. (Read from the environment itself,
# not the settings' .env file, so a live council's file cannot switch it on unseen.)
ALLOW_FUTURE_NOW = "DRP_ALLOW_FUTURE_NOW"


def future_allowed() -> bool:
    return os.environ.get(ALLOW_FUTURE_NOW, "").strip() == "1"


def clock_for(now: str | None, tz: ZoneInfo) -> Clock:
    """The real clock, or a fixed one at `now` (--now), which may not be later than the real
    clock unless DRP_ALLOW_FUTURE_NOW=1."""
    if not now:
        return Clock()
    instant = parse_instant(now, tz)
    not_ahead(instant, tz, f"--now {now.strip()} is", "leave --now out to act now, or give a"
              " past instant", field="now")
    return FixedClock(instant)


def not_ahead(instant: datetime, tz: ZoneInfo, said: str, advice: str,
              field: str | None = None) -> None:
    """The one rule for time travel: nothing may be dated later than the real clock unless
    DRP_ALLOW_FUTURE_NOW=1 (tests, simulations, demos, training copies). `said` names what
    the person gave ("--now X is"), `advice` what to do instead."""
    real = Clock().now()
    if instant > real and not future_allowed():
        raise BadValue(
            f"{said} later than the real clock ({real.astimezone(tz):%Y-%m-%dT%H:%M}); {advice}"
            f" (time travel into the future needs {ALLOW_FUTURE_NOW}=1: tests, simulations,"
            " demos and training copies only)", field=field)


# A flow runs as of the instant it began (one instant for every row it writes) and people go on
# acting meanwhile. An event at most this long after the run's instant is someone acting while
# it ran (the timescale run is hourly): not due yet for that run, the next takes it up. Anything
# later is a clock out of order (drp run with --now ahead, or a backfill behind) and is reported.
RUN_WINDOW = timedelta(hours=1)


def during_run(event_at: datetime, run_at: datetime) -> bool:
    """Whether an event after a run's instant is someone acting while that run ran."""
    return run_at < event_at <= run_at + RUN_WINDOW


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()
