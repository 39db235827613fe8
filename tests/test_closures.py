"""Council closure days (issue 13, point 10): an administrator closes a working day, as
2022-09-19 was announced nine days ahead; the open due dates it falls within move on by one
working day, each with an event and e-mails; it is not a working day from then on, for the
service layer, the timescale run and `drp calendar`. Expected dates are counted by the
hand-written oracle (tests/support/workdays.py), with the closure day skipped."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import db, timescales
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.errors import BadValue, NotPermitted
from drp.ladder import due
from drp.ladder.protocol import Protocol
from drp.models import Alert, Closure, Event, OutboxMessage
from drp.notify import Notifier
from drp.runtime import Runtime
from drp.settings import CONFIG_DIR, Settings
from drp.themes import load_taxonomy
from notifications.outbox import deliver
from notifications.render import Renderer
from notifications.transports import FileTransport

from .conftest import DATA, LONDON, Run, backends
from .support import workdays

FUNERAL = date(2027, 3, 19)  # a Friday, closed on Wednesday 10 March: nine days ahead
ANNOUNCED = "2027-03-10T12:00"
NOTIFIER = Notifier(renderer=Renderer(), base_url="https://drp.example")


def nth_working_day(start: date, n: int, closed: Iterable[date] = ()) -> date:
    """The oracle's n-th working day after `start`, the closure days skipped too."""
    shut, day, found = set(closed), start, 0
    while found < n:
        day += timedelta(days=1)
        if workdays.is_working_day(day) and day not in shut:
            found += 1
    return day


def runtime_on(engine: Engine, protocol: Protocol) -> Runtime:
    """A runtime on the test's database. Its theme suggestions are switched off (they would
    train and cache a classifier in ./var)."""
    rt = Runtime(settings=Settings(_env_file=None), engine=engine, protocol=protocol,
                 holidays=WorkingCalendar(), taxonomy=load_taxonomy(CONFIG_DIR / "themes.yaml"))
    rt.suggest = lambda texts: []  # type: ignore[method-assign]
    return rt


def close(engine: Engine, protocol: Protocol, username: str | None, day: date,
          reason: str = "State funeral", when: str = ANNOUNCED) -> Any:
    rt = runtime_on(engine, protocol)
    with db.transaction(engine) as s:
        svc = rt.service(s, FixedClock(parse_instant(when, LONDON)), NOTIFIER)
        return svc.close_day(username, day, reason)


def written(engine: Engine) -> tuple[int, int, int, list[Any]]:
    with Session(engine) as s:
        def count(model: Any) -> int:
            return int(s.exec(select(func.count()).select_from(model)).one())

        dates = [(a.stage_due, a.resolution_due, a.version)
                 for a in s.exec(select(Alert).order_by(col(Alert.id)))]
        return count(Closure), count(Event), count(OutboxMessage), dates


@backends
def test_a_day_announced_nine_days_ahead_moves_the_due_dates_it_falls_within(
        run: Run, org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    # A formal stage whose extension runs past the day, and the formal clock it is within.
    extended = int(run("2027-03-08T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "No plan", stage="stage1")).id)
    run("2027-03-09T10:00", lambda s: s.extend(extended, "iro.ada", date(2027, 3, 22),
                                               "Manager on leave"))
    # The informal date the IRO chose, past the day (no formal clock yet).
    informal = int(run("2027-03-09T10:00", lambda s: s.raise_alert(
        "iro.ben", "R101", "No visits", due_on=date(2027, 3, 23))).id)
    # A stage due before the day: only its formal clock moves.
    early = int(run("2027-03-09T11:00", lambda s: s.raise_alert(
        "iro.ben", "R200", "No review", stage="stage1")).id)
    # Due before the day, and informal: nothing moves.
    untouched = int(run("2027-03-09T11:30", lambda s: s.raise_alert(
        "iro.ben", "R200", "Another", separate=True)).id)
    # Answered: its stage's date is no longer open; the formal clock still moves.
    answered = int(run("2027-03-08T11:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "Contact", stage="stage1", separate=True)).id)
    run("2027-03-09T10:30", lambda s: s.extend(answered, "iro.ada", date(2027, 3, 22), "Leave"))
    run("2027-03-09T12:00", lambda s: s.respond(answered, "tm.fay", "Arranged"))
    # Closed: nothing moves.
    resolved = int(run("2027-03-08T12:00", lambda s: s.raise_alert(
        "iro.ben", "R101", "Old", stage="stage1", separate=True)).id)
    run("2027-03-09T09:00", lambda s: s.resolve(resolved, "iro.ben", "Agreed"))

    def dates(aid: int) -> tuple[date | None, date | None]:
        view = run("2027-03-10T13:00", lambda s: s.show(aid, "irom.cat"))
        return view.stage_due, view.resolution_due

    before = {aid: dates(aid) for aid in (extended, informal, early, untouched, answered,
                                          resolved)}
    assert before[extended] == (date(2027, 3, 22), nth_working_day(date(2027, 3, 8), 20))
    assert before[informal] == (date(2027, 3, 23), None)

    result = close(org, protocol, "admin.max", FUNERAL)

    shut = [FUNERAL]
    assert dates(extended) == (nth_working_day(date(2027, 3, 22), 1, shut),   # Tue 23 March
                               nth_working_day(date(2027, 3, 8), 20, shut))   # Thu 8 April
    assert dates(extended) == (date(2027, 3, 23), date(2027, 4, 8))  # counted by hand too
    assert dates(informal) == (nth_working_day(date(2027, 3, 23), 1, shut), None)
    assert dates(early) == (before[early][0], nth_working_day(date(2027, 3, 9), 20, shut))
    assert dates(answered) == (date(2027, 3, 22), nth_working_day(date(2027, 3, 8), 20, shut))
    assert dates(untouched) == before[untouched] and dates(resolved) == before[resolved]
    assert [m.alert_id for m in result.moved] == [extended, informal, early, answered]

    # The mail as sent (delivery keeps what it sent in the row).
    deliver(org, FileTransport(tmp_path / "mail", "drp@riverside.example"),
            lambda: parse_instant("2027-03-10T14:00", LONDON), due_only=False)
    with Session(org) as s:
        events = {e.alert_id: e for e in s.exec(
            select(Event).where(Event.kind == "due_recomputed"))}
        mail = sorted((m.alert_id, m.recipient) for m in s.exec(
            select(OutboxMessage).where(OutboxMessage.message == "due_changed")))
        closure = s.get(Closure, FUNERAL)
        body = s.exec(select(OutboxMessage).where(
            OutboxMessage.alert_id == extended, OutboxMessage.recipient == "tm.fay",
            OutboxMessage.message == "due_changed")).one().text_body
    assert sorted(events) == [extended, informal, early, answered]
    event = events[extended]
    assert event.actor == "admin.max" and event.to_stage == "stage1"
    assert "2027-03-19" in (event.comment or "") and "State funeral" in (event.comment or "")
    assert event.data["old"] == {"stage_due": "2027-03-22", "resolution_due": "2027-04-07"}
    assert event.data["new"] == {"stage_due": "2027-03-23", "resolution_due": "2027-04-08"}
    assert event.data["stage_due"] == "2027-03-23"  # the clocks as they stand after it
    assert events[early].data["old"] == {"resolution_due": before[early][1].isoformat()}
    assert mail == sorted([(extended, "tm.fay"), (extended, "iro.ada"),
                           (informal, "tm.fay"), (informal, "sw.dan"), (informal, "iro.ben"),
                           (early, "tm.gus"), (early, "iro.ben"),
                           (answered, "tm.fay"), (answered, "iro.ada")])
    assert "19 March 2027" in body and "23 March 2027 (it was 22 March 2027)" in body
    assert closure is not None and (closure.reason, closure.created_by) == (
        "State funeral", "admin.max")


@backends
def test_refusals_say_what_is_wrong_and_write_nothing(run: Run, org: Engine,
                                                      protocol: Protocol) -> None:
    aid = int(run("2027-03-08T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "No plan", stage="stage1")).id)
    run("2027-03-09T10:00", lambda s: s.extend(aid, "iro.ada", date(2027, 3, 22), "Leave"))
    nothing = written(org)
    for who in ("iro.ada", "irom.cat", "dcs.lou"):  # only an administrator closes a day
        with pytest.raises(NotPermitted, match="only an administrator"):
            close(org, protocol, who, FUNERAL)
    refusals = {
        date(9999, 12, 31): "outside the dates drp accepts (2000-01-01 to 2100-12-31)",
        date(2027, 3, 20): "already not a working day (Saturday)",
        date(2027, 3, 26): "already not a working day (Good Friday)",
        date(2027, 3, 9): "is in the past (today is 2027-03-10)",
    }
    for day, why in refusals.items():
        with pytest.raises(BadValue, match=f"^[^\n]*{why.replace('(', '.').replace(')', '.')}"
                           ) as refused:
            close(org, protocol, "admin.max", day)
        assert refused.value.field == "day"
    with pytest.raises(BadValue, match="the reason is empty"):
        close(org, protocol, "admin.max", FUNERAL, reason="  ")
    assert written(org) == nothing

    close(org, protocol, "admin.max", FUNERAL)
    once = written(org)
    assert once[0] == 1 and once[1] == nothing[1] + 1
    with pytest.raises(BadValue, match="already a closure day .State funeral") as refused:
        close(org, protocol, "admin.max", FUNERAL, reason="Again", when="2027-03-11T09:00")
    assert refused.value.field == "day"
    assert written(org) == once


@backends
def test_a_day_closed_by_someone_else_meanwhile_is_refused_cleanly(
        org: Engine, protocol: Protocol, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two administrators close the same day at once: the second's insert meets the first's
    row (the day is the key); it is told so, one line, and nothing of it is written."""
    from drp.alerts.closures import Closures

    close(org, protocol, "admin.max", FUNERAL)
    nothing = written(org)
    # The second looked before the first committed: it saw no closure days at all.
    monkeypatch.setattr(Closures, "_existing", lambda self, day: None)
    for module in ("drp.alerts.closures", "drp.runtime"):
        monkeypatch.setattr(f"{module}.closure_days", lambda session: {})
    with pytest.raises(BadValue, match="was closed by someone else just now") as refused:
        close(org, protocol, None, FUNERAL, reason="Same day")
    assert refused.value.field == "day"
    assert written(org) == nothing


@backends
def test_a_closure_day_is_not_a_working_day_from_then_on(run: Run, org: Engine,
                                                         protocol: Protocol) -> None:
    rt = runtime_on(org, protocol)
    with Session(org) as s:
        assert rt.calendar_for(s) is rt.holidays  # no closures: the bank holidays alone
    close(org, protocol, "admin.max", FUNERAL)
    with Session(org) as s:
        calendar = rt.calendar_for(s)
        assert not calendar.is_working_day(FUNERAL)
        assert calendar.holiday_name(FUNERAL) == "State funeral"
        assert rt.calendar_for(s) is calendar  # kept while the days are unchanged
    assert rt.calendar is calendar
    # A run of many units of work reads the days once and hands them on: no query per unit.
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(org, "before_cursor_execute", count)
    try:
        with Session(org) as s:
            rt.service(s, FixedClock(parse_instant(ANNOUNCED, LONDON)), None, calendar)
            given = len(statements)
            assert rt.service(s, FixedClock(parse_instant(ANNOUNCED, LONDON))).cal is calendar
    finally:
        event.remove(org, "before_cursor_execute", count)
    assert given == 0 and len(statements) == 1 and "closure" in statements[0]
    # A stage entered afterwards counts without it (and without Easter): Tuesday 30 March.
    with db.transaction(org) as s:
        svc = rt.service(s, FixedClock(parse_instant("2027-03-18T10:00", LONDON)))
        alert = svc.raise_alert("iro.ada", "R100", "x", stage="stage1")
    assert alert.stage_due == nth_working_day(date(2027, 3, 18), 5, [FUNERAL]) == date(
        2027, 3, 30)
    # The timescale run does nothing on it.
    instant = parse_instant("2027-03-19T09:00", LONDON)
    report = timescales.run(org, lambda s: rt.service(s, FixedClock(instant), None,
                                                      rt.calendar),
                            protocol, rt.calendar, FUNERAL)
    assert not report.working_day


def test_after_closure_moves_only_the_dates_the_day_falls_within() -> None:
    """The rule itself, counted by hand: entered Monday 8 March 2027, stage due Monday 22nd,
    formal since the 8th with its resolution due Wednesday 7 April."""
    bank = WorkingCalendar()
    closed = bank.with_days({FUNERAL: "State funeral"})

    class Row:
        stage_entered_at = parse_instant("2027-03-08T10:00", LONDON)
        stage_due, stage_responded_at = date(2027, 3, 22), None
        formal_since, resolution_due = date(2027, 3, 8), date(2027, 4, 7)
        ack_reminded_for = date(2027, 3, 22)

    assert due.after_closure(bank, closed, Row(), FUNERAL) == {
        "stage_due": date(2027, 3, 23), "resolution_due": date(2027, 4, 8),
        "ack_reminded_for": date(2027, 3, 23)}  # the reminder to acknowledge is not repeated
    row = Row()
    row.stage_due = FUNERAL  # due on the day itself: the next working day, Monday 22nd
    assert due.after_closure(bank, closed, row, FUNERAL)["stage_due"] == date(2027, 3, 22)
    row.stage_due = date(2027, 3, 18)  # due the day before: only the formal clock
    assert due.after_closure(bank, closed, row, FUNERAL) == {"resolution_due": date(2027, 4, 8)}
    row.formal_since, row.resolution_due = None, None  # informal, due before: nothing
    assert due.after_closure(bank, closed, row, FUNERAL) == {}
    assert due.after_closure(closed, closed, Row(), FUNERAL) == {}  # already closed
    # Entered at 00:30 (BST) on Monday 14 June 2027, closed that same day: the day a stage is
    # entered never counts, so nothing moves (in UTC it was entered on Sunday the 13th).
    june = date(2027, 6, 14)
    row = Row()
    row.stage_entered_at = parse_instant("2027-06-14T00:30", LONDON)
    row.stage_due, row.formal_since, row.resolution_due = date(2027, 6, 21), None, None
    assert row.stage_entered_at.date() == date(2027, 6, 13)
    assert due.after_closure(bank, bank.with_days({june: "Flood"}), row, june, LONDON) == {}


@pytest.fixture
def drp_cli(drp_env: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Any:
    """`drp ...` in this process (exit status, stdout, stderr), on a fresh database."""
    from drp.cli import app
    from drp.cli.shared import run as run_cli

    def drp(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["drp", *args])
        code = 0
        try:
            run_cli(app)
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return drp


def test_the_command_line_closes_a_day_lists_it_and_counts_without_it(
        drp_cli: Any, drp_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Runtime, "suggest", lambda self, texts: [])  # no classifier to train
    # Before drp init, the bank holidays alone, and no database is made.
    assert drp_cli("calendar", "add", "2027-03-18", "1")[1].strip() == "2027-03-19"
    assert not (drp_env / "drp.db").exists()
    assert drp_cli("init")[0] == 0
    assert drp_cli("org", "load", str(DATA / "org.yaml"))[0] == 0
    assert drp_cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
                   "--due", "2027-03-22", "--now", "2027-03-10T09:00")[0] == 0
    code, out, err = drp_cli("calendar", "close", "2027-03-19", "--reason", "State funeral",
                             "--as", "iro.ada", "--now", ANNOUNCED)
    assert (code, out) == (1, "") and err.strip().count("\n") == 0
    assert "iro.ada may not close a day: only an administrator may" in err
    code, out, err = drp_cli("calendar", "close", "9999-12-31", "--reason", "No end")
    assert code == 1 and "outside the dates drp accepts" in err and "--" not in err
    code, out, _ = drp_cli("calendar", "close", "2027-03-19", "--reason", "State funeral",
                           "--now", ANNOUNCED)
    assert code == 0 and "2027-03-19 is a closure day (State funeral)" in out
    assert "1 open alert(s): 1" in out
    code, out, err = drp_cli("calendar", "close", "2027-03-19", "--reason", "Again",
                             "--as", "admin.max", "--now", ANNOUNCED)
    assert code == 1 and "already a closure day" in err
    listed = json.loads(drp_cli("calendar", "closures", "--json")[1])
    assert [(c["day"], c["reason"]) for c in listed] == [("2027-03-19", "State funeral")]
    assert "2027-03-19  State funeral  (by system," in drp_cli("calendar", "closures")[1]
    assert drp_cli("calendar", "add", "2027-03-18", "1")[1].strip() == "2027-03-22"
    assert drp_cli("calendar", "between", "2027-03-18", "2027-03-22")[1].strip() == "1"
    shown = json.loads(drp_cli("alert", "show", "1", "--as", "iro.ada", "--json")[1])
    assert shown["stage_due"] == "2027-03-23"
    assert shown["events"][-1]["kind"] == "due_recomputed"
