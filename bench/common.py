"""Shared by the benchmarks: a database with an organisation, bulk-loaded alerts, timing, and
bench/results.json (every figure named, merged run by run)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine

from drp import db
from drp.calendar import WorkingCalendar
from drp.models import Alert, Child, Event
from drp.org import load_org
from drp.protocol import Protocol, load_protocol
from drp.settings import CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
SMALL = os.environ.get("BENCH_SCALE", "").lower() == "small"


def record(figures: dict[str, Any]) -> None:
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(figures)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    for key, value in figures.items():
        print(f"  {key}: {value}")


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """The best of `repeat` runs, in seconds."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


@contextmanager
def database(url: str | None = None) -> Iterator[tuple[Engine, Protocol]]:
    protocol = load_protocol(CONFIG_DIR / "protocol.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(url or f"sqlite:///{tmp}/bench.db")
        db.upgrade(engine)
        with db.transaction(engine) as s:
            load_org(s, ROOT / "tests" / "data" / "org.yaml", protocol)
        yield engine, protocol
        engine.dispose()


def bulk_alerts(engine: Engine, total: int, due: int, today: date,
                calendar: WorkingCalendar) -> None:
    """`total` open alerts at stage 1; `due` of them past their stage due date."""
    with engine.begin() as conn:
        children = conn.execute(text("SELECT id, iro_id FROM child ORDER BY id")).all()
        raised = datetime.combine(calendar.add(today, -8), datetime.min.time(), tzinfo=UTC)
        past, future = calendar.add(today, -2), calendar.add(today, 4)
        rows = []
        for i in range(total):
            child_id, iro_id = children[i % len(children)]
            rows.append({
                "child_id": child_id, "iro_id": iro_id, "status": "open", "stage": "stage1",
                "summary": f"Alert {i}", "raised_at": raised, "stage_entered_at": raised,
                "stage_due": past if i % (total // due) == 0 and i // (total // due) < due
                else future,
                "resolution_due": calendar.add(today, 12), "on_hold": False, "last_seq": 1,
                "version": 1,
            })
        for start in range(0, total, 20000):
            conn.execute(insert(Alert), rows[start:start + 20000])
        ids = [r[0] for r in conn.execute(text("SELECT id FROM alert ORDER BY id"))]
        for start in range(0, len(ids), 20000):
            conn.execute(insert(Event), [
                {"alert_id": a, "seq": 1, "at": raised, "actor": "iro.ada", "kind": "raised",
                 "to_stage": "stage1"} for a in ids[start:start + 20000]])
    assert Child is not None
