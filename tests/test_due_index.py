"""The due index (`Alert.attention_on`): every writer keeps each alert's first day of need as
drp.ladder.attention computes it; a run with nothing due is one statement; a row written
without the service layer is looked at by the next run and settled; the migration gives
existing alerts a day no later than their first need, and the first run settles each."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import db
from drp.alerts import ActionIn
from drp.ladder.attention import EARLIEST, next_attention
from drp.ladder.protocol import Protocol
from drp.models import Action, Alert

from .conftest import LONDON, Run, backends
from .test_timescales import CAL, flow_at


def stored(engine: Engine, aid: int) -> date | None:
    with Session(engine) as s:
        alert = s.get(Alert, aid)
        assert alert is not None
        return alert.attention_on


def computed(engine: Engine, protocol: Protocol, aid: int, day: date) -> date | None:
    with Session(engine) as s:
        alert = s.get(Alert, aid)
        actions = s.exec(select(Action).where(Action.alert_id == aid,
                                              col(Action.done_at).is_(None))).all()
        return next_attention(protocol, CAL, LONDON, alert, actions, from_day=day)


def step(run: Run, org: Engine, protocol: Protocol, when: str, fn: Any, aid: int | None = None
         ) -> tuple[int, date | None]:
    """One unit of work as of `when`; the alert's stored day, checked against the rule."""
    result = run(when, fn)
    aid = aid if aid is not None else int(result.id)
    day = date.fromisoformat(when[:10])
    assert stored(org, aid) == computed(org, protocol, aid, day), when
    return aid, stored(org, aid)


@backends
def test_every_writer_keeps_the_due_index(run: Run, org: Engine, protocol: Protocol) -> None:
    # Raised Monday 1 March at stage 1 (due Monday 8th): a working day without an
    # acknowledgement is the first need, Tuesday's run.
    aid, day = step(run, org, protocol, "2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1"))
    assert day == date(2027, 3, 2)
    # Acknowledged: next, the reminder a working day before the due date (Friday 5th).
    _, day = step(run, org, protocol, "2027-03-01T11:00",
                  lambda s: s.acknowledge(aid, "tm.fay"), aid)
    assert day == date(2027, 3, 5)
    # Answered with an action due Friday 12th: the stage waits for the IRO (no clock), the
    # action's reminder is due two working days before it (Wednesday 10th).
    _, day = step(run, org, protocol, "2027-03-02T10:00", lambda s: s.respond(
        aid, "tm.fay", "Plan", [ActionIn("Write it", date(2027, 3, 12), owner="sw.dan")]), aid)
    assert day == date(2027, 3, 10)
    # Escalated: stage 2 entered on the 3rd, unacknowledged by Thursday 4th.
    _, day = step(run, org, protocol, "2027-03-03T10:00",
                  lambda s: s.escalate(aid, "iro.ada", "Not enough"), aid)
    assert day == date(2027, 3, 4)
    # Held until Tuesday 9th: nothing else runs while held, agreed actions included.
    _, day = step(run, org, protocol, "2027-03-03T11:00", lambda s: s.hold(
        aid, "iro.ada", "Court", until=date(2027, 3, 9)), aid)
    assert day == date(2027, 3, 9)
    _, day = step(run, org, protocol, "2027-03-05T10:00",
                  lambda s: s.resume(aid, "iro.ada"), aid)
    assert day is not None and day <= date(2027, 3, 10)
    _, later = step(run, org, protocol, "2027-03-05T11:00", lambda s: s.acknowledge(
        aid, "hos.ivy"), aid)
    assert later is not None and later > day
    with Session(org) as s:
        due = s.get(Alert, aid).stage_due  # type: ignore[union-attr]
    _, extended = step(run, org, protocol, "2027-03-05T12:00", lambda s: s.extend(
        aid, "iro.ada", CAL.add(due, 3), "Holiday"), aid)
    assert extended is not None
    _, day = step(run, org, protocol, "2027-03-08T10:00",
                  lambda s: s.resolve(aid, "iro.ada", "Sorted"), aid)
    assert day == date(2027, 3, 10)  # resolved: its agreed action is still followed up
    _, day = step(run, org, protocol, "2027-03-09T10:00",
                  lambda s: s.reopen(aid, "iro.ada", "Not sorted"), aid)
    assert day == date(2027, 3, 10)  # a stage entered again, unacknowledged; the action
    _, day = step(run, org, protocol, "2027-03-09T10:30",
                  lambda s: s.action_done(aid, 1, "sw.dan"), aid)
    assert day == date(2027, 3, 10)
    _, day = step(run, org, protocol, "2027-03-09T11:00",
                  lambda s: s.withdraw(aid, "iro.ada", "Moved away"), aid)
    assert day is None


@backends
def test_a_resolved_alert_keeps_a_day_for_its_agreed_actions(
        run: Run, org: Engine, protocol: Protocol) -> None:
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    run("2027-03-02T10:00", lambda s: s.respond(
        aid, "tm.fay", "Plan", [ActionIn("Write it", date(2027, 3, 19), owner="sw.dan")]))
    run("2027-03-03T10:00", lambda s: s.resolve(aid, "iro.ada", "Agreed"))
    assert stored(org, aid) == date(2027, 3, 17)  # two working days before the 19th
    report = flow_at(org, protocol, "2027-03-17T08:00")
    assert report.actions_reminded == [f"{aid}/1"]
    assert stored(org, aid) == date(2027, 3, 20)  # then overdue, the day after its date


@backends
def test_the_run_moves_each_day_on_and_a_run_with_nothing_due_is_one_probe(
        run: Run, org: Engine, protocol: Protocol) -> None:
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    report = flow_at(org, protocol, "2027-03-02T08:00")
    assert report.ack_reminded == [aid]
    assert stored(org, aid) == date(2027, 3, 5)  # the reminder before Monday's due date
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(org, "before_cursor_execute", count)
    try:
        again = flow_at(org, protocol, "2027-03-03T08:00")
    finally:
        event.remove(org, "before_cursor_execute", count)
    assert again.counts() == {k: 0 for k in again.counts()}
    assert len(statements) == 1 and "attention_on" in statements[0], statements


@backends
def test_a_changed_protocol_makes_the_next_run_look_again(
        run: Run, org: Engine, protocol: Protocol) -> None:
    """A day stored under the old rules may be too late under new ones: a council that
    lengthens stage 1's reminder lead to 3 working days gets the reminder the new rule gives
    on Wednesday 3 March, though the day stored under the old lead (1) was Friday 5 March."""
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    flow_at(org, protocol, "2027-03-02T08:00")
    assert stored(org, aid) == date(2027, 3, 5)
    data = protocol.model_dump()
    for st in data["stages"]:
        if st["key"] == "stage1":
            st["reminder_lead_working_days"] = 3
    longer = Protocol.model_validate(data)
    assert flow_at(org, protocol, "2027-03-03T08:00").reminded == []  # the old rules: not yet
    report = flow_at(org, longer, "2027-03-03T08:00")
    assert report.reminded == [aid]
    assert flow_at(org, longer, "2027-03-03T08:30").counts() == {
        k: 0 for k in report.counts()}  # looked at once; the new rules are recorded


@backends
def test_a_row_written_without_the_service_layer_is_looked_at_and_settled(
        run: Run, org: Engine, protocol: Protocol) -> None:
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    with db.transaction(org) as s:  # an ORM session with no unit of work
        alert = s.get(Alert, aid)
        assert alert is not None
        alert.stage_due = date(2027, 3, 3)
    assert stored(org, aid) == EARLIEST
    report = flow_at(org, protocol, "2027-03-04T08:00")
    assert report.escalated == [aid]  # overdue since the 3rd: the run looked
    assert stored(org, aid) == computed(org, protocol, aid, date(2027, 3, 4))


@backends
def test_the_migration_gives_existing_alerts_a_day_the_first_run_settles(
        run: Run, org: Engine, protocol: Protocol) -> None:
    def raise_(ref: str, who: str = "iro.ada") -> int:
        return int(run("2027-03-01T10:00", lambda s: s.raise_alert(
            who, ref, "x", stage="stage1", separate=True)).id)

    held, waiting, answered, closed = (raise_("R100"), raise_("R101", "iro.ben"),
                                       raise_("R200", "iro.ben"), raise_("R101", "iro.ben"))
    run("2027-03-01T11:00", lambda s: s.hold(held, "iro.ada", "Court", until=date(2027, 3, 9)))
    run("2027-03-01T11:00", lambda s: s.respond(answered, "tm.gus", "Done"))
    run("2027-03-01T11:00", lambda s: s.withdraw(closed, "iro.ben", "Raised in error"))
    expected = {aid: stored(org, aid) for aid in (held, waiting, answered, closed)}
    with org.begin() as conn:
        (revision,) = conn.execute(text("SELECT version_num FROM alembic_version")).one()
    db.downgrade(org, "0015")  # before the due index (0016) and what came after it
    db.upgrade(org)
    after = {aid: stored(org, aid) for aid in expected}
    assert after == {held: date(2027, 3, 9), waiting: EARLIEST, answered: None, closed: None}
    for aid, day in after.items():  # never later than the need: nothing is missed
        assert day is None or expected[aid] is None or day <= expected[aid]  # type: ignore[operator]
    flow_at(org, protocol, "2027-03-02T08:00")
    with org.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == revision
    for aid in expected:
        assert stored(org, aid) == computed(org, protocol, aid, date(2027, 3, 2)), aid
    assert stored(org, waiting) == date(2027, 3, 5)


def test_every_rule_holds_first_on_the_day_the_index_gives(protocol: Protocol) -> None:
    """Against the rules themselves, day by day: the index's day is the first day a rule
    holds, for the stage's reminder, its acknowledgement, overdue, and an action's two."""
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from drp.ladder import due

    entered = datetime(2027, 3, 5, 16, 0, tzinfo=LONDON)  # a Friday afternoon
    base = dict(status="open", on_hold=False, stage="stage1", stage_due=date(2027, 3, 12),
                stage_entered_at=entered, stage_responded_at=None, acknowledged_at=None,
                reminded_for=None, ack_reminded_for=None, overdue_notified_for=None,
                hold_until=None)
    action = SimpleNamespace(due=date(2027, 3, 16), done_at=None, reminded_at=None,
                             overdue_notified_at=None, agreed_at=entered)
    cases = {
        "ack": (dict(reminded_for=date(2027, 3, 12)), ()),
        "remind": (dict(acknowledged_at=entered), ()),
        "overdue": (dict(acknowledged_at=entered, reminded_for=date(2027, 3, 12)), ()),
        "action": (dict(stage_responded_at=entered), (action,)),
    }
    for name, (values, actions) in cases.items():
        alert = SimpleNamespace(**{**base, **values})
        first = None
        day = date(2027, 3, 6)
        while first is None and day < date(2027, 4, 30):
            before = due.ack_reminder_after(CAL, datetime.combine(day, datetime.min.time(),
                                                                 tzinfo=LONDON))
            start = datetime.combine(day, datetime.min.time(), tzinfo=LONDON)
            if (due.reminder_due(protocol, CAL, day, alert)
                    or due.ack_reminder_due(protocol, alert, before)
                    or due.on_overdue(protocol, day, alert)
                    or any(due.action_overdue_due(alert, a, day)
                           or due.action_reminder_due(CAL, day, alert, a, start)
                           for a in actions)):
                first = day
            day += timedelta(days=1)
        assert next_attention(protocol, CAL, LONDON, alert, actions) == first, name



def test_the_runs_selects_read_the_due_index_on_sqlite(
        run: Run, org: Engine, protocol: Protocol) -> None:
    """SQLite's planner, knowing from ANALYZE that few alerts are open and not held, would
    read the (status, on_hold, stage_due) index for the rules' equalities and walk every open
    alert; each SELECT the run sends must read the due index's range instead (on PostgreSQL
    its statistics choose it: bench/timescales.py checks both plans at 10k to 1M alerts)."""
    aid = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", stage="stage1")).id)
    flow_at(org, protocol, "2027-03-01T12:00")  # the rules' basis recorded: no restart
    with org.begin() as conn:  # a council's years: many closed alerts, some open, far off due
        table = Alert.__table__  # type: ignore[attr-defined]
        row = dict(conn.execute(table.select().where(table.c.id == aid)).mappings().one())
        del row["id"]
        conn.execute(table.insert(), [
            {**row, "status": "resolved" if i % 4 else "open",
             "stage_due": date(2027, 6, 1), "attention_on": None if i % 4 else date(2027, 5, 28)}
            for i in range(4000)])
        conn.execute(text("ANALYZE"))
    sent: list[tuple[str, Any]] = []

    def keep(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT") and "attention_on" in args[2]:
            sent.append((args[2], args[3]))

    event.listen(org, "before_cursor_execute", keep)
    try:
        report = flow_at(org, protocol, "2027-03-02T08:00")
    finally:
        event.remove(org, "before_cursor_execute", keep)
    assert report.ack_reminded == [aid]
    finds = [(sql, params) for sql, params in sent  # the due sets', by the rules' twins
             if "stage_due" in sql.partition("WHERE")[2] and "JOIN" not in sql]
    assert len(finds) >= 3, sent  # overdue, reminders, acknowledgements at least
    with org.connect() as conn:
        for sql, params in finds:
            plan = " ".join(str(r[3]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql, params))
            assert "ix_alert_attention_on" in plan, (plan, sql)
            assert "ix_alert_open_stage_due" not in plan, (plan, sql)
