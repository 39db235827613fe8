"""The timescale run finds its candidates by SQL; each query is the twin of a rule in drp.ladder.due.
Over every combination of the columns the rules read, the SQL must select exactly the alerts
(and actions) the Python rule selects, on SQLite and PostgreSQL. And the clocks themselves,
against dates counted by hand."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp.calendar import WorkingCalendar
from drp.ladder import due
from drp.ladder.protocol import Protocol
from drp.models import Action, Alert, Child

from .conftest import backends

TODAY = date(2027, 3, 24)  # a Wednesday; Good Friday is 26 March 2027
NOW = datetime(2027, 3, 24, 9, 0, tzinfo=UTC)


def with_longer_lead(protocol: Protocol) -> Protocol:
    """Stage 1 reminds three working days ahead, the others one: the per-stage bound matters."""
    data = protocol.model_dump()
    data["stages"][1]["reminder_lead_working_days"] = 3
    return Protocol.model_validate(data)


def grid(child_id: int, iro_id: int, calendar: WorkingCalendar) -> list[dict[str, Any]]:
    dues = [None, date(2027, 3, 23), TODAY, date(2027, 3, 25),
            date(2027, 3, 27),  # a Saturday: not a working day
            date(2027, 3, 29),  # Easter Monday
            date(2027, 3, 30), date(2027, 3, 31)]
    rows = []
    # Every column the rules read, each at the values that decide them (the resolution due
    # date is read by none of the run's rules, so it stays fixed).
    for (status, on_hold, stage, stage_due, responded, reminded, notified,
         hold_until) in itertools.product(
            ("open", "resolved", "referred"), (False, True),
            ("informal", "stage1", "stage4", "cafcass"),  # cafcass: no stage of the ladder
            dues, (False, True), ("none", "same", "other"), ("none", "same", "other"),
            (None, TODAY, date(2027, 3, 25))):
        def marker(kind: str, stage_due: date | None = stage_due) -> date | None:
            return {"none": None, "same": stage_due, "other": date(2027, 1, 4)}[kind]

        rows.append({
            "child_id": child_id, "iro_id": iro_id, "status": status, "stage": stage,
            "summary": "grid", "raised_at": NOW, "stage_entered_at": NOW,
            "stage_due": stage_due, "stage_responded_at": NOW if responded else None,
            "resolution_due": date(2027, 4, 30),
            "on_hold": on_hold, "hold_until": hold_until, "reminded_for": marker(reminded),
            "overdue_notified_for": marker(notified), "theme_confirmed": False,
            "last_seq": 0, "version": 1,
        })
    return rows


@backends
def test_each_sql_twin_selects_exactly_what_its_rule_selects(
        org: Engine, protocol: Protocol, calendar: WorkingCalendar) -> None:
    ladder = with_longer_lead(protocol)
    with Session(org) as session:
        child = session.exec(select(Child).where(Child.ref == "R100")).one()
        session.connection().execute(insert(Alert), grid(child.id, child.iro_id, calendar))
        alerts = session.exec(select(Alert)).all()
        actions = []
        for alert in alerts[::7]:  # actions on a spread of the alerts
            for no, (done, notified, when) in enumerate(itertools.product(
                    (False, True), (False, True),
                    (date(2027, 3, 23), TODAY, date(2027, 3, 25))), start=1):
                actions.append({"alert_id": alert.id, "no": no, "text": "x",
                                "owner_id": child.iro_id, "due": when, "stage": alert.stage,
                                "agreed_at": NOW, "done_at": NOW if done else None,
                                "overdue_notified_at": NOW if notified else None})
        session.connection().execute(insert(Action), actions)
        session.commit()
        alerts = session.exec(select(Alert)).all()
        by_id = {a.id: a for a in alerts}

        def chosen(where: Any) -> set[int]:
            return {i for i in session.exec(select(col(Alert.id)).where(where)) if i}

        expected = {a.id for a in alerts if due.on_overdue(ladder, TODAY, a) is not None}
        assert chosen(due.on_overdue_where(ladder, TODAY)) == expected
        assert len(expected) == 63  # stage 1 escalates 27; the pause points notify 18 each

        expected = {a.id for a in alerts if due.reminder_due(ladder, calendar, TODAY, a)}
        assert chosen(due.reminder_due_where(ladder, calendar, TODAY)) == expected
        # Stage 1's longer lead reaches Wednesday 31 March (three working days: Thursday,
        # then Good Friday and Easter Monday skipped, Tuesday, Wednesday); the others only
        # Thursday.
        assert {by_id[i].stage_due for i in expected if by_id[i].stage == "stage1"} == {
            TODAY, date(2027, 3, 25), date(2027, 3, 27), date(2027, 3, 29),
            date(2027, 3, 30), date(2027, 3, 31)}
        assert {by_id[i].stage_due for i in expected if by_id[i].stage == "informal"} == {
            TODAY, date(2027, 3, 25)}

        expected = {a.id for a in alerts if due.hold_ended(a, TODAY)}
        assert chosen(due.hold_ended_where(TODAY)) == expected
        assert expected

        found = set(session.exec(
            select(Action.alert_id, Action.no).join(Alert, col(Alert.id) == Action.alert_id)
            .where(due.action_overdue_where(TODAY))).all())
        rows = session.exec(select(Action)).all()
        expected_actions = {(x.alert_id, x.no) for x in rows
                            if due.action_overdue_due(by_id[x.alert_id], x, TODAY)}
        assert found == expected_actions
        assert expected_actions


def test_stage_and_resolution_clocks_counted_by_hand(protocol: Protocol,
                                                     calendar: WorkingCalendar) -> None:
    # Entered on Monday 22 March 2027: five working days is Monday 29 March, but Good Friday
    # (26th) and Easter Monday (29th) are bank holidays, so Wednesday 31 March.
    entry = due.stage_entry(protocol, calendar, "stage1", now=NOW, today=date(2027, 3, 22))
    assert entry == {"stage_entered_at": NOW, "stage_due": date(2027, 3, 31),
                     "stage_responded_at": None}
    # 20 working days from 22 March 2027: 23-25 March (3), 30 March-2 April (7), 5-9 April
    # (12), 12-16 April (17), 19-21 April (20).
    assert due.resolution_due_from(protocol, calendar, date(2027, 3, 22)) == date(2027, 4, 21)


class _Alert:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def test_overdue_is_the_day_after_and_never_on_hold() -> None:
    base = {"status": "open", "on_hold": False, "stage_due": date(2027, 3, 24),
            "stage_responded_at": None, "resolution_due": date(2027, 4, 30)}
    assert not due.alert_overdue(_Alert(**base), date(2027, 3, 24))
    assert due.alert_overdue(_Alert(**base), date(2027, 3, 25))
    assert not due.alert_overdue(_Alert(**{**base, "on_hold": True}), date(2027, 3, 25))
    assert not due.alert_overdue(_Alert(**{**base, "stage_responded_at": NOW}),
                                 date(2027, 3, 25))
    assert due.alert_overdue(_Alert(**{**base, "stage_responded_at": NOW}), date(2027, 5, 3))
    assert not due.alert_overdue(_Alert(**{**base, "status": "resolved"}), date(2027, 5, 3))
