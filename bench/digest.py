"""The fortnightly digest for 150 services with 100 open alerts each (BENCH_SCALE=small: 15),
against rendering the same digests' templates alone, in the same run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from common import SMALL, backends, database, record, timed  # type: ignore[import-not-found]
from sqlalchemy import insert, text

from drp import db
from drp.calendar import WorkingCalendar
from drp.digest import queue_digest
from drp.models import Alert, Child, Event, Person, PersonRole, Service, Team
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy
from notifications.render import Renderer

LONDON = ZoneInfo("Europe/London")


def main() -> None:
    for kind in backends():
        measure(kind)


def measure(kind: str) -> None:
    services, per = (15, 100) if SMALL else (150, 100)
    cal = WorkingCalendar()
    taxonomy = load_taxonomy(CONFIG_DIR / "themes.yaml")
    now = datetime(2027, 3, 8, 8, 0, tzinfo=UTC)
    with database(kind) as (engine, protocol):
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
        renderer = Renderer()

        def run() -> int:
            with db.transaction(engine) as s:
                report = queue_digest(s, protocol=protocol, calendar=cal, taxonomy=taxonomy,
                                      renderer=renderer, base_url="https://drp.example",
                                      tz=LONDON, now=now)
                s.rollback()  # measure again from the same state
            return len(report.sent_to)

        digest_s, sent = timed(run)
        rows = [{"id": i, "child": "S1", "team": "Team", "stage_title": "Stage 1",
                 "days_open": 5, "stage_due": date(2027, 3, 1), "overdue": True,
                 "theme": "Funding", "last_kind": "raised", "last_on": date(2027, 2, 22),
                 "referred_on": None,
                 "url": "https://drp.example/alerts/1"} for i in range(per)]
        everything = rows * services

        def templates_only() -> None:
            ctx = {"council": "C", "scope": "S", "fortnight": date(2027, 3, 8),
                   "today": date(2027, 3, 8), "overdue": 1, "totals": None,
                   "link": "x", "link_text": "x", "recipient": {"name": "n", "part": "p"}}
            for _ in range(services):
                renderer.render("digest", {**ctx, "rows": rows})
            renderer.render("digest", {**ctx, "rows": everything,
                                       "totals": {"stage": [], "team": [], "theme": []}})

        templates_s, _ = timed(templates_only)
    print(f"digest on {kind}: {services} services x {per} open alerts, {sent} digests")
    label = f"{kind}_{15 if SMALL else 150}"
    record({
        f"digest_{label}_services_s": round(digest_s, 3),
        f"digest_{label}_templates_only_s": round(templates_s, 3),
        f"digest_{label}_over_templates_only": round(digest_s / templates_s, 2),
    })


if __name__ == "__main__":
    main()
