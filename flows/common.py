"""What every flow needs: the runtime and the instant it runs as of."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from drp import mail
from drp.clock import Clock, FixedClock, parse_instant
from drp.runtime import Runtime, runtime


def as_of(now: str | None) -> tuple[Runtime, Clock, datetime]:
    """The runtime, and a fixed clock at `now` (ISO 8601, local unless an offset) or at the
    real time the run starts, so every task of one run agrees on "now"."""
    rt = runtime()
    instant = parse_instant(now, rt.settings.tz) if now else Clock().now()
    return rt, FixedClock(instant), instant


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60])
def deliver_mail(now: str) -> str:
    """Send what the run queued (and anything else due); what cannot go waits in the outbox."""
    rt, clock, _ = as_of(now)
    return mail.send(rt.engine, rt.settings, clock).summary()
