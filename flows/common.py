"""What every flow needs: the runtime and the instant it runs as of."""

from __future__ import annotations

from datetime import datetime

from drp.clock import Clock, FixedClock, parse_instant
from drp.runtime import Runtime, runtime


def as_of(now: str | None) -> tuple[Runtime, Clock, datetime]:
    """The runtime, and a fixed clock at `now` (ISO 8601, local unless an offset) or at the
    real time the run starts, so every task of one run agrees on "now"."""
    rt = runtime()
    instant = parse_instant(now, rt.settings.tz) if now else Clock().now()
    return rt, FixedClock(instant), instant
