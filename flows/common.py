"""What every flow needs: the runtime and the instant it runs as of."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from drp import mail
from drp.audit import Origin
from drp.clock import Clock, FixedClock, clock_for
from drp.runtime import Runtime, runtime


def as_of(now: str | None) -> tuple[Runtime, Clock, datetime]:
    """The runtime, and a fixed clock at `now` (ISO 8601, local unless an offset) or at the
    real time the run starts, so every task of one run agrees on "now"."""
    rt = runtime()
    instant = clock_for(now, rt.settings.tz).now()  # a --now ahead of the real clock refused
    return rt, FixedClock(instant), instant


def origin(flow: str) -> Origin:
    """A flow's origin (channel `flow`), on every row its run writes."""
    return Origin.flow(via=flow)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60])
def deliver_mail(now: str) -> str:
    """Send what the run queued (and anything else due); what cannot go waits in the outbox."""
    rt, clock, _ = as_of(now)
    return mail.send(rt.engine, rt.settings, clock).summary()
