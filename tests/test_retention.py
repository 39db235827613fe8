"""Retention: what is past its date goes, and nothing else; a second run removes nothing; a
run failing halfway leaves each batch whole and a rerun finishes; the audit trail's tables
still refuse every change outside retention and correction (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from drp import audit, db, retention
from drp.clock import parse_instant
from drp.retention import Policy, purpose, years_before

from .conftest import LONDON, Run, backends


def at(when: str) -> datetime:
    return parse_instant(when, LONDON)


def ids(engine: Engine, sql: str) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(text(sql)).scalars())


def scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def mail(engine: Engine, key: str, alert_id: int | None, sent: str | None) -> int:
    with engine.begin() as conn:
        return int(conn.execute(text(
            "INSERT INTO outbox (key, message, alert_id, recipient, subject, text_body,"
            " html_body, context, status, attempts, created_at, next_attempt_at, sent_at)"
            " VALUES (:key, 'raised', :alert, 'iro.ada', 'Alert', 'the body', '<p>the body</p>',"
            " NULL, :status, 0, :created, :created, :sent) RETURNING id"),
            {"key": key, "alert": alert_id, "status": "sent" if sent else "pending",
             "created": at("2027-01-04T09:00"), "sent": at(sent) if sent else None},
        ).scalar_one())


def logged(engine: Engine, when: str, alert_id: int | None = None) -> int:
    with db.transaction(engine) as session:
        audit.record(session, None, at=at(when), actor="iro.ada", action="view",
                     alert_id=alert_id)
    return max(ids(engine, "SELECT id FROM access_log"))


@pytest.fixture
def case(run: Run, org: Engine) -> dict[str, int]:
    """R100 born 15 June 2002 (25 on 15 June 2027): a withdrawn concern (due on that
    birthday), linked to an open one (never due while open). R101, no date of birth: good
    practice recorded 5 March 2026 (due 25 years later). Access-log rows and e-mails around
    their dates."""
    with org.begin() as conn:
        conn.execute(text("UPDATE child SET dob = :d WHERE ref = 'R100'"), {"d": date(2002, 6, 15)})
    a1 = run("2026-03-02T09:00", lambda s: s.raise_alert("iro.ada", "R100", "Old concern")).id
    run("2026-03-03T09:00", lambda s: s.withdraw(a1, "iro.ada", "Sorted informally"))
    a2 = run("2026-03-04T09:00", lambda s: s.raise_alert("iro.ada", "R100", "Open concern",
                                                          separate=True)).id
    run("2026-03-04T10:00", lambda s: s.link(a2, a1, "iro.ada"))
    run("2026-03-04T11:00", lambda s: s.show(a1, "iro.ada"))  # an access-log row on a1
    run("2026-03-04T11:05", lambda s: s.show(a2, "iro.ada"))  # and on a2
    a3 = run("2026-03-05T09:00", lambda s: s.record_good_practice(
        "iro.ben", "R101", "Good work")).id
    return {
        "a1": a1, "a2": a2, "a3": a3,
        "log_old": logged(org, "2025-06-14T12:00"),  # two years and a day before the run
        "log_new": logged(org, "2025-06-16T12:00"),
        "mail_a1": mail(org, "m1", a1, "2027-03-17T09:00"),  # 90 days before: blanked
        "mail_old": mail(org, "m2", a2, "2027-03-16T09:00"),
        "mail_new": mail(org, "m3", a2, "2027-03-18T09:00"),  # 89 days: kept
        "mail_pending": mail(org, "m4", None, None),
    }


def run_retention(engine: Engine, when: str, **kw: Any) -> retention.RetentionReport:
    policy = kw.pop("policy", Policy())
    return retention.run(engine, policy, now=at(when), tz=LONDON, **kw)


@backends
def test_retention_removes_exactly_what_is_past_its_date(org: Engine,
                                                         case: dict[str, int]) -> None:
    a1, a2, a3 = case["a1"], case["a2"], case["a3"]
    events_a1 = ids(org, f"SELECT id FROM event WHERE alert_id = {a1}")
    kept_events = ids(org, f"SELECT id FROM event WHERE alert_id <> {a1}")
    logs_a1 = ids(org, f"SELECT id FROM access_log WHERE alert_id = {a1}")
    # The day before R100's 25th birthday: its alert is not due yet, nor the log row two
    # years old to the minute.
    before = run_retention(org, "2027-06-14T12:00", dry_run=True)
    assert before.removed.get("alert") is None and before.removed.get("access_log") is None

    report = run_retention(org, "2027-06-15T12:00")
    assert report.removed["alert"] == [a1]
    assert report.removed["event"] == events_a1
    assert ids(org, "SELECT id FROM alert") == sorted([a2, a3])
    assert ids(org, "SELECT id FROM event") == kept_events
    assert ids(org, "SELECT alert_id FROM alert_link") == []  # both ways, with a1
    assert ids(org, f"SELECT count(*) FROM access_log WHERE alert_id = {a2}") == [1]
    assert ids(org, "SELECT id FROM outbox") == sorted(
        [case["mail_old"], case["mail_new"], case["mail_pending"]])  # a1's went with it
    assert report.removed["mail_body"] == [case["mail_old"]]
    assert report.removed["access_log"] == sorted([*logs_a1, case["log_old"]])
    bodies = {row[0]: row[1:] for row in Session(org).execute(text(
        "SELECT id, text_body, html_body FROM outbox")).all()}
    assert bodies[case["mail_old"]] == ("", "")
    assert bodies[case["mail_new"]] == ("the body", "<p>the body</p>")
    assert bodies[case["mail_pending"]] == ("the body", "<p>the body</p>")
    assert case["log_new"] in ids(org, "SELECT id FROM access_log")

    # The audit record: counts and ids, never content.
    with org.connect() as conn:
        rows = conn.execute(text("SELECT what, count, ids, rule FROM retention_log WHERE"
                                 " run = :r"), {"r": report.run}).all()
    recorded = {what: (count, json.loads(i) if isinstance(i, str) else i)
                for what, count, i, _ in rows}
    assert recorded["alert"] == (1, [a1])
    assert recorded["event"] == (len(events_a1), events_a1)
    assert recorded["alert_link"][0] == 2
    assert recorded["mail_body"] == (1, [case["mail_old"]])
    assert "concern" not in json.dumps([list(map(str, r)) for r in rows]).lower()

    again = run_retention(org, "2027-06-15T12:00")
    assert again.counts == {} and again.batches == 0
    assert scalar(org, f"SELECT count(*) FROM retention_log WHERE run = '{again.run}'") == 0

    # 25 years after closure, R101's good practice (no date of birth) goes too.
    assert run_retention(org, "2051-03-04T12:00").removed.get("alert") is None
    assert run_retention(org, "2051-03-05T12:00").removed["alert"] == [a3]


@backends
def test_a_dry_run_says_what_would_go_and_changes_nothing(org: Engine,
                                                          case: dict[str, int]) -> None:
    events = scalar(org, "SELECT count(*) FROM event")
    dry = run_retention(org, "2027-06-15T12:00", dry_run=True)
    assert dry.removed["alert"] == [case["a1"]]
    assert scalar(org, "SELECT count(*) FROM event") == events
    assert scalar(org, "SELECT count(*) FROM retention_log") == 0
    assert scalar(org, "SELECT count(*) FROM write_purpose") == 0
    real = run_retention(org, "2027-06-15T12:00")
    assert (dry.counts, dry.removed) == (real.counts, real.removed)


@backends
def test_a_run_failing_halfway_leaves_each_batch_whole_and_a_rerun_finishes(
        org: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    made = [run(f"2026-03-0{day}T09:00", lambda s, day=day: s.record_good_practice(
        "iro.ben", "R101", f"Good work {day}")).id for day in (2, 3, 4, 5)]
    real = retention.remove_records
    calls = {"alert": 0}

    def failing(session: Session, name: str, rows: list[int]) -> dict[str, list[int]]:
        if name == "alert":
            calls["alert"] += 1
            if calls["alert"] == 3:
                raise RuntimeError("the database went away")
        return real(session, name, rows)

    monkeypatch.setattr(retention, "remove_records", failing)
    with pytest.raises(RuntimeError, match="went away"):
        run_retention(org, "2051-03-06T12:00", policy=Policy(batch=1))
    # Two batches done, each whole (alert and events together, with their record); the third
    # rolled back; the fourth never started.
    assert ids(org, "SELECT id FROM alert") == made[2:]
    assert ids(org, "SELECT DISTINCT alert_id FROM event") == made[2:]
    assert ids(org, "SELECT count(*) FROM retention_log WHERE what = 'alert'") == [2]
    assert ids(org, "SELECT count(*) FROM write_purpose") == [0]

    monkeypatch.setattr(retention, "remove_records", real)
    rerun = run_retention(org, "2051-03-06T12:00", policy=Policy(batch=1))
    assert rerun.removed["alert"] == made[2:] and rerun.batches >= 2
    assert ids(org, "SELECT id FROM alert") == []
    assert ids(org, "SELECT count(*) FROM retention_log WHERE what = 'alert'") == [4]


@backends
def test_the_audit_trail_refuses_changes_outside_retention_and_correction(
        org: Engine, case: dict[str, int]) -> None:
    refused = [
        "UPDATE event SET comment = 'changed'", "DELETE FROM event",
        "UPDATE access_log SET actor = 'someone'", "DELETE FROM access_log",
        "UPDATE retention_log SET count = 0", "DELETE FROM retention_log",
    ]
    run_retention(org, "2027-06-15T12:00")  # leaves no purpose behind it
    for statement in refused:
        with pytest.raises(DatabaseError, match="append-only"), org.begin() as conn:
            conn.execute(text(statement))
    # Each purpose opens only its own door.
    for name, statement in (("correction", "DELETE FROM event"),
                            ("correction", "DELETE FROM access_log"),
                            ("retention", "UPDATE event SET comment = 'changed'"),
                            ("retention", "UPDATE access_log SET actor = 'someone'")):
        with pytest.raises(DatabaseError, match="append-only"), db.transaction(org) as s, \
                purpose(s, name):
            s.execute(text(statement))
    with db.transaction(org) as s, purpose(s, "correction"):
        s.execute(text(f"UPDATE event SET comment = 'fixed' WHERE alert_id = {case['a2']}"
                       " AND seq = 1"))
    with pytest.raises(DatabaseError, match="append-only"), org.begin() as conn:
        conn.execute(text("UPDATE event SET comment = 'again'"))
    with pytest.raises(ValueError, match="not a purpose"), db.transaction(org) as s, \
            purpose(s, "tidying"):
        pass


def test_birthdays_and_years_on_29_february() -> None:
    assert years_before(date(2027, 6, 15), 25) == date(2002, 6, 15)
    # Born 29 February 2004: 25 on 1 March 2029 (no 29th that year), not on the 28th.
    assert years_before(date(2029, 2, 28), 25) < date(2004, 2, 29)
    assert years_before(date(2029, 3, 1), 25) >= date(2004, 2, 29)
    assert years_before(date(2028, 2, 29), 25) == date(2003, 2, 28)


def test_drp_retention_run_from_the_command_line_and_the_flow(
        cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("alert", "raise", "--as", "iro.ben", "--child", "R101", "--summary", "Good work",
        "--kind", "good-practice", "--now", "2026-03-05T09:00")
    dry = cli.json("retention", "run", "--dry-run", "--now", "2051-03-05T12:00", "--json")
    assert dry["dry_run"] and dry["counts"]["alert"] == 1
    assert cli.rows("SELECT count(*) FROM alert") == [(1,)]
    assert "alert: 1" in cli("retention", "run", "--now", "2051-03-05T12:00").stdout
    assert cli.rows("SELECT DISTINCT channel, what FROM retention_log WHERE what = 'alert'"
                    ) == [("cli", "alert")]
    assert "nothing is past its date" in cli("retention", "run", "--now",
                                             "2051-03-05T12:00").stdout
    assert "not a date and time" in cli.refused("retention", "run", "--now", "soon")

    # The nightly flow's task runs the same function (here on what is left: nothing).
    from flows.retention import remove_past_date

    from .conftest import forget_settings

    monkeypatch.setenv("DRP_DATABASE_URL", cli.env["DRP_DATABASE_URL"])
    forget_settings()
    try:
        result = remove_past_date.fn("2051-03-06T12:00+00:00", False)
    finally:
        forget_settings()
    assert result["counts"] == {} and "nothing is past its date" in result["markdown"]
