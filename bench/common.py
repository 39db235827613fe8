"""Shared by the benchmarks: databases (SQLite, and PostgreSQL where reachable) with an
organisation, bulk-loaded alerts, timing, and bench/results.json (every figure named, merged
run by run)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Engine

from drp import db, due_index
from drp.calendar import WorkingCalendar
from drp.ladder.protocol import Protocol, load_protocol
from drp.models import Alert, Event
from drp.org import load_org
from drp.settings import CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent
SMALL = os.environ.get("BENCH_SCALE", "").lower() == "small"
# A quick run writes beside the full figures, never over them.
RESULTS = ROOT / "bench" / ("results-small.json" if SMALL else "results.json")
PG_URL = os.environ.get("DRP_BENCH_POSTGRES_URL") or os.environ.get("DRP_TEST_POSTGRES_URL")
ALERT = Alert.__table__  # type: ignore[attr-defined]
EVENT = Event.__table__  # type: ignore[attr-defined]


def record(figures: dict[str, Any]) -> None:
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(figures)
    current["_machine"] = {
        "cores": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "scale": "small" if SMALL else "full",
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    for key, value in figures.items():
        print(f"  {key}: {value}", flush=True)


def judge(name: str, bounds: str, failed: list[str]) -> None:
    """Say whether the benchmark `name` met its bounds, record it (`<name>_bounds_met`), and
    exit 1 naming each one missed."""
    print(f"{name} bounds ({bounds}): " + ("met" if not failed else "NOT MET"))
    for line in failed:
        print(f"  {line}")
    record({f"{name}_bounds_met": not failed})
    if failed:
        raise SystemExit(1)


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """The best of `repeat` runs, in seconds."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def backends() -> list[str]:
    """sqlite always; postgres where DRP_BENCH_POSTGRES_URL (or DRP_TEST_POSTGRES_URL) names
    a server that answers."""
    found = ["sqlite"]
    if not PG_URL:
        print("PostgreSQL: DRP_BENCH_POSTGRES_URL is not set, so only SQLite is measured")
        return found
    try:
        probe = create_engine(PG_URL)
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
        probe.dispose()
        found.append("postgres")
    except Exception as exc:
        print(f"PostgreSQL at DRP_BENCH_POSTGRES_URL does not answer ({type(exc).__name__}),"
              " so only SQLite is measured")
    return found


@contextmanager
def database_url(kind: str, tmp: str) -> Iterator[str]:
    """A fresh database of that kind: a SQLite file in `tmp`, or a PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/bench.db"
        return
    assert PG_URL
    with db.temporary_schema(PG_URL, "bench_") as url:
        yield url


@contextmanager
def database(kind: str = "sqlite") -> Iterator[tuple[Engine, Protocol]]:
    """A fresh database of that kind, migrated, with the test organisation loaded."""
    protocol = load_protocol(CONFIG_DIR / "protocol.yaml")
    with tempfile.TemporaryDirectory() as tmp, database_url(kind, tmp) as url:
        engine = db.make_engine(url)
        db.upgrade(engine)
        with db.transaction(engine) as s:
            load_org(s, ROOT / "tests" / "data" / "org.yaml", protocol)
        try:
            yield engine, protocol
        finally:
            engine.dispose()


def bulk_alerts(engine: Engine, total: int, due: int, today: date, calendar: WorkingCalendar,
                *, spare_sets: int = 0) -> None:
    """`total` alerts, each with its `raised` event, as a council's database holds them after
    years: a quarter open (at stage 1, due in four working days), the rest resolved. `due` of
    them are open and overdue at stage 1; `spare_sets` more sets of `due` are overdue too but
    on hold until 2099 (release_set() lets the next one go, for a repeated measurement)."""
    with engine.begin() as conn:
        children = conn.execute(text("SELECT id, iro_id FROM child ORDER BY id")).all()
    raised = datetime.combine(calendar.add(today, -8), datetime.min.time(), tzinfo=UTC)
    closed = datetime.combine(calendar.add(today, -3), datetime.min.time(), tzinfo=UTC)
    past, future = calendar.add(today, -2), calendar.add(today, 4)
    special = due * (1 + spare_sets)
    attention = _attention(today, calendar)
    step = max(total // special, 1)
    batch = 50_000
    for start in range(0, total, batch):
        rows = []
        for i in range(start, min(start + batch, total)):
            child_id, iro_id = children[i % len(children)]
            row = {
                "child_id": child_id, "iro_id": iro_id, "status": "open", "stage": "stage1",
                "summary": f"Alert {i}", "raised_at": raised, "stage_entered_at": raised,
                "stage_due": future, "resolution_due": calendar.add(today, 12),
                "on_hold": False, "last_seq": 1, "version": 1, "theme_confirmed": False,
                "hold_until": None, "held_since": None, "closed_at": None,
                # Acknowledged when raised: else every open alert is due its reminder to
                # acknowledge, and the first run sends a quarter of the table one.
                "acknowledged_at": raised,
            }
            if i % step == 0 and i // step < special:
                row["stage_due"] = past
                if i // step >= due:  # a spare set: held until released
                    row.update(on_hold=True, hold_until=date(2099, 1, 1),
                               held_since=calendar.add(today, -3))
            elif i % 4:
                row.update(status="resolved", stage_due=past, closed_at=closed)
            row["attention_on"] = attention(row)
            rows.append(row)
        with engine.begin() as conn:
            first = conn.execute(text("SELECT coalesce(max(id), 0) FROM alert")).scalar_one()
            conn.execute(insert(ALERT), rows)
            conn.execute(insert(EVENT), [
                {"alert_id": first + 1 + k, "seq": 1, "at": raised, "actor": "iro.ada",
                 "kind": "raised", "to_stage": "stage1", "data": None}
                for k in range(len(rows))])
    with engine.begin() as conn:
        # The rules the rows' days were worked out under, as the run records them: else the
        # first run finds none recorded and looks at every open alert again (at 1M alerts,
        # 9 s and 450 MB of log, which the best of three hid).
        conn.execute(text("UPDATE council SET attention_basis = :rules WHERE id = 1"),
                     {"rules": due_index.basis(load_protocol(CONFIG_DIR / "protocol.yaml"),
                                               calendar)})
        conn.execute(text("ANALYZE"))  # as a live database's statistics would be


def release_set(engine: Engine, due: int) -> int:
    """Take the next spare set off hold (untimed set-up between repeated measurements)."""
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text(
            "SELECT id FROM alert WHERE on_hold = true AND hold_until = :h ORDER BY id"
            " LIMIT :n"), {"h": date(2099, 1, 1), "n": due})]
        conn.execute(ALERT.update().where(ALERT.c.id.in_(ids)).values(
            on_hold=False, hold_until=None, held_since=None, attention_on=date(1970, 1, 1)))
    return len(ids)


def _attention(today: date, calendar: WorkingCalendar) -> Callable[[dict[str, Any]], Any]:
    """The due index's day for a bulk row, as the service layer's writers would keep it
    (drp.ladder.attention), computed once for each kind of row."""
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from drp.ladder.attention import next_attention

    protocol = load_protocol(CONFIG_DIR / "protocol.yaml")
    known: dict[tuple[Any, ...], Any] = {}
    names = ("status", "on_hold", "hold_until", "stage_due", "stage_entered_at",
             "acknowledged_at")

    def day(row: dict[str, Any]) -> Any:
        key = tuple(row[n] for n in names)
        if key not in known:
            alert = SimpleNamespace(**row, stage_responded_at=None,
                                    reminded_for=None, ack_reminded_for=None,
                                    overdue_notified_for=None)
            known[key] = next_attention(protocol, calendar, ZoneInfo("Europe/London"), alert,
                                        from_day=today)
        return known[key]

    return day
