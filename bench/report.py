"""The dispute report over a year of 1,000 alerts (BENCH_SCALE=small: 300), with the previous
period and the same dates a year earlier beside it, against reading the same rows alone (the
alerts and their events), in the same run. Bound (issue 17): the report is built in under 2
seconds on SQLite; exits 1 if not."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from common import SMALL, backends, database, judge, record, timed  # type: ignore[import-not-found]
from sqlalchemy import insert, text
from sqlmodel import Session

from drp.calendar import WorkingCalendar
from drp.models import Alert, Child, Event, Service, Team
from drp.reporting import render
from drp.reporting.figures import report
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy

LONDON = ZoneInfo("Europe/London")
START, END = date(2027, 4, 1), date(2028, 3, 31)
BOUND_S = 2.0
THEMES = ["accountability_record_keeping", "permanence_planning", "leaving_care",
          "safeguarding", "holistic_rights_needs", "funding"]


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=LONDON).astimezone(UTC)


def year_of_alerts(engine: object, total: int, cal: WorkingCalendar) -> int:
    """`total` alerts raised through the year across 20 teams, each with the events the
    service layer writes (clocks in their data): most resolved informally, some escalated,
    answered and resolved at stage 1 or 2, a few held and resumed, some open at the end."""
    rng = random.Random(17)
    events = 0
    with engine.begin() as conn:  # type: ignore[attr-defined]
        iros = [conn.execute(text(f"SELECT id FROM person WHERE username='{u}'")).scalar_one()
                for u in ("iro.ada", "iro.ben")]
        children = []
        for s in range(10):
            sid = conn.execute(insert(Service).values(key=f"svc-{s}", name=f"Service {s}",
                                                      active=True).returning(Service.id)
                               ).scalar_one()
            for t in range(2):
                tid = conn.execute(insert(Team).values(
                    key=f"team-{s}-{t}", name=f"Team {s}.{t}", service_id=sid, active=True
                ).returning(Team.id)).scalar_one()
                for c in range(25):
                    cid = conn.execute(insert(Child).values(
                        ref=f"B{s}{t}{c:02d}", team_id=tid, iro_id=iros[c % 2], active=True
                    ).returning(Child.id)).scalar_one()
                    children.append((cid, f"team-{s}-{t}", iros[c % 2]))
        names = {iros[0]: "iro.ada", iros[1]: "iro.ben"}
        for i in range(total):
            cid, team, iro = children[rng.randrange(len(children))]
            raised = START + timedelta(days=rng.randrange(360))
            raised = cal.next_working_day(raised)
            informal_due = cal.add(raised, 5)
            plan: list[tuple[date, str, str | None, str | None, dict[str, object]]] = [
                (raised, "raised", None, "informal", {"stage_due": informal_due.isoformat(),
                                                     "resolution_due": None})]
            stage, day = "informal", raised
            resolution_due: date | None = None
            stage_due = informal_due
            if rng.random() < 0.3:
                day = cal.add(day, rng.randint(3, 8))
                stage, stage_due = "stage1", cal.add(day, 5)
                resolution_due = cal.add(day, 20)
                plan.append((day, "escalated", "informal", stage, {}))
                day = cal.add(day, rng.randint(1, 6))
                plan.append((day, "responded", stage, stage, {}))
                if rng.random() < 0.2:
                    day = cal.add(day, 2)
                    plan.append((day, "escalated", stage, "stage2", {}))
                    stage, stage_due = "stage2", cal.add(day, 5)
            if rng.random() < 0.05:
                held = rng.randint(2, 10)
                plan.append((cal.add(day, 1), "held", stage, stage, {"on_hold": True}))
                day = cal.add(day, 1 + held)
                stage_due = cal.add(stage_due, held)
                resolution_due = cal.add(resolution_due, held) if resolution_due else None
                plan.append((day, "resumed", stage, stage, {"held_working_days": held}))
            status = "open"
            if rng.random() < 0.9:
                day = cal.add(day, rng.randint(1, 12))
                plan.append((day, "resolved", stage, "resolved", {}))
                status = "resolved"
            aid = conn.execute(insert(Alert).values(
                child_id=cid, iro_id=iro, status=status, stage=stage,
                summary=f"Alert {i}", raised_at=at(raised), stage_entered_at=at(raised),
                stage_due=stage_due, resolution_due=resolution_due,
                formal_since=None if resolution_due is None else raised, on_hold=False,
                last_seq=len(plan), version=1, theme=THEMES[i % len(THEMES)],
                theme_confirmed=True).returning(Alert.id)).scalar_one()
            rows = []
            for seq, (when, kind, frm, to, data) in enumerate(plan, start=1):
                rows.append({"alert_id": aid, "seq": seq, "at": at(when, 10 + seq % 6),
                             "actor": names[iro], "kind": kind, "from_stage": frm,
                             "to_stage": to, "team": team, "iro": names[iro],
                             "data": {"stage_due": stage_due.isoformat(),
                                      "resolution_due": resolution_due.isoformat()
                                      if resolution_due else None,
                                      "on_hold": False, **data}})
            conn.execute(insert(Event), rows)
            events += len(rows)
    return events


def measure(kind: str) -> list[str]:
    total = 300 if SMALL else 1000
    cal = WorkingCalendar()
    taxonomy = load_taxonomy(CONFIG_DIR / "themes.yaml")
    with database(kind) as (engine, protocol):
        events = year_of_alerts(engine, total, cal)

        def build() -> dict[str, object]:
            with Session(engine) as s:
                return report(s, protocol, cal, taxonomy, LONDON, START, END, compare="both")

        def bare() -> int:
            with engine.connect() as conn:
                a = conn.execute(text("SELECT * FROM alert")).all()
                e = conn.execute(text("SELECT * FROM event ORDER BY alert_id, seq")).all()
            return len(a) + len(e)

        report_s, r = timed(build, repeat=3)
        bare_s, _ = timed(bare, repeat=3)
        md_s, _ = timed(lambda: render.to_md(r), repeat=3)
        html_s, _ = timed(lambda: render.to_html(r, "Bench"), repeat=1)
        assert r["raised"] == total, r["raised"]
        record({f"report_{kind}_alerts": total, f"report_{kind}_events": events,
                f"report_{kind}_s": round(report_s, 3),
                f"report_{kind}_over_bare": round(report_s / bare_s, 1),
                f"report_{kind}_md_s": round(md_s, 3),
                f"report_{kind}_html_with_charts_s": round(html_s, 3)})
        if kind == "sqlite" and report_s >= BOUND_S:
            return [f"report over {total} alerts on SQLite took {report_s:.2f} s"
                    f" (bound {BOUND_S} s)"]
    return []


def main() -> None:
    failed: list[str] = []
    for kind in backends():
        failed += measure(kind)
    judge("report", f"a year of 1,000 alerts reported in under {BOUND_S} s on SQLite", failed)


if __name__ == "__main__":
    main()
