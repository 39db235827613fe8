"""The timescale run at 10k, 100k and 1M alerts in the database with the same due set, on
SQLite and PostgreSQL, against the bare SQL that selects and updates that due set.

Each database holds `total` alerts as a council's does after some years (a quarter open, the
rest resolved), each with its `raised` event. The due set is DUE alerts overdue at stage 1: the
run escalates each (machine, checks, event, outbox rows with the message context). The run is
measured three times on fresh due sets (spare sets are held until released) and the best kept.

Baselines, in the same process on the same database:
- bare select: the SELECT of the due set by the same predicate (best of 5);
- bare writes: the statements the run's writes come to, hand-written: UPDATE each due alert
  (guarded by its version) from the state the run found to the values it wrote, INSERT its
  event (RETURNING ids) and INSERT as many outbox rows as the run wrote, with the same
  payload, and COMMIT (as the commands' floor commits each command); executed after each run
  on the alerts it escalated, each time from those alerts put back as they stood before the
  run, then undone (all untimed but the write itself). The run and both baselines are taken
  in turns, the best of each kept.
  `..._run_over_bare` is the run against bare select + bare writes (the bound: 1.5);
  `..._run_over_bare_select_update` is against the select and the UPDATE alone.
- `timescales_1m_over_10k`: the run at 1M against the run at 10k (the bound: 1.5)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from common import (  # type: ignore[import-not-found]
    ALERT,
    EVENT,
    RESULTS,
    SMALL,
    backends,
    bulk_alerts,
    database,
    judge,
    record,
    release_set,
    timed,
)
from sqlalchemy import bindparam, event, insert, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from drp import timescales
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock
from drp.ladder.protocol import Protocol
from drp.models import OutboxMessage
from drp.notify import Notifier
from notifications.render import Renderer

LONDON = ZoneInfo("Europe/London")
TODAY = date(2027, 3, 9)
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
SIZES = [(10_000, "10k"), (100_000, "100k")] if SMALL else [
    (10_000, "10k"), (100_000, "100k"), (1_000_000, "1m")]
DUE = 500 if SMALL else 2_000
TRIALS = 3
DUE_PREDICATE = ("status = 'open' AND on_hold = false AND stage_responded_at IS NULL"
                 " AND stage_due < :today")


def bare_select(engine: Engine, *, indexed: bool = True) -> float:
    """The SELECT of the due set by the run's predicate. `indexed`: with the best index the
    database has for it, the due index's range (`attention_on <= :today`), as the run's own
    queries read; without, as this baseline was until issue 19 (no lower bound, so at 1M
    alerts the planner walks the table: a floor kinder to the run than the database is)."""
    lower = "attention_on <= :today AND " if indexed else ""
    if indexed and engine.dialect.name == "sqlite":
        # As the run's own queries tell SQLite (drp.timescales.come_where): else its planner
        # walks the table in id order (0.12 against 0.02 s at 100k alerts).
        lower = "likelihood(attention_on <= :today, 0.001) AND "
    sql = text(f"SELECT * FROM alert WHERE {lower}{DUE_PREDICATE} ORDER BY id")

    def go() -> int:
        with engine.connect() as conn:
            return len(conn.execute(sql, {"today": TODAY}).all())

    seconds, n = timed(go, repeat=5)
    assert n == DUE, (n, DUE)
    return seconds


def due_rows(engine: Engine) -> list[dict[str, object]]:
    """The due set's alerts as they stand before the run (every column, as the table's types
    give them), for the floor to start its writes from."""
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            ALERT.select().where(text(DUE_PREDICATE)).order_by(ALERT.c.id), {"today": TODAY})]
    assert len(rows) == DUE, (len(rows), DUE)
    return rows


# The columns an escalation writes (the run's UPDATE; the due index's day among them, its
# index kept by the same statement).
ESCALATION_WRITES = ("stage", "stage_entered_at", "stage_due", "stage_responded_at",
                     "acknowledged_by_id", "acknowledged_at", "formal_since", "resolution_due",
                     "attention_on", "last_seq", "version")
ALWAYS_WRITTEN = {"stage_responded_at", "acknowledged_by_id", "acknowledged_at"}


def bare_writes(engine: Engine, before: list[dict[str, object]], ids: list[int]
                ) -> tuple[float, float]:
    """(UPDATE alone, UPDATE + INSERTs): the run's escalation of `ids` written again by hand,
    from where the run started: each time the alerts are first put back as they stood before
    the run (`before`, untimed), then the timed UPDATE writes the values the run wrote (so its
    indexes' entries move as the run's did: written over the run's own values, they stayed
    put, and at 1M alerts that floor wrote a fifth fewer pages than the run), then INSERTs of
    the run's own events and outbox rows (copied: the same columns and payload), and the
    COMMIT (as the commands' floor commits each
    command: a write the database never makes durable skips the commit's flush to disk,
    which no run can). Then undone, untimed: the outbox rows deleted, the alerts checked to
    be as the run left them."""
    assert sorted(r["id"] for r in before) == sorted(ids), "the run escalated another set"
    with engine.connect() as conn:
        outbox = [dict(r._mapping) for r in conn.execute(
            OUTBOX.select().where(OUTBOX.c.alert_id.in_(ids)))]
        # The alerts as the run left them.
        as_run = [dict(r._mapping) for r in conn.execute(
            ALERT.select().where(ALERT.c.id.in_(ids)).order_by(ALERT.c.id))]
        # ...and the events it wrote, to be written again (each repetition at its own seq).
        events = [dict(r._mapping) for r in conn.execute(EVENT.select().where(
            EVENT.c.alert_id.in_(ids), EVENT.c.kind == "auto_escalated"))]
    assert len(events) == len(ids), "the run wrote another number of escalations"
    # The floor writes what the run's UPDATE wrote, no more: the columns that changed, and
    # those a stage's entry always writes (`due.stage_entry`: its response and its
    # acknowledgement cleared, whatever they were).
    changed = {k for b, a in zip(before, as_run, strict=True) for k in b if b[k] != a[k]}
    assert set(ESCALATION_WRITES) == changed | ALWAYS_WRITTEN, (
        f"the run's escalation wrote {sorted(changed)}, the floor {ESCALATION_WRITES}")
    for o in outbox:
        del o["id"]
        o["key"] = "bare:" + o["key"]
    for e in events:
        del e["id"]
    put_back = ALERT.update().where(ALERT.c.id == bindparam("o_id")).values(
        {c.name: bindparam(f"o_{c.name}") for c in ALERT.c if c.name != "id"})
    as_before = [{f"o_{k}": v for k, v in r.items()} for r in before]
    update = ALERT.update().where(
        ALERT.c.id == bindparam("w_id"), ALERT.c.version == bindparam("w_version")
    ).values({name: bindparam(f"b_{name}") for name in ESCALATION_WRITES})
    was = {r["id"]: r["version"] for r in before}
    params = [{"w_id": r["id"], "w_version": was[r["id"]],
               **{f"b_{name}": r[name] for name in ESCALATION_WRITES}} for r in as_run]

    def go(with_inserts: bool, k: int = 0) -> float:
        # The event log is append-only: the bare events stay (each repetition its own seq,
        # beyond the alert's last; no later run reads these alerts' events).
        mine = [{**e, "seq": e["seq"] + 1 + k} for e in events]
        with engine.connect() as conn:
            with conn.begin():  # untimed: the alerts as they stood before the run
                conn.execute(put_back, as_before)
            settle(engine)
            started = datetime.now()
            with conn.begin():  # (committed: timed)
                assert conn.execute(update, params).rowcount == len(params)
                if with_inserts:
                    conn.execute(insert(EVENT).returning(EVENT.c.id,
                                                         sort_by_parameter_order=True),
                                 mine).all()
                    conn.execute(insert(OUTBOX), outbox)
            seconds = (datetime.now() - started).total_seconds()
            with conn.begin():  # undone, untimed: the alerts as the run left them
                if with_inserts:
                    conn.execute(OUTBOX.delete().where(OUTBOX.c.key.like("bare:%")))
                again = [dict(r._mapping) for r in conn.execute(
                    ALERT.select().where(ALERT.c.id.in_(ids)).order_by(ALERT.c.id))]
                assert again == as_run, "the bare writes did not leave the alerts as the run did"
        return seconds

    return min(go(False) for _ in range(3)), min(go(True, k) for k in range(3))


def settle(engine: Engine) -> None:
    """Before each timed step, SQLite's write-ahead log emptied into the database (untimed):
    each timed commit then pays for copying back only its own pages, not those of the untimed
    set-up before it (a released due set, a floor's undoing). PostgreSQL checkpoints in the
    background, but keeps each row's old versions until a VACUUM: without one, every floor's
    put-back and write left the due set's rows over more pages for the next (a helper's
    probe at 100k alerts: the timed UPDATE's WAL 6.7 -> 7.7 -> 8.4 MB over three), so the
    alert table is vacuumed (untimed) before each timed step, the run's as the floor's."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM alert")
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            # RESTART, not TRUNCATE: the next writer starts the log again without regrowing
            # its file. Checked: a checkpoint another reader held back would say busy.
            busy, log, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").one()
            assert busy == 0 and log == done, f"the log was not emptied: {busy, log, done}"


def measure(kind: str, total: int, label: str) -> dict[str, float]:
    cal = WorkingCalendar()
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
    with database(kind) as (engine, protocol):
        print(f"timescales on {kind}: loading {total:,} alerts ...", flush=True)
        bulk_alerts(engine, total, DUE, TODAY, cal, spare_sets=TRIALS - 1)
        select_before_s = bare_select(engine, indexed=False)
        plan = query_plan(engine)
        # The run and its floor in turns, each trial on a fresh due set: the bare SELECT of
        # that set, the run, then the bare writes of what the run escalated. The best of each
        # is kept: a busy moment of the machine then falls on both sides alike.
        runs: list[float] = []
        selects: list[float] = []
        updates: list[float] = []
        writes: list[float] = []
        for trial in range(TRIALS):
            if trial:
                assert release_set(engine, DUE) == DUE
            settle(engine)
            selects.append(bare_select(engine))  # the due set, before the run takes it
            before = due_rows(engine)
            instant = datetime(2027, 3, 9, 8, trial, tzinfo=UTC)
            settle(engine)
            run_s, report = timed(lambda i=instant: run(engine, protocol, cal, notifier, i))
            assert len(report.escalated) == DUE and not report.problems, report.counts()
            runs.append(run_s)
            update_s, writes_s = bare_writes(engine, before, report.escalated)
            updates.append(update_s)
            writes.append(writes_s)
        select_s, update_s, writes_s = min(selects), min(updates), min(writes)
        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(engine, "before_cursor_execute", count)
        rerun_s, again = timed(lambda: run(engine, protocol, cal, notifier,
                                           datetime(2027, 3, 9, 9, 0, tzinfo=UTC)))
        event.remove(engine, "before_cursor_execute", count)
        assert again.counts()["escalated"] == 0
        settle(engine)  # (on PostgreSQL, as autovacuum would after the runs' rewrites)
        probe_s = nothing_due_probe(engine, protocol, cal)
        mail = delivery(engine) if label == SIZES[0][1] else {}
    run_s = min(runs)
    name = f"timescales_{kind}_{label}"
    figures = {
        f"{name}_run_s": round(run_s, 3),
        f"{name}_rerun_s": round(rerun_s, 3),
        f"{name}_per_due_alert_ms": round(run_s / DUE * 1000, 3),
        f"{name}_bare_select_s": round(select_s, 4),
        f"{name}_bare_select_before_s": round(select_before_s, 4),
        f"{name}_nothing_due_probe_ms": round(probe_s * 1000, 3),
        f"{name}_nothing_due_statements": len(statements),
        f"{name}_due_set_uses_an_index": reads_an_index(plan),
        f"{name}_due_set_uses_due_index": reads_due_index(plan),
        f"{name}_bare_select_update_s": round(select_s + update_s, 4),
        f"{name}_bare_writes_s": round(select_s + writes_s, 4),
        f"{name}_run_over_bare": round(run_s / (select_s + writes_s), 2),
        f"{name}_run_over_bare_select_update": round(run_s / (select_s + update_s), 2),
    }
    figures.update({f"{name}_{k}": v for k, v in mail.items()})
    record(figures)
    return figures


def nothing_due_probe(engine: Engine, protocol: Protocol, cal: WorkingCalendar) -> float:
    """A run with nothing due: the one probe of the due index it makes (best of 200, on an
    open connection, as the run's own), with the rules' basis as the run gives it."""
    from drp import due_index

    rules = due_index.basis(protocol, cal)
    with engine.connect() as conn:
        seconds, come = timed(lambda: due_index.come(conn, TODAY, rules), repeat=200)
    assert come == [], come[:5]
    return seconds


def query_plan(engine: Engine) -> str:
    """The database's plans for the run's SELECTs of its due sets (overdue, reminders, holds
    ended), each as the run sends it: each must read the due index's range
    (ix_alert_attention_on), not the table nor another index."""
    from sqlmodel import col, select

    from drp.ladder import due
    from drp.ladder.protocol import load_protocol
    from drp.models import Alert
    from drp.settings import CONFIG_DIR

    protocol = load_protocol(CONFIG_DIR / "protocol.yaml")
    wheres = {"overdue": due.on_overdue_where(protocol, TODAY),
              "reminders": due.reminder_due_where(protocol, WorkingCalendar(), TODAY),
              "holds ended": due.hold_ended_where(TODAY)}
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    plans = []
    for what, where in wheres.items():
        query = select(col(Alert.id)).where(timescales.come_where(TODAY), where)
        compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
        with engine.connect() as conn:
            lines = [" ".join(str(c) for c in row) for row in conn.exec_driver_sql(
                explain + str(compiled))]
        print(f"  plan of the run's SELECT ({what}): " + " | ".join(lines))
        plans.append(" ".join(lines))
    return " || ".join(plans)


def reads_due_index(plans: str) -> bool:
    """The due set's SELECT (overdue, the first plan) reads ix_alert_attention_on."""
    return "ix_alert_attention_on" in plans.split(" || ")[0]


def reads_an_index(plans: str) -> bool:
    """Every due SELECT reads an index's range, none the whole table (the planner may take a
    narrower range than the due index's: the few alerts due within a reminder's lead, or
    held until today)."""
    return all("SCAN alert" not in plan and "Seq Scan" not in plan
               for plan in plans.split(" || "))


def delivery(engine: Engine) -> dict[str, float]:
    """The flow's second task: deliver what the runs queued (rendered now, from the stored
    context) as .eml files; against writing the same number of already-rendered messages."""
    import tempfile

    from notifications.outbox import deliver
    from notifications.render import Renderer as Templates
    from notifications.transports import FileTransport, Outgoing

    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM outbox WHERE status = 'pending'")
                         ).scalar_one()
    at = datetime(2027, 3, 9, 11, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        templates = Templates()
        seconds, report = timed(lambda: deliver(
            engine, FileTransport(Path(tmp) / "mail", "drp@example.org"), lambda: at,
            due_only=False, renderer=templates))
        assert report.sent == n, report.summary()
        with engine.connect() as conn:
            sample = conn.execute(text("SELECT id, key, to_addr, subject, text_body, html_body,"
                                       " message FROM outbox LIMIT 1")).one()
        bare = FileTransport(Path(tmp) / "bare", "drp@example.org")
        out = Outgoing(row_id=sample.id, key=sample.key, to_addr=sample.to_addr,
                       subject=sample.subject, text=sample.text_body, html=sample.html_body,
                       created_at=at, message=sample.message)

        def write_all() -> None:
            for i in range(n):
                bare.send(Outgoing(**{**out.__dict__, "row_id": i}))

        bare_s, _ = timed(write_all)
    return {"delivery_messages": n, "delivery_per_s": round(n / seconds, 1),
            "delivery_over_files_only": round(seconds / bare_s, 2)}


def run(engine: Engine, protocol: Protocol, cal: WorkingCalendar, notifier: Notifier,
        instant: datetime) -> timescales.TimescaleReport:
    def make(session: Session) -> AlertService:
        return AlertService(session, protocol=protocol, calendar=cal, clock=FixedClock(instant),
                            tz=LONDON, notifier=notifier)

    return timescales.run(engine, make, protocol, cal, TODAY)


RUN_OVER_BARE = 1.5  # issue 19: the run within 1.5x of its bare SQL (SQLAlchemy Core)
GROWTH = 1.5  # the run at the largest size against the smallest
PROBE_MS = 1.0  # a run with nothing due: one index probe, under 1 ms
BOUNDS = (f"run over bare at most {RUN_OVER_BARE}; largest over smallest at most {GROWTH}; a"
          f" run with nothing due one index probe under {PROBE_MS:g} ms; the due set's SELECT"
          " reads the due index (ix_alert_attention_on), every other due SELECT an index")


def main() -> None:
    print(f"timescales: due set {DUE} alerts overdue at stage 1, sizes"
          f" {', '.join(label for _, label in SIZES)}")
    failed: list[str] = []
    for kind in backends():
        runs = {label: measure(kind, total, label)[f"timescales_{kind}_{label}_run_s"]
                for total, label in SIZES}
        small, big = SIZES[0][1], SIZES[-1][1]
        ratio = {f"timescales_{kind}_{big}_over_{small}": round(runs[big] / runs[small], 2)}
        if kind == "sqlite":  # the headline names, as the issue spells them
            ratio[f"timescales_{big}_over_{small}"] = ratio[
                f"timescales_{kind}_{big}_over_{small}"]
        record(ratio)
        figures = json.loads(RESULTS.read_text())
        for label in runs:
            over = figures[f"timescales_{kind}_{label}_run_over_bare"]
            if over > RUN_OVER_BARE:
                failed.append(f"{kind} {label}: run over bare {over} > {RUN_OVER_BARE}")
            probe = figures[f"timescales_{kind}_{label}_nothing_due_probe_ms"]
            if probe >= PROBE_MS:
                failed.append(f"{kind} {label}: a run with nothing due probes in {probe} ms"
                              f" (bound: under {PROBE_MS:g} ms)")
            sent = figures[f"timescales_{kind}_{label}_nothing_due_statements"]
            if sent != 1:
                failed.append(f"{kind} {label}: a run with nothing due sends {sent} statements"
                              " (bound: one probe)")
            if not figures[f"timescales_{kind}_{label}_due_set_uses_due_index"]:
                failed.append(f"{kind} {label}: the due set's SELECT does not read the due"
                              " index (ix_alert_attention_on)")
            if not figures[f"timescales_{kind}_{label}_due_set_uses_an_index"]:
                failed.append(f"{kind} {label}: a due SELECT reads the whole table")
        growth = ratio[f"timescales_{kind}_{big}_over_{small}"]
        if growth > GROWTH:
            failed.append(f"{kind}: {big} over {small} {growth} > {GROWTH}")
    judge("timescales", BOUNDS, failed)


if __name__ == "__main__":
    main()
