"""Retention: remove what is past its date (drp.retention), nightly. Each batch is its own
transaction, so a run that fails or is killed halfway is finished by the next one."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from drp import audit, db, retention

from .common import as_of, origin


@task(cache_policy=NO_CACHE)
def remove_past_date(now: str, dry_run: bool) -> dict[str, Any]:
    rt, _, instant = as_of(now)
    db.require_schema(rt.engine)
    with audit.coming_from(origin("drp-retention")):
        report = retention.run(rt.engine, retention.Policy.of(rt.settings), now=instant,
                               tz=rt.settings.tz, dry_run=dry_run)
    return {**report.as_dict(), "markdown": "\n".join(report.lines())}


@flow(name="drp-retention", description="Remove what is past its retention date.")
def retention_flow(now: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    _, _, instant = as_of(now)
    report = remove_past_date(instant.isoformat(), dry_run)
    create_markdown_artifact(key="drp-retention", markdown=report.pop("markdown"),
                             description=f"drp retention as of {instant.isoformat()}")
    return report
