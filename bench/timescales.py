"""The timescale run against the bare SQL that selects the due set, in the same process.

100,000 alerts, 5,000 of them overdue at stage 1 (BENCH_SCALE=small: 10,000 and 500): one run
escalates the 5,000 through the service layer (events, outbox rows, e-mails rendered) with a
few set-based queries to find them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import Session

from drp import timescales
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock
from drp.notify import Notifier
from notifications.render import Renderer

from common import SMALL, bulk_alerts, database, record, timed  # type: ignore[import-not-found]

LONDON = ZoneInfo("Europe/London")
TODAY = date(2027, 3, 9)


def main() -> None:
    total, due = (10_000, 500) if SMALL else (100_000, 5_000)
    cal = WorkingCalendar()
    with database() as (engine, protocol):
        bulk_alerts(engine, total, due, TODAY, cal)
        bare_sql = text("SELECT id FROM alert WHERE status = 'open' AND on_hold = false"
                        " AND stage_responded_at IS NULL AND stage_due < :today")

        def bare() -> int:
            with engine.connect() as conn:
                return len(conn.execute(bare_sql, {"today": TODAY}).all())

        bare_s, n = timed(bare, repeat=5)
        assert n == due, (n, due)
        instant = datetime(2027, 3, 9, 8, 0, tzinfo=UTC)
        notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")

        def make(session: Session) -> AlertService:
            return AlertService(session, protocol=protocol, calendar=cal,
                                clock=FixedClock(instant), tz=LONDON, notifier=notifier)

        run_s, report = timed(lambda: timescales.run(engine, make, protocol, cal, TODAY))
        assert len(report.escalated) == due, report.counts()
        rerun_s, again = timed(lambda: timescales.run(engine, make, protocol, cal, TODAY))
        assert again.counts()["escalated"] == 0
    label = "10k" if SMALL else "100k"
    print(f"timescales: {total} alerts, {due} due")
    record({
        f"timescales_{label}_bare_select_s": round(bare_s, 4),
        f"timescales_{label}_run_s": round(run_s, 3),
        f"timescales_{label}_rerun_s": round(rerun_s, 3),
        f"timescales_{label}_run_over_bare_select": round(run_s / bare_s, 1),
        f"timescales_{label}_per_due_alert_ms": round(run_s / due * 1000, 2),
    })


if __name__ == "__main__":
    main()
