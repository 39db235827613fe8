"""Categorise alerts that have no confirmed theme yet."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from drp import audit, db
from drp.categorise import categorise as categorise_alerts

from .common import as_of, origin


@task(cache_policy=NO_CACHE)
def categorise(now: str) -> dict[str, Any]:
    rt, clock, _ = as_of(now)
    db.require_schema(rt.engine)
    with audit.coming_from(origin("drp-themes")):
        return categorise_alerts(rt, clock)


@flow(name="drp-themes", description="Suggest themes for alerts that have none.")
def themes_flow(now: str | None = None) -> dict[str, Any]:
    _, _, instant = as_of(now)
    report = categorise(instant.isoformat())
    create_markdown_artifact(key="drp-themes", markdown=report.pop("markdown"),
                             description=f"drp themes as of {instant.isoformat()}")
    return report
