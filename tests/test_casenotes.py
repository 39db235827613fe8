"""Case notes for the child's file (drp.casenotes, `drp export casenotes`): each alert's
raising, responses, escalations, outcome and referral to Cafcass as one note each, keyed by
the child's record id in the council's system (its reference where none is given), with the
author by name, the date, the type and the text; every note exported once, a rerun giving
nothing new unless --again; nothing marked when the writing fails."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import audit, db
from drp.alerts import ActionIn, AlertService
from drp.calendar import WorkingCalendar
from drp.casenotes import (
    Note,
    as_csv,
    as_json,
    export,
    note_text,
    notes_of_alert,
)
from drp.clock import FixedClock, parse_instant
from drp.errors import ConfigError, DrpError
from drp.ladder.protocol import Protocol
from drp.models import AccessLog, CasenoteExport, Child
from drp.org import load_org

from .conftest import DATA, LONDON, backends
from .support.cli import Cli

RECORD_ID = "LCS-555017"


def org_with_record_id(folder: Path) -> Path:
    """tests/data/org.yaml with R100's record id in the council's system (R101 has none)."""
    path = folder / "org.yaml"
    path.write_text((DATA / "org.yaml").read_text().replace(
        "{ref: R100,", f"{{ref: R100, record_id: {RECORD_ID},"))
    return path


def step(engine: Engine, protocol: Protocol, when: str, fn: Callable[[AlertService], Any]
         ) -> Any:
    with db.transaction(engine) as session, audit.coming_from(audit.Origin.cli("test")):
        return fn(AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                               clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON))


def a_case(engine: Engine, protocol: Protocol) -> None:
    """R100's alert 1 from raising to resolution, with a referral to Cafcass, and events that
    are no notes (an acknowledgement, a hold and its end, an action done); R101's alert 2
    raised only."""
    def at(when: str, fn: Callable[[AlertService], Any]) -> Any:
        return step(engine, protocol, when, fn)

    at("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "Care plan not shared", detail="The plan was due on 1 February.",
        impact="Placement unsettled", outcome_wanted="Plan shared by Friday"))
    at("2027-03-01T10:00", lambda s: s.raise_alert("iro.ben", "R101", "Contact stopped"))
    at("2027-03-01T11:00", lambda s: s.acknowledge(1, "tm.fay"))
    at("2027-03-02T09:00", lambda s: s.respond(
        1, "tm.fay", "We will share it", [ActionIn("Share the plan", date(2027, 3, 12))]))
    at("2027-03-03T09:00", lambda s: s.escalate(1, "iro.ada", "Not shared yet"))
    at("2027-03-04T09:00", lambda s: s.refer(
        1, "iro.ada", "Drift in permanence", legal_advice="Ann Counsel, legal services",
        advised_on=date(2027, 3, 3)))
    at("2027-03-05T09:00", lambda s: s.cafcass_response(1, "iro.ada", "accepted",
                                                        note="Cafcass will review"))
    at("2027-03-08T09:00", lambda s: s.action_done(1, 1, "tm.fay"))
    at("2027-03-09T09:00", lambda s: s.resolve(1, "iro.ada", "Plan shared and agreed"))


def run_export(engine: Engine, protocol: Protocol, when: str = "2027-03-10T09:00", *,
               since: str | None = None, again: bool = False) -> list[Note]:
    written: list[list[Note]] = []
    export(engine, protocol, LONDON, since=parse_instant(since, LONDON) if since else None,
           now=parse_instant(when, LONDON), again=again, write=written.append,
           origin=audit.Origin.cli("test"))
    assert len(written) == 1
    return written[0]


@backends
def test_each_step_of_a_dispute_is_one_note_keyed_by_the_record_id(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    with db.transaction(org) as session:
        load_org(session, org_with_record_id(tmp_path), protocol)
    a_case(org, protocol)
    notes = run_export(org, protocol)
    mine = [n for n in notes if n.alert_id == 1]
    assert [n.type for n in mine] == [
        "iro_dispute_raised", "iro_dispute_response", "iro_dispute_escalated",
        "iro_cafcass_referral", "iro_cafcass_referral", "iro_dispute_outcome"]
    assert {n.record_id for n in mine} == {RECORD_ID} and {n.child_ref for n in mine} == {"R100"}
    assert [n.author for n in mine] == ["Ada Iro", "Fay Manager", "Ada Iro", "Ada Iro",
                                        "Ada Iro", "Ada Iro"]
    assert [n.date for n in mine] == [parse_instant(t, LONDON) for t in (
        "2027-03-01T09:00", "2027-03-02T09:00", "2027-03-03T09:00", "2027-03-04T09:00",
        "2027-03-05T09:00", "2027-03-09T09:00")]
    raised, response, escalated, referred, cafcass, outcome = (n.text for n in mine)
    assert raised.startswith("Alert 1 raised by Ada Iro on 1 March 2027 09:00, at Informal")
    for words in ("Summary: Care plan not shared", "What happened: The plan was due on 1",
                  "Impact on the child: Placement unsettled",
                  "Outcome wanted: Plan shared by Friday"):
        assert words in raised
    assert "We will share it" in response and "Fay Manager" in response
    assert "from Informal resolution to Stage 1: Team manager" in escalated
    assert "Reason: Not shared yet" in escalated
    assert "Reason: Drift in permanence" in referred
    assert "Legal advice: Ann Counsel, legal services (given on 2027-03-03)" in referred
    assert "Cafcass accepted the referral" in cafcass and "Note: Cafcass will review" in cafcass
    assert "resolved by Ada Iro" in outcome and "Outcome: Plan shared and agreed" in outcome
    # R101 has no record id in the file: its notes carry its reference.
    assert [(n.record_id, n.type) for n in notes if n.alert_id == 2] == [
        ("R101", "iro_dispute_raised")]
    # The note id is stable and unique: the event's.
    assert len({n.note_id for n in notes}) == len(notes) == 7


@backends
def test_a_note_exported_once_is_not_exported_again_unless_asked(
        org: Engine, protocol: Protocol) -> None:
    a_case(org, protocol)
    first = run_export(org, protocol, "2027-03-10T09:00")
    assert len(first) == 7
    assert run_export(org, protocol, "2027-03-10T10:00") == []
    step(org, protocol, "2027-03-11T09:00", lambda s: s.respond(2, "tm.fay", "Contact restarts"))
    later = run_export(org, protocol, "2027-03-11T10:00")
    assert [(n.alert_id, n.type) for n in later] == [(2, "iro_dispute_response")]
    again = run_export(org, protocol, "2027-03-12T09:00", again=True)
    assert [n.note_id for n in again] == [n.note_id for n in first + later]
    with Session(org) as session:
        marks = session.exec(select(CasenoteExport)).all()
        assert len(marks) == 8
        assert {m.exported_at for m in marks} == {parse_instant("2027-03-12T09:00", LONDON)}
        logged = session.exec(select(AccessLog).where(
            col(AccessLog.action).in_(("casenotes_export", "exported")))
            .order_by(col(AccessLog.id))).all()
    runs = [r.detail for r in logged if r.action == "casenotes_export"]
    assert runs == ["7 case notes on 2 alerts (all)", "0 case notes on 0 alerts (all)",
                    "1 case notes on 1 alerts (all)", "8 case notes on 2 alerts (all, again)"]
    assert {(r.alert_id, r.channel) for r in logged if r.action == "exported"} == {
        (1, "cli"), (2, "cli")}


@backends
def test_since_leaves_out_older_notes_and_they_stay_unexported(
        org: Engine, protocol: Protocol) -> None:
    a_case(org, protocol)
    recent = run_export(org, protocol, since="2027-03-05T00:00")
    assert [n.type for n in recent] == ["iro_cafcass_referral", "iro_dispute_outcome"]
    older = run_export(org, protocol)
    assert len(older) == 5 and not {n.note_id for n in older} & {n.note_id for n in recent}


@backends
def test_two_exports_at_once_give_each_note_once_and_neither_fails(
        org: Engine, protocol: Protocol) -> None:
    """A second export started while the first is writing waits for it, then gives only what
    it did not (nothing here): it does not read the notes unmarked and then fail to mark them
    (a unique key's error on PostgreSQL, "database is locked" on SQLite)."""
    import threading

    from sqlalchemy import event, text

    a_case(org, protocol)
    second: list[Any] = []  # its notes, or its error
    started, read = threading.Event(), threading.Event()

    def first_statement_done(*_args: Any) -> None:
        if threading.current_thread().name == "second export":
            read.set()

    def second_export() -> None:
        try:
            started.set()
            second.append(run_export(org, protocol, "2027-03-10T09:01"))
        except BaseException as exc:  # (reported by the test's thread below)
            second.append(exc)

    def waits_on_a_lock() -> bool:
        with org.connect() as conn:
            return bool(conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND wait_event = 'advisory' AND datname = current_database()")).scalar_one())

    def write(notes: list[Note]) -> None:
        """The first export, having read and marked its notes, lets the second start and
        goes on once the second has read (as the second did, unmarked notes and all, before
        the fix) or waits on a lock. PostgreSQL tells that it waits; SQLite's wait is inside
        its driver, so there the first gives the second's first read a bounded time."""
        written.append(notes)
        thread.start()
        assert started.wait(30)
        if org.dialect.name != "postgresql":
            read.wait(2)
            return
        for _ in range(1200):
            if read.is_set() or waits_on_a_lock():
                return
            read.wait(0.05)
        raise AssertionError("the second export neither read nor waited")

    written: list[list[Note]] = []
    thread = threading.Thread(target=second_export, name="second export")
    event.listen(org, "after_cursor_execute", first_statement_done)
    try:
        export(org, protocol, LONDON, since=None, now=parse_instant("2027-03-10T09:00", LONDON),
               again=False, write=write)
    finally:
        if thread.ident is not None:  # (started: it ends once the first's transaction has)
            thread.join(60)
        event.remove(org, "after_cursor_execute", first_statement_done)
    assert not thread.is_alive()
    assert len(written[0]) == 7
    assert second == [[]], second
    with Session(org) as session:
        assert len(session.exec(select(CasenoteExport)).all()) == 7


@backends
def test_a_failed_write_marks_nothing(org: Engine, protocol: Protocol) -> None:
    a_case(org, protocol)

    def broken(notes: list[Note]) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        export(org, protocol, LONDON, since=None, now=parse_instant("2027-03-10T09:00", LONDON),
               again=False, write=broken)
    with Session(org) as session:
        assert session.exec(select(CasenoteExport)).all() == []
    assert len(run_export(org, protocol)) == 7


def test_csv_and_json_carry_every_field_and_no_formula(org: Engine, protocol: Protocol) -> None:
    step(org, protocol, "2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "=HYPERLINK(\"http://x\") plan late"))
    notes = run_export(org, protocol)
    rows = list(csv.DictReader(io.StringIO(as_csv(notes, LONDON))))
    assert list(rows[0]) == ["note_id", "record_id", "child_ref", "alert_id", "type", "title",
                             "author", "author_username", "date", "text"]
    assert rows[0]["record_id"] == "R100" and rows[0]["author"] == "Ada Iro"
    assert rows[0]["date"] == "2027-03-01T09:00:00+00:00"
    assert "Summary: =HYPERLINK" in rows[0]["text"] and not rows[0]["text"].startswith("=")
    document = json.loads(as_json(notes, LONDON, parse_instant("2027-03-10T09:00", LONDON)))
    assert document["format_version"] == 1
    assert document["notes"][0]["type"] == "iro_dispute_raised"
    assert document["notes"][0]["title"] == "IRO dispute, alert 1: Raised"


def test_the_printable_note_in_plain_text(org: Engine, protocol: Protocol, tmp_path: Path
                                          ) -> None:
    with db.transaction(org) as session:
        load_org(session, org_with_record_id(tmp_path), protocol)
    a_case(org, protocol)
    with Session(org) as session:
        notes = notes_of_alert(session, protocol, LONDON, 1)
    text = note_text(notes, LONDON)
    assert text.startswith(f"IRO dispute, alert 1: Raised\nChild: {RECORD_ID} (drp reference"
                           " R100)\nAuthor: Ada Iro\nDate: 1 March 2027 09:00\n")
    assert text.count("\nAuthor: ") == 6


def test_the_organisation_file_gives_each_child_its_own_record_id(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    with db.transaction(org) as session:
        load_org(session, org_with_record_id(tmp_path), protocol)
    with Session(org) as session:
        assert {c.ref: c.record_id for c in session.exec(select(Child))} == {
            "R100": RECORD_ID, "R101": None, "R200": None}
    twice = tmp_path / "twice.yaml"
    twice.write_text(org_with_record_id(tmp_path).read_text().replace(
        "{ref: R101,", f"{{ref: R101, record_id: {RECORD_ID},"))
    with pytest.raises((ConfigError, DrpError), match="record id LCS-555017 is given to two"), \
            db.transaction(org) as session:
        load_org(session, twice, protocol)
    bad = tmp_path / "bad.yaml"
    bad.write_text((DATA / "org.yaml").read_text().replace(
        "{ref: R100,", "{ref: R100, record_id: \"12 34\","))
    with pytest.raises((ConfigError, DrpError), match="record_id"), \
            db.transaction(org) as session:
        load_org(session, bad, protocol)


def test_drp_export_casenotes_on_the_command_line(tmp_path: Path) -> None:
    from .support.cli import prepare_folder

    prepare_folder(tmp_path, org_with_record_id(tmp_path))
    c = Cli(tmp_path)
    c("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "Plan late",
      "--now", "2027-03-01T09:00")
    c("alert", "respond", "1", "--as", "tm.fay", "--message", "On it",
      "--now", "2027-03-02T09:00")
    first = json.loads(c("export", "casenotes", "--since", "2027-03-01T00:00",
                         "--now", "2027-03-03T09:00").stdout)
    assert [(n["record_id"], n["type"], n["author"]) for n in first["notes"]] == [
        (RECORD_ID, "iro_dispute_raised", "Ada Iro"),
        (RECORD_ID, "iro_dispute_response", "Fay Manager")]
    rerun = c("export", "casenotes", "--since", "2027-03-01T00:00", "--format", "csv",
              "--now", "2027-03-03T10:00")
    assert rerun.stdout.splitlines() == [
        "note_id,record_id,child_ref,alert_id,type,title,author,author_username,date,text"]
    assert "nothing new since the last export" in rerun.stderr
    out = tmp_path / "notes.csv"
    c("export", "casenotes", "--again", "--format", "csv", "--out", str(out),
      "--now", "2027-03-03T11:00")
    assert len(list(csv.DictReader(out.open(newline="")))) == 2
    assert out.stat().st_mode & 0o777 == 0o600
    assert "is not available" in c.refused("export", "casenotes", "--format", "xml")


def test_a_notes_title_says_the_event_in_the_timelines_words() -> None:
    from drp import casenotes
    from drp.alerts.records import EVENT_WORDS
    from drp.models import Alert
    from drp.web.routes import alert as alert_page

    assert alert_page.EVENT_WORDS is EVENT_WORDS  # one home: drp.alerts.records
    alert, record = Alert(id=12, kind="concern"), Alert(id=4, kind="good_practice")
    assert {kind: casenotes.title(kind, alert) for kind in casenotes.NOTE_TYPES} == {
        kind: f"IRO dispute, alert 12: {EVENT_WORDS[kind]}" for kind in casenotes.NOTE_TYPES}
    assert casenotes.title("good_practice", record) == (
        "IRO good practice, record 4: Good practice recorded")
    assert all(isinstance(code, str) for code in casenotes.NOTE_TYPES.values())
