"""The timescale flow: reminders, reminders to acknowledge, overdue notices, automatic
escalations, the pause points' notices, the Cafcass prompt, holds that have ended and agreed
actions now overdue, for every due alert in one run."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from drp import audit, db, timescales

from .common import as_of, deliver_mail, origin


@task(cache_policy=NO_CACHE)
def apply_timescales(now: str) -> dict[str, Any]:
    """Find the due set with a few queries and act on it through the service layer."""
    rt, clock, instant = as_of(now)
    db.require_schema(rt.engine)
    notifier = rt.notifier()
    calendar = rt.calendar  # bank holidays and closure days, read once for the whole run
    with audit.coming_from(origin("drp-timescales")):
        report = timescales.run(
            rt.engine, lambda session: rt.service(session, clock, notifier, calendar),
            rt.protocol, calendar, instant.astimezone(rt.settings.tz).date(),
        )
    report.problems += sorted(set(notifier.missing))
    return {"report": report.as_dict(), "markdown": report.markdown()}


@flow(name="drp-timescales", description="Enforce the dispute ladder's working-day timescales.")
def timescales_flow(now: str | None = None) -> dict[str, Any]:
    _, _, instant = as_of(now)
    result = apply_timescales(instant.isoformat())
    report = result["report"]
    report["mail"] = deliver_mail(instant.isoformat())
    create_markdown_artifact(
        key="drp-timescales", markdown=result["markdown"] + f"\nMail: {report['mail']}\n",
        description=f"drp timescales as of {instant.isoformat()}",
    )
    return dict(report)
