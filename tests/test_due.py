"""The timescale run finds its candidates by SQL; each query is the twin of a rule in drp.ladder.due.
Over every combination of the columns the rules read, the SQL must select exactly the alerts
(and actions) the Python rule selects, on SQLite and PostgreSQL. And the clocks themselves,
against dates counted by hand."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp.calendar import WorkingCalendar
from drp.errors import BadValue
from drp.ladder import due
from drp.ladder.protocol import Protocol
from drp.models import Action, Alert, Child

from .conftest import backends
from .support import workdays

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
            ("open", "resolved", "closed"), (False, True),
            # informal: a pause point (as stage 3 is); good_practice: no stage of the ladder
            ("informal", "stage1", "stage4", "good_practice"),
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
        # Stage 1 escalates 27; the informal pause point and stage 4 notify 18 each.
        assert len(expected) == 63

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
        assert not {by_id[i].stage for i in expected} & {"good_practice"}

        expected = {a.id for a in alerts if due.hold_ended(a, TODAY)}
        assert chosen(due.hold_ended_where(TODAY)) == expected
        assert expected

        # The inbox and its count read this one first, then the access policy decides.
        expected = {a.id for a in alerts if due.awaiting_response(ladder, a)}
        assert chosen(due.awaiting_response_where(ladder)) == expected
        # open, not held, not answered, a ladder stage (3 of 4), a due date (7 of 8), any markers
        assert len(expected) == 3 * 7 * 9 * 3

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
    # (26th) and Easter Monday (29th) are bank holidays, so Wednesday 31 March. The first
    # formal stage starts the formal clock: 20 working days from 22 March 2027 are 23-25
    # March (3), 30 March-2 April (7), 5-9 April (12), 12-16 April (17), 19-21 April (20).
    fresh = _Alert(formal_since=None, resolution_due=None)
    entry = due.stage_entry(protocol, calendar, fresh, "stage1", now=NOW,
                            today=date(2027, 3, 22))
    assert entry == {"formal_since": date(2027, 3, 22), "resolution_due": date(2027, 4, 21),
                     "stage_entered_at": NOW, "stage_due": date(2027, 3, 31),
                     "stage_responded_at": None, "acknowledged_by_id": None,
                     "acknowledged_at": None}
    assert due.resolution_due_from(protocol, calendar, date(2027, 3, 22)) == date(2027, 4, 21)

    # Informal: no formal clock at all; the IRO's date, or five working days by default.
    informal = due.stage_entry(protocol, calendar, fresh, "informal", now=NOW,
                               today=date(2027, 3, 22))
    assert "resolution_due" not in informal and "formal_since" not in informal
    assert informal["stage_due"] == date(2027, 3, 31)
    chosen = due.stage_entry(protocol, calendar, fresh, "informal", now=NOW,
                             today=date(2027, 3, 22), informal=date(2027, 3, 24))
    assert chosen["stage_due"] == date(2027, 3, 24)

    # Already formal: the clock does not start again, and a later stage's due date stays
    # within it. Stage 4 entered Thursday 25 March would be due Monday 5 April (30, 31 March,
    # 1, 2, 5 April) but the formal process is due Wednesday 31 March.
    started = _Alert(formal_since=date(2027, 3, 3), resolution_due=date(2027, 3, 31))
    later = due.stage_entry(protocol, calendar, started, "stage4", now=NOW,
                            today=date(2027, 3, 25))
    assert "resolution_due" not in later and "formal_since" not in later
    assert later["stage_due"] == date(2027, 3, 31)
    # Entered after the formal due date: due the day it is entered, not before it.
    late = due.stage_entry(protocol, calendar, started, "stage2", now=NOW,
                           today=date(2027, 4, 6))
    assert late["stage_due"] == date(2027, 4, 6)
    # ... or, entered on a Saturday (10 April), the Monday after.
    weekend = due.stage_entry(protocol, calendar, started, "stage2", now=NOW,
                              today=date(2027, 4, 10))
    assert weekend["stage_due"] == date(2027, 4, 12)


def test_the_informal_date_is_the_iros_within_the_protocols_most(
        protocol: Protocol, calendar: WorkingCalendar) -> None:
    today = date(2027, 3, 22)  # Monday; Good Friday 26th, Easter Monday 29th
    assert due.informal_due(protocol, calendar, today, None) == date(2027, 3, 31)
    assert due.informal_due(protocol, calendar, today, date(2027, 3, 23)) == date(2027, 3, 23)
    # Ten working days: 23, 24, 25, 30, 31 March, 1, 2, 5, 6, 7 April.
    assert due.informal_due(protocol, calendar, today, date(2027, 4, 7)) == date(2027, 4, 7)
    for bad, why in ((date(2027, 4, 8), "more than 10 working days away.*up to 2027-04-07"),
                     (today, "not after today"), (date(2027, 3, 20), "not after today"),
                     (date(2027, 3, 26), "not a working day.*2027-03-30")):
        with pytest.raises(BadValue, match=why) as err:
            due.informal_due(protocol, calendar, today, bad)
        assert err.value.field == "due"


def test_a_hold_needs_an_end_within_the_protocols_most(protocol: Protocol,
                                                       calendar: WorkingCalendar) -> None:
    today = date(2027, 3, 1)
    with pytest.raises(BadValue, match="needs an end date"):
        due.hold_until_limit(protocol, calendar, today, None)
    with pytest.raises(BadValue, match="not after today"):
        due.hold_until_limit(protocol, calendar, today, today)
    latest = workdays.add(today, 65)
    assert due.hold_until_limit(protocol, calendar, today, latest) == latest
    with pytest.raises(BadValue, match=f"more than 65 working days.*{latest.isoformat()}"):
        due.hold_until_limit(protocol, calendar, today, latest + timedelta(days=1))


def test_an_extension_is_limited_and_only_the_informal_date_comes_forward(
        protocol: Protocol, calendar: WorkingCalendar) -> None:
    today = date(2027, 3, 22)
    formal = _Alert(stage="stage1", stage_due=date(2027, 3, 31))
    informal = _Alert(stage="informal", stage_due=date(2027, 3, 31))
    # Ten working days after 31 March: 1, 2, 5-9, 12-14 April.
    assert workdays.add(date(2027, 3, 31), 10) == date(2027, 4, 14)
    for alert in (formal, informal):
        due.extension_limit(protocol, calendar, alert, today, date(2027, 4, 14))
        with pytest.raises(BadValue, match="more than 10 working days.*2027-04-14"):
            due.extension_limit(protocol, calendar, alert, today, date(2027, 4, 15))
        with pytest.raises(BadValue, match="in the past"):
            due.extension_limit(protocol, calendar, alert, today, date(2027, 3, 19))
        with pytest.raises(BadValue, match="not after the current one"):
            due.extension_limit(protocol, calendar, alert, today, date(2027, 3, 31))
    due.extension_limit(protocol, calendar, informal, today, date(2027, 3, 23))
    # Due 31 March, on 15 April the most it could move (to 14 April) is past: one refusal
    # that says so, not "give a date from 15 April" and "up to 14 April" by turns.
    for until in (date(2027, 4, 14), date(2027, 4, 15)):
        with pytest.raises(BadValue, match="passed more than 10 working days ago.*cannot be"
                                           " extended"):
            due.extension_limit(protocol, calendar, formal, date(2027, 4, 15), until)
    due.extension_limit(protocol, calendar, formal, date(2027, 4, 14), date(2027, 4, 14))
    with pytest.raises(BadValue, match="only the informal"):
        due.extension_limit(protocol, calendar, formal, today, date(2027, 3, 23))
    # An agreed extension past the formal due date moves that too.
    assert due.after_extension(_Alert(resolution_due=date(2027, 4, 2)),
                               date(2027, 4, 6)) == date(2027, 4, 6)
    assert due.after_extension(_Alert(resolution_due=date(2027, 4, 21)),
                               date(2027, 4, 6)) == date(2027, 4, 21)
    assert due.after_extension(_Alert(resolution_due=None), date(2027, 4, 6)) is None


def test_resuming_moves_both_clocks_by_the_working_days_held(calendar: WorkingCalendar) -> None:
    # Held Thursday 25 March to Thursday 1 April 2027: 30, 31 March and 1 April count (Good
    # Friday and Easter Monday do not): three working days.
    held = _Alert(held_since=date(2027, 3, 25), stage_due=date(2027, 3, 31),
                  resolution_due=date(2027, 4, 21))
    assert due.after_hold(calendar, held, date(2027, 4, 1)) == (
        date(2027, 4, 5), date(2027, 4, 26), 3)
    informal = _Alert(held_since=date(2027, 3, 25), stage_due=date(2027, 3, 31),
                      resolution_due=None)
    assert due.after_hold(calendar, informal, date(2027, 4, 1)) == (date(2027, 4, 5), None, 3)


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


@backends
def test_the_acknowledgement_reminder_twin_selects_what_its_rule_selects(
        org: Engine, protocol: Protocol, calendar: WorkingCalendar) -> None:
    """A stage not acknowledged after a working day: `ack_reminder_where` against
    `ack_reminder_due`, over the columns both read."""
    # The working day before Tuesday 30 March 2027 is Thursday 25th (Good Friday and Easter
    # Monday between): entered before it ended (midnight into the 26th), reminded on the
    # 30th; the one before Wednesday 24th is Tuesday 23rd, ending at midnight into the 24th.
    assert due.ack_reminder_after(calendar, datetime(2027, 3, 30, 10, 0, tzinfo=UTC)) == (
        datetime(2027, 3, 26, 0, 0, tzinfo=UTC))
    before = due.ack_reminder_after(calendar, NOW)
    assert before == datetime(2027, 3, 24, 0, 0, tzinfo=UTC)
    with Session(org) as session:
        child = session.exec(select(Child).where(Child.ref == "R100")).one()
        rows = []
        for (status, on_hold, stage, stage_due, responded, acked, reminded,
             entered) in itertools.product(
                ("open", "resolved"), (False, True), ("stage1", "good_practice"),
                (None, TODAY, date(2027, 3, 25)), (False, True), (False, True),
                ("none", "same", "other"),
                (datetime(2027, 3, 22, 9, 0, tzinfo=UTC), before, NOW)):  # before, at, after
            rows.append({
                "child_id": child.id, "iro_id": child.iro_id, "status": status,
                "stage": stage, "summary": "grid", "raised_at": entered,
                "stage_entered_at": entered, "stage_due": stage_due,
                "stage_responded_at": NOW if responded else None,
                "acknowledged_at": NOW if acked else None,
                "ack_reminded_for": {"none": None, "same": stage_due,
                                     "other": date(2027, 1, 4)}[reminded],
                "on_hold": on_hold, "theme_confirmed": False, "last_seq": 0, "version": 1})
        session.connection().execute(insert(Alert), rows)
        session.commit()
        alerts = session.exec(select(Alert)).all()
        expected = {a.id for a in alerts if due.ack_reminder_due(protocol, a, before)}
        chosen = set(session.exec(select(col(Alert.id)).where(
            due.ack_reminder_where(protocol, before))))
        assert chosen == expected
        # open, not held, stage1, due set (2), not responded, not acknowledged, reminder not
        # for this due date (none, other: 2), entered before the cut-off (1): 4.
        assert len(expected) == 4


@backends
def test_the_action_reminder_twin_selects_what_its_rule_selects(
        org: Engine, calendar: WorkingCalendar) -> None:
    """An agreed action due within the lead: `action_reminder_where` against
    `action_reminder_due`, over the columns both read."""
    day_start = datetime(2027, 3, 24, 0, 0, tzinfo=UTC)
    with Session(org) as session:
        child = session.exec(select(Child).where(Child.ref == "R100")).one()
        alerts = [{"child_id": child.id, "iro_id": child.iro_id, "status": status,
                   "stage": "stage1", "summary": "grid", "raised_at": NOW,
                   "stage_entered_at": NOW, "on_hold": on_hold, "theme_confirmed": False,
                   "last_seq": 0, "version": 1}
                  for status, on_hold in itertools.product(
                      ("open", "resolved", "withdrawn", "closed"), (False, True))]
        session.connection().execute(insert(Alert), alerts)
        actions = []
        for alert_id in session.exec(select(col(Alert.id))):
            for no, (done, reminded, when, agreed) in enumerate(itertools.product(
                    (False, True), (False, True),
                    # yesterday, today, then Thursday; Good Friday to Easter Monday are not
                    # working days, so Tuesday 30th is the lead's last day, not Wednesday
                    (date(2027, 3, 23), TODAY, date(2027, 3, 25), date(2027, 3, 30),
                     date(2027, 3, 31)),
                    (day_start - timedelta(days=1), day_start, NOW)), start=1):
                actions.append({"alert_id": alert_id, "no": no, "text": "x",
                                "owner_id": child.iro_id, "due": when, "stage": "stage1",
                                "agreed_at": agreed, "done_at": NOW if done else None,
                                "reminded_at": NOW if reminded else None})
        session.connection().execute(insert(Action), actions)
        session.commit()
        by_id = {a.id: a for a in session.exec(select(Alert))}
        expected = {(x.alert_id, x.no) for x in session.exec(select(Action))
                    if due.action_reminder_due(calendar, TODAY, by_id[x.alert_id], x,
                                               day_start)}
        found = set(session.exec(
            select(Action.alert_id, Action.no).join(Alert, col(Alert.id) == Action.alert_id)
            .where(due.action_reminder_where(calendar, TODAY, day_start))).all())
        assert found == expected
        # open or resolved, not held (2 alerts); not done, not reminded; due today, Thursday
        # or Tuesday (3); agreed before today began (1): 6.
        assert len(expected) == 6
