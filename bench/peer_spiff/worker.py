"""The peer's side of bench/peer_spiff.py: runs inside the peer's own virtual environment
(SpiffWorkflow and psycopg only, no drp), reads its job as JSON from the file named on the
command line and prints its figures as JSON on the last line of its output.

The peer is run as SpiffWorkflow's users run it in production: one row per workflow instance
holding the serializer's JSON, beside an indexed `due_at` column (the earliest pending timer),
so that a timer pass reads only the instances whose timers have come by that index, then for
each one deserializes it, fires its timers (`refresh_timers` and `do_engine_steps`: the
boundary timer on the stage's user task escalates to the next stage, whose entry script sets
the new due date in working days and the notices), serializes it and writes it back, with an
event row and one outbox row per notice, in transactions of CHUNK instances.

Timers are Spiff's own and compare with the real clock, so the peer's database is laid out
around the real today: the due set entered stage 1 eight working days ago (its timer passed
two working days ago), the other open instances entered it yesterday, the rest are completed
(resolved at the informal stage)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

CHUNK = 1000
HELD = "2099-01-01T00:00:00+00:00"  # spare due sets wait here until released

HOLIDAYS: set[date] = set()
CLOCK: list[date] = [date.today()]  # what the entry scripts take as today (set-up moves it)


def is_working(day: date) -> bool:
    return day.weekday() < 5 and day not in HOLIDAYS


def add_working(day: date, n: int) -> date:
    step = 1 if n >= 0 else -1
    while n:
        day += timedelta(days=step)
        if is_working(day):
            n -= step
    return day


def today() -> str:
    return CLOCK[0].isoformat()


def due_after(start: str, days: int) -> str:
    """The timer's instant for a stage entered on `start` with `days` working days: midnight
    (UTC) after the due day, so the stage is overdue from the next day on, as drp's is."""
    due = add_working(date.fromisoformat(start), days)
    return datetime.combine(due + timedelta(days=1), datetime.min.time(), UTC).isoformat()


ENGINE = PythonScriptEngine(environment=TaskDataEnvironment(
    {"today": today, "due_after": due_after}))
SERIALIZER = BpmnWorkflowSerializer()
SPEC: dict[str, Any] = {}  # the process spec's serialized form, stored once (as spiff-arena does)


def dump(wf: BpmnWorkflow) -> str:
    """The serializer's JSON of an instance, less the process spec (22 KB of the 31 an
    instance's JSON holds; stored once in the `spec` table, put back on loading)."""
    SERIALIZER.registry._encoder_mode = True
    try:
        dct = SERIALIZER.to_dict(wf)
    finally:
        SERIALIZER.registry._encoder_mode = False
    dct[SERIALIZER.VERSION_KEY] = SERIALIZER.VERSION
    SPEC.setdefault("ladder", dct.pop("spec"))
    dct.pop("spec", None)
    return json.dumps(dct, cls=SERIALIZER._encoder_cls)


def load(state: str) -> BpmnWorkflow:
    """`SERIALIZER.deserialize_json` with the stored spec put back."""
    dct = json.loads(state, cls=SERIALIZER.json_decoder_cls)
    dct["spec"] = SPEC["ladder"]
    SERIALIZER.migrate(dct)
    wf = SERIALIZER.from_dict(dct)
    wf.script_engine = ENGINE
    return wf


def new_workflow(spec: Any) -> BpmnWorkflow:
    wf = BpmnWorkflow(spec, script_engine=ENGINE)
    wf.do_engine_steps()
    return wf


def complete_stage(wf: BpmnWorkflow, outcome: str) -> None:
    """The responsible person's answer at the current stage (or the IRO's escalation)."""
    task = next(t for t in wf.get_tasks(state=TaskState.READY) if t.task_spec.manual)
    task.data["outcome"] = outcome
    task.run()
    wf.do_engine_steps()


def next_due(wf: BpmnWorkflow) -> str | None:
    """The earliest pending timer (the value of the indexed column)."""
    values = [e.value for e in wf.waiting_events() if e.event_type.startswith("TimeDate")]
    return min(values) if values else None


def stage_of(wf: BpmnWorkflow) -> str | None:
    ready = [t for t in wf.get_tasks(state=TaskState.READY) if t.task_spec.manual]
    return ready[0].task_spec.bpmn_id if ready else None


class _SetUpClock(datetime):
    """Spiff's timers read `datetime.now`: while the templates are made it is the entry day's,
    so no timer has fired (or been judged) when an instance is stored."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.combine(CLOCK[0], datetime.min.time(), UTC).replace(hour=9)


def templates(spec: Any) -> dict[str, tuple[str, str | None, str | None]]:
    """One serialized instance of each kind the database holds: (json, due_at, stage)."""
    from SpiffWorkflow.bpmn.specs.event_definitions import timer

    timer.datetime = _SetUpClock  # type: ignore[misc]
    try:
        return _templates(spec)
    finally:
        timer.datetime = datetime  # type: ignore[misc]


def _templates(spec: Any) -> dict[str, tuple[str, str | None, str | None]]:
    real = date.today()
    out = {}
    CLOCK[0] = add_working(real, -10)  # raised, then escalated to stage 1 eight days ago
    wf = new_workflow(spec)
    CLOCK[0] = add_working(real, -8)
    complete_stage(wf, "escalate")
    assert stage_of(wf) == "stage1" and next_due(wf) is not None
    assert next_due(wf) < datetime.now(UTC).isoformat(), next_due(wf)  # by the real clock
    out["due"] = (dump(wf), next_due(wf), stage_of(wf))
    CLOCK[0] = add_working(real, -2)
    wf = new_workflow(spec)
    CLOCK[0] = add_working(real, -1)
    complete_stage(wf, "escalate")
    assert next_due(wf) > datetime.now(UTC).isoformat()
    out["open"] = (dump(wf), next_due(wf), stage_of(wf))
    wf = new_workflow(spec)
    complete_stage(wf, "resolved")
    assert wf.is_completed()
    out["resolved"] = (dump(wf), None, None)
    CLOCK[0] = real
    return out


class Store:
    """The instances' table on SQLite (sqlite3) or PostgreSQL (psycopg), with its index."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.kind = job["kind"]
        if self.kind == "sqlite":
            import sqlite3

            self.conn: Any = sqlite3.connect(job["path"], isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA cache_size = -65536")
            self.p, key, ts = "?", "INTEGER PRIMARY KEY", "TEXT"
        else:
            import psycopg

            self.conn = psycopg.connect(job["conninfo"], autocommit=True)
            self.p, key, ts = "%s", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", \
                "TIMESTAMPTZ"
        self.ddl([
            f"CREATE TABLE instance (id {key}, stage TEXT, due_at {ts}, version INTEGER"
            " NOT NULL, state TEXT NOT NULL)",
            "CREATE INDEX ix_instance_due_at ON instance (due_at)",
            "CREATE TABLE spec (name TEXT PRIMARY KEY, state TEXT NOT NULL)",
            f"CREATE TABLE event (id {key}, instance_id BIGINT NOT NULL, at {ts} NOT NULL,"
            " kind TEXT NOT NULL, from_stage TEXT, to_stage TEXT)",
            f"CREATE TABLE outbox (id {key}, instance_id BIGINT NOT NULL, role TEXT NOT NULL,"
            f" created_at {ts} NOT NULL, status TEXT NOT NULL, payload TEXT NOT NULL)",
        ])

    def ddl(self, statements: list[str]) -> None:
        for s in statements:
            self.conn.execute(s)

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.p)

    def begin(self) -> Any:
        if self.kind == "sqlite":
            self.conn.execute("BEGIN")
            return self.conn
        return self.conn.transaction()

    def many(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if self.kind == "sqlite":
            self.conn.executemany(self.sql(statement), rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self.sql(statement), rows)

    def rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(self.sql(statement), params).fetchall()

    def commit(self) -> None:
        if self.kind == "sqlite":
            self.conn.execute("COMMIT")

    def load(self, total: int, due: int, spare_sets: int,
             kinds: dict[str, tuple[str, str | None, str | None]]) -> None:
        """`total` instances as drp's bench lays out its alerts: a quarter open, the rest
        resolved; `due` overdue at stage 1 and `spare_sets` more sets held until released."""
        special = due * (1 + spare_sets)
        step = max(total // special, 1)
        self.conn.execute(self.sql("INSERT INTO spec (name, state) VALUES (?, ?)"),
                          ("ladder", json.dumps(SPEC["ladder"])))
        insert = "INSERT INTO instance (stage, due_at, version, state) VALUES (?, ?, 1, ?)"
        batch: list[tuple[Any, ...]] = []
        for i in range(total):
            if i % step == 0 and i // step < special:
                state, at, stage = kinds["due"]
                if i // step >= due:
                    at = HELD
            elif i % 4:
                state, at, stage = kinds["resolved"]
            else:
                state, at, stage = kinds["open"]
            batch.append((stage, at, state))
            if len(batch) == 10_000 or i == total - 1:
                if self.kind == "sqlite":
                    self.begin()
                    self.many(insert, batch)
                    self.commit()
                else:
                    with self.begin():
                        self.many(insert, batch)
                batch = []
        self.conn.execute("ANALYZE")

    def release(self, due: int) -> None:
        ids = [r[0] for r in self.rows(
            "SELECT id FROM instance WHERE due_at = ? ORDER BY id LIMIT ?", (HELD, due))]
        assert len(ids) == due, len(ids)
        past = datetime(2000, 1, 1, tzinfo=UTC).isoformat()
        if self.kind == "sqlite":
            self.begin()
            self.many("UPDATE instance SET due_at = ? WHERE id = ?", [(past, i) for i in ids])
            self.commit()
        else:
            with self.begin():
                self.many("UPDATE instance SET due_at = ? WHERE id = ?",
                          [(past, i) for i in ids])


def escalation_pass(store: Store, split: dict[str, float]) -> int:
    """The peer's timer pass: every instance whose timer has come, by the due index. `split`
    gathers the seconds spent reading, deserializing, in the engine, serializing, writing."""
    now = datetime.now(UTC).isoformat()
    done = 0
    clock = time.perf_counter
    while True:
        t0 = clock()
        if store.kind == "sqlite":
            store.begin()
        else:
            txn = store.begin()
            txn.__enter__()
        rows = store.rows("SELECT id, version, state, stage FROM instance WHERE due_at <= ?"
                          " ORDER BY due_at LIMIT ?", (now, CHUNK))
        split["read"] += clock() - t0
        updates, events, outbox = [], [], []
        for row_id, version, state, stage in rows:
            t0 = clock()
            wf = load(state)
            t1 = clock()
            fired: list[Any] = []
            wf.refresh_timers()
            wf.do_engine_steps(did_complete_task=lambda t, f=fired: f.append(t))
            new_stage = stage_of(wf)
            for t in fired:
                notices = t.data.get("notices") if (t.task_spec.bpmn_id or "").startswith(
                    ("escalate_", "remind_")) else None
                for role in notices or []:
                    outbox.append((row_id, role, now, "pending", json.dumps(
                        {"role": role, "stage": new_stage, "from": stage,
                         "due_at": t.data.get("due_at"), "kind": t.task_spec.bpmn_id})))
            events.append((row_id, now, "auto_escalated" if new_stage != stage else "reminded",
                           stage, new_stage))
            due = next_due(wf)
            t2 = clock()
            updates.append((new_stage, due, version + 1, dump(wf), row_id, version))
            split["deserialize"] += t1 - t0
            split["engine"] += t2 - t1
            split["serialize"] += clock() - t2
        t0 = clock()
        store.many("UPDATE instance SET stage = ?, due_at = ?, version = ?, state = ?"
                   " WHERE id = ? AND version = ?", updates)
        store.many("INSERT INTO event (instance_id, at, kind, from_stage, to_stage)"
                   " VALUES (?, ?, ?, ?, ?)", events)
        store.many("INSERT INTO outbox (instance_id, role, created_at, status, payload)"
                   " VALUES (?, ?, ?, ?, ?)", outbox)
        if store.kind == "sqlite":
            store.commit()
        else:
            txn.__exit__(None, None, None)
        split["write"] += clock() - t0
        done += len(rows)
        if len(rows) < CHUNK:
            return done


def main() -> None:
    with open(sys.argv[1]) as f:
        job = json.load(f)
    HOLIDAYS.update(date.fromisoformat(d) for d in job["holidays"])
    parser = BpmnParser()
    parser.add_bpmn_file(job["bpmn"])
    spec = parser.get_spec("ladder")
    kinds = templates(spec)
    store = Store(job)
    started = time.perf_counter()
    store.load(job["total"], job["due"], job["trials"] - 1, kinds)
    load_s = time.perf_counter() - started
    runs: list[float] = []
    best_split: dict[str, float] = {}
    for trial in range(job["trials"]):
        if trial:
            store.release(job["due"])
        split = dict.fromkeys(("read", "deserialize", "engine", "serialize", "write"), 0.0)
        started = time.perf_counter()
        n = escalation_pass(store, split)
        runs.append(time.perf_counter() - started)
        if runs[-1] == min(runs):
            best_split = split
        assert n == job["due"], (n, job["due"])
        escalated = store.rows("SELECT count(*) FROM event WHERE kind = 'auto_escalated'"
                               " AND to_stage = 'stage2'")[0][0]
        assert escalated == job["due"] * (trial + 1), escalated
    # what was written back loads again: at stage 2, its own timer pending, not yet due
    (state,) = store.rows("SELECT state FROM instance WHERE stage = 'stage2' LIMIT 1")[0]
    again = load(state)
    assert stage_of(again) == "stage2" and next_due(again) > datetime.now(UTC).isoformat()
    per_alert = store.rows("SELECT count(*) FROM outbox")[0][0] / (job["due"] * job["trials"])
    started = time.perf_counter()
    probes = 50
    for _ in range(probes):
        nothing = store.rows("SELECT id FROM instance WHERE due_at <= ? ORDER BY due_at"
                             " LIMIT 1", (datetime.now(UTC).isoformat(),))
        assert nothing == [], nothing
    probe_s = (time.perf_counter() - started) / probes
    sizes = {k: len(v[0]) for k, v in kinds.items()}
    print(json.dumps({"run_s": min(runs), "runs_s": runs, "load_s": load_s,
                      "probe_s": probe_s, "split_s": best_split, "outbox_per_instance": per_alert,
                      "json_bytes": sizes}))


if __name__ == "__main__":
    main()
