"""Serve every flow on its schedule (the embedded default), or deploy them to a work pool with
prefect.yaml (production, with a Prefect server and workers of the council's own).

The local Prefect server that Prefect starts on its own runs no scheduler, so `drp flows
serve` keeps the schedules itself: it asks Prefect's own cron schedules for each flow's next
run and runs the flow then, in this process (each run is still a Prefect flow run, with its
tasks, retries and artifact). Idempotency, not the scheduler, guarantees once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

TZ = "Europe/London"
# Working-day mornings and hourly through the working day (the flow does nothing on bank
# holidays: a due date's consequences land on the next working day).
TIMESCALES_CRON = "0 7-18 * * 1-5"
# Every weekday at 08:00; the flow sends on the first run on or after the fortnight's digest
# day (its Monday, or the next working day when that Monday is a bank holiday), once
# (drp.digest.not_today): workers down on the Monday still send it on the Tuesday.
DIGEST_CRON = "0 8 * * 1-5"
THEMES_CRON = "30 1 * * *"
# Nightly, after the themes: what is past its retention date goes (drp.retention); a run that
# stopped halfway is finished by the next night's.
RETENTION_CRON = "30 2 * * *"

log = logging.getLogger("drp.flows")


def next_run(cron: str, after: datetime) -> datetime:
    """The first time after `after` that `cron` (Europe/London) fires, by Prefect's own
    schedule arithmetic."""
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule

    found: Any = CronSchedule(cron=cron, timezone=TZ).get_dates(
        n=1, start=after + timedelta(seconds=1))
    if asyncio.iscoroutine(found):
        found = asyncio.run(found)
    return datetime.fromtimestamp(found[0].timestamp(), UTC)


@dataclass
class Scheduled:
    name: str
    cron: str
    run: Callable[..., Any]
    parameters: dict[str, Any] = field(default_factory=dict)
    due: datetime | None = None


def schedule() -> list[Scheduled]:
    from .digest import digest_flow
    from .retention import retention_flow
    from .themes import themes_flow
    from .timescales import timescales_flow

    return [
        Scheduled("drp-timescales", TIMESCALES_CRON, timescales_flow),
        Scheduled("drp-digest", DIGEST_CRON, digest_flow, {"only_on_digest_day": True}),
        Scheduled("drp-themes", THEMES_CRON, themes_flow),
        Scheduled("drp-retention", RETENTION_CRON, retention_flow),
    ]


def tick(jobs: list[Scheduled], now: datetime,
         start: Callable[[], str | None] = lambda: None) -> list[str]:
    """Run every job whose time has come, then set its next time; returns the names run.

    A run that did not start (Prefect's API would not answer: `start` says why, or the flow
    call raised before the flow ran) keeps its time, so the next poll tries again instead of
    losing it until the next cron time. A run that started and failed is logged and waits for
    its next time (the flows are safe to rerun: the next run does what this one left)."""
    ran = []
    problem = start() if any(job.due is not None and job.due <= now for job in jobs) else None
    if problem:
        log.error("a flow did not start: %s; trying again at the next poll", problem)
    for job in jobs:
        if job.due is None:
            job.due = next_run(job.cron, now)
            continue
        if job.due > now or problem:
            continue
        try:
            state = _run(job)
        except Exception:  # the flow never ran: its time stands, so the next poll retries
            log.exception("%s did not start; trying again at the next poll", job.name)
            continue
        if getattr(state, "is_completed", lambda: True)() is False:
            log.error("%s ended %s; it runs again at its next time", job.name,
                      getattr(state, "name", state))
        ran.append(job.name)
        job.due = next_run(job.cron, now)
    return ran


def _run(job: Scheduled) -> Any:
    """Run the job; for a Prefect flow, its final state (a flow that ran and failed returns
    a Failed state, so only a run that never started raises)."""
    from prefect import Flow

    if isinstance(job.run, Flow):
        return job.run(**job.parameters, return_state=True)
    return job.run(**job.parameters)


def deployments() -> list[Any]:
    """The same flows and schedules as Prefect deployments (see prefect.yaml)."""
    from prefect.schedules import Cron

    runs: list[Any] = [job.run for job in schedule()]
    return [
        flow.to_deployment(name=job.name, schedules=[Cron(job.cron, timezone=TZ)],
                           parameters=job.parameters or None)
        for flow, job in zip(runs, schedule(), strict=True)
    ]


def serve_all(say: Callable[[str], None] = print,
              clock: Callable[[], datetime] = lambda: datetime.now(UTC),
              poll_seconds: float = 20.0) -> None:
    from zoneinfo import ZoneInfo

    from drp.digest import digest_dates
    from drp.runtime import runtime

    jobs = schedule()
    now = clock()
    tick(jobs, now)
    local = ZoneInfo(TZ)
    rt = runtime()
    for job in jobs:
        assert job.due is not None
        line = f"{job.name}: next run {job.due.astimezone(local):%a %-d %b %Y %H:%M} ({TZ})"
        if job.parameters.get("only_on_digest_day"):
            day = digest_dates(now.astimezone(rt.settings.tz).date(), 1, rt.calendar,
                               rt.settings.digest_anchor)[0]
            line += (f"; it looks every weekday and sends on the fortnight's digest day,"
                     f" next {day:%a %-d %b %Y}")
        say(line)
    from . import start_api

    while True:
        for name in tick(jobs, clock(), start_api):
            say(f"{name} ran at {clock().astimezone(local):%a %-d %b %Y %H:%M} ({TZ})")
        time.sleep(poll_seconds)
