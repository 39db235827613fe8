"""Serve every flow on its schedule with Prefect's `serve` (the embedded default), or deploy
them to a work pool with prefect.yaml (production)."""

from __future__ import annotations

from typing import Any

from prefect.schedules import Cron

from .digest import digest_flow
from .themes import themes_flow
from .timescales import timescales_flow

TZ = "Europe/London"
# Working-day mornings and hourly through the working day (the flow does nothing on bank
# holidays: a due date's consequences land on the next working day).
TIMESCALES_CRON = "0 7-18 * * 1-5"
# Every weekday at 08:00; the flow sends only on the fortnight's digest day (its Monday, or the
# next working day when that Monday is a bank holiday), once.
DIGEST_CRON = "0 8 * * 1-5"
THEMES_CRON = "30 1 * * *"


def deployments() -> list[Any]:
    return [
        timescales_flow.to_deployment(
            name="drp-timescales", schedules=[Cron(TIMESCALES_CRON, timezone=TZ)]),
        digest_flow.to_deployment(
            name="drp-digest", schedules=[Cron(DIGEST_CRON, timezone=TZ)],
            parameters={"only_on_digest_day": True}),
        themes_flow.to_deployment(
            name="drp-themes", schedules=[Cron(THEMES_CRON, timezone=TZ)]),
    ]


def serve_all() -> None:
    from prefect import serve

    serve(*deployments())
