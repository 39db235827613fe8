"""The fortnightly outstanding-alerts digest to heads of service, service managers and IRO
managers. Sent once per fortnight, whatever the scheduler does: on the first run on or after
the fortnight's digest day."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from drp import db, digest, mail
from drp.clock import local_date

from .common import as_of, deliver_mail


@task(cache_policy=NO_CACHE)
def queue_digest(now: str, only_on_digest_day: bool) -> dict[str, Any]:
    rt, _, instant = as_of(now)
    db.require_schema(rt.engine)
    s = rt.settings
    today = local_date(instant, s.tz)
    why_not = None
    if only_on_digest_day:
        # The schedule looks every weekday: the first run on or after the fortnight's digest
        # day sends it (a late start still does), once; the others say why not.
        with Session(rt.engine) as session:
            why_not = digest.not_today(session, rt.calendar, today, s.digest_anchor)
    if why_not is not None:
        report = digest.DigestReport(fortnight=digest.fortnight_start(today, s.digest_anchor))
        report.skipped = why_not
    else:
        def queue() -> digest.DigestReport:
            with db.transaction(rt.engine) as session:
                return digest.queue_digest(
                    session, protocol=rt.protocol, calendar=rt.calendar, taxonomy=rt.taxonomy,
                    renderer=mail.renderer(s), base_url=s.base_url, tz=s.tz, now=instant,
                    empty_note=s.digest_empty_note, anchor=s.digest_anchor,
                )

        try:
            report = queue()
        except IntegrityError:
            # A simultaneous run queued the same fortnight's digests (or recorded its run)
            # first: look again, and find them already sent.
            report = queue()
    return {"report": report.as_dict(), "markdown": report.markdown()}


@flow(name="drp-digest", description="Fortnightly digest of outstanding alerts.")
def digest_flow(now: str | None = None, only_on_digest_day: bool = False) -> dict[str, Any]:
    _, _, instant = as_of(now)
    result = queue_digest(instant.isoformat(), only_on_digest_day)
    report = result["report"]
    report["mail"] = deliver_mail(instant.isoformat())
    create_markdown_artifact(key="drp-digest",
                             markdown=result["markdown"] + f"\nMail: {report['mail']}\n",
                             description=f"drp digest as of {instant.isoformat()}")
    return dict(report)
