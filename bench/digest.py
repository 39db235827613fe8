"""The fortnightly digest for 150 services with 100 open alerts each (BENCH_SCALE=small: 15),
against rendering the same digests' templates alone, in the same run: every render the digest
asked for, replayed with the same contexts (templates compiled before either is timed; the
digest's writes flushed, then rolled back; the two taken in turns, best of five each, each from
a collected heap). Bound: the digest within 1.5x its templates on
each database; exits 1 naming the bound missed."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from common import (  # type: ignore[import-not-found]
    SMALL,
    backends,
    database,
    judge,
    record,
)
from sqlalchemy import insert, text
from sqlalchemy.engine import Engine

from drp import db
from drp.calendar import WorkingCalendar
from drp.digest import queue_digest
from drp.models import Alert, Child, Event, Person, PersonRole, Service, Team
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy
from notifications.render import Rendered, Renderer

LONDON = ZoneInfo("Europe/London")
T = TypeVar("T")


WITHIN = 1.5  # the digest at most this many times its templates alone (issue 19, point 4)
REPEAT = 5  # the best of five of each, each digest from the same state
BOUNDS = f"the digest within {WITHIN}x its templates alone, on each database"


def main() -> None:
    failed: list[str] = []
    for kind in backends():
        measure(kind, failed)
    judge("digest", BOUNDS, failed)


def measure(kind: str, failed: list[str]) -> None:
    services, per = (15, 100) if SMALL else (150, 100)
    cal = WorkingCalendar()
    taxonomy = load_taxonomy(CONFIG_DIR / "themes.yaml")
    now = datetime(2027, 3, 8, 8, 0, tzinfo=UTC)
    with database(kind) as (engine, protocol):
        populate(engine, services, per)
        renderer = Recording()
        renderer.render("digest", {  # templates compiled before either is timed
            "council": "C", "scope": "S", "fortnight": now.date(), "today": now.date(),
            "rows": [], "totals": None, "sections": None, "overdue": 0, "link": "x",
            "link_text": "x", "recipient": {"name": "n", "part": "p"}})

        def run() -> int:
            renderer.calls.clear()
            with db.transaction(engine) as s:
                report = queue_digest(s, protocol=protocol, calendar=cal, taxonomy=taxonomy,
                                      renderer=renderer, base_url="https://drp.example",
                                      tz=LONDON, now=now)
                s.flush()  # every write made, then undone: measure again from the same state
                s.rollback()
            return len(report.sent_to)

        def templates_only() -> int:
            """The same digests' templates alone: every render the digest asked for (in its
            last run), with the same contexts, and nothing else (no query, no row, no
            outbox)."""
            for message, context in calls:
                Renderer.render(renderer, message, context)
            return len(calls)

        # Taken in turns, so that both meet the same load on a shared machine.
        digest_s = templates_s = float("inf")
        for _ in range(REPEAT):
            took, sent = timed(run)
            digest_s = min(digest_s, took)
            calls = list(renderer.calls)
            templates_s = min(templates_s, timed(templates_only)[0])
    print(f"digest on {kind}: {services} services x {per} open alerts, {sent} digests"
          f" ({len(calls)} rendered)")
    label = f"{kind}_{services}"
    ratio = digest_s / templates_s
    record({
        f"digest_{label}_services_s": round(digest_s, 3),
        f"digest_{label}_templates_only_s": round(templates_s, 3),
        f"digest_{label}_over_templates_only": round(ratio, 2),
    })
    # Each head of service's, the test organisation's three, an IRO manager's:
    if sent != services + 4:
        failed.append(f"{kind}: {sent} digests queued, not {services + 4}")
    if ratio > WITHIN:
        failed.append(f"{kind}: the digest took {digest_s:.2f} s, {ratio:.2f}x its templates"
                      f" alone ({templates_s:.2f} s; at most {WITHIN}x)")


def populate(engine: Engine, services: int, per: int) -> None:
    """`services` services, each with its head of service, a team, a child and `per` open
    alerts (each with its raised event)."""
    with engine.begin() as conn:
        iro = conn.execute(text("SELECT id FROM person WHERE username='iro.ada'")).scalar_one()
        for s in range(services):
            hos = conn.execute(insert(Person).values(
                username=f"hos.{s}", name=f"Head {s}", email=f"hos{s}@example.org",
                active=True).returning(Person.id)).scalar_one()
            conn.execute(insert(PersonRole).values(person_id=hos, role="head_of_service"))
            sid = conn.execute(insert(Service).values(
                key=f"svc-{s}", name=f"Service {s}", head_of_service_id=hos,
                active=True).returning(Service.id)).scalar_one()
            tid = conn.execute(insert(Team).values(
                key=f"team-{s}", name=f"Team {s}", service_id=sid,
                active=True).returning(Team.id)).scalar_one()
            cid = conn.execute(insert(Child).values(
                ref=f"S{s}", team_id=tid, iro_id=iro, active=True).returning(Child.id)
            ).scalar_one()
            raised = datetime(2027, 2, 22, 10, 0, tzinfo=UTC)
            ids = conn.execute(insert(Alert).returning(Alert.id), [{
                "child_id": cid, "iro_id": iro, "status": "open", "stage": "stage1",
                "summary": f"Alert {s}/{i}", "raised_at": raised,
                "stage_entered_at": raised, "stage_due": date(2027, 3, 1 + i % 10),
                "resolution_due": date(2027, 3, 22), "on_hold": False, "last_seq": 1,
                "version": 1, "theme": "funding", "theme_confirmed": True}
                for i in range(per)]).scalars().all()
            conn.execute(insert(Event), [{
                "alert_id": a, "seq": 1, "at": raised, "actor": "iro.ada",
                "kind": "raised", "to_stage": "stage1"} for a in ids])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))  # as a live database's statistics would be


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """The seconds `fn` takes, started from a collected heap (untimed): a full collection owed
    to the set-up, or to the other measurement, is neither's."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


class Recording(Renderer):
    """The digest's renderer, keeping what it was asked to render (for the baseline)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def render(self, message: str, context: dict[str, Any]) -> Rendered:
        self.calls.append((message, context))
        return super().render(message, context)


if __name__ == "__main__":
    main()
