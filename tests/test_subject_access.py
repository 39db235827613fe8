"""Subject access: `drp child export` gives everything drp holds about one child and nothing
about any other, lists the people named for the council to redact, is recorded in the access
log, and is the IRO manager's alone (anyone else, and an unknown child, get the same one
line)."""

from __future__ import annotations

import json
import re
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
from drp.clock import FixedClock, parse_instant
from drp.errors import NotFound
from drp.ladder.protocol import Protocol
from drp.models import AccessLog
from drp.notify import Notifier
from drp.subject_access import OTHER_CHILD, export_child
from notifications.outbox import deliver
from notifications.render import Renderer
from notifications.transports import FileTransport

from .conftest import LONDON, backends
from .support.cli import Cli

EXPORTED_AT = "2027-03-10T09:00"


def _step(engine: Engine, protocol: Protocol, when: str, fn: Callable[[AlertService], Any]
          ) -> Any:
    # The summary in the e-mails: so the other child's summary would show if its mail leaked.
    notifier = Notifier(renderer=Renderer(detail="summary"), base_url="https://drp.example")
    with db.transaction(engine) as session, audit.coming_from(audit.Origin.cli("test")):
        return fn(AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                               clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON,
                               notifier=notifier))


def two_children(engine: Engine, protocol: Protocol, mail: Path) -> None:
    """R100 and R101: one team, one team manager, one social worker and head of service;
    their alerts linked; one alert misfiled on R101 and moved to R100; a search naming both."""
    def step(when: str, fn: Callable[[AlertService], Any]) -> Any:
        return _step(engine, protocol, when, fn)

    step("2027-03-01T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "ALPHA plan not shared", detail="ALPHA detail"))           # 1
    step("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ben", "R101", "OMEGA contact stopped", detail="OMEGA detail about R101"))  # 2
    step("2027-03-01T11:00", lambda s: s.raise_alert(
        "iro.ben", "R101", "BETA really about R100", separate=True))                  # 3
    step("2027-03-02T09:00", lambda s: s.respond(
        1, "tm.fay", "ALPHA response", [ActionIn("ALPHA action", date(2027, 3, 12))]))
    step("2027-03-02T10:00", lambda s: s.respond(2, "tm.fay", "OMEGA response"))
    step("2027-03-03T09:00", lambda s: s.link(1, 2, "irom.cat"))
    step("2027-03-03T10:00", lambda s: s.move(3, "irom.cat", "R100", "Raised on R101 in error"))
    step("2027-03-04T09:00", lambda s: s.escalate(2, "iro.ben", "OMEGA reason"))
    step("2027-03-04T10:00", lambda s: s.show(1, "iro.ada"))
    step("2027-03-04T11:00", lambda s: s.show(2, "iro.ben"))
    step("2027-03-04T12:00", lambda s: s.search("R10", "irom.cat"))
    deliver(engine, FileTransport(mail, "drp@riverside.example"),
            lambda: parse_instant("2027-03-05T09:00", LONDON), renderer=Renderer(detail="summary"))


def corrected_and_handed_over(engine: Engine, protocol: Protocol) -> None:
    """After two_children: a response of R100's alert and the detail of R101's corrected,
    and every case note handed over (`drp export casenotes`)."""
    from drp.casenotes import export as export_casenotes
    from drp.correction import correct

    _step(engine, protocol, "2027-03-04T13:00", lambda s: correct(
        s, 1, "iro.ada", "response", "ALPHA response, corrected", "ALPHA named a parent",
        response=2))
    _step(engine, protocol, "2027-03-04T13:05", lambda s: correct(
        s, 2, "iro.ben", "detail", "OMEGA detail, corrected", "OMEGA named a parent"))
    export_casenotes(engine, protocol, LONDON, since=None,
                     now=parse_instant("2027-03-06T09:00", LONDON), again=False,
                     write=lambda notes: None, origin=audit.Origin.cli("test"))


def export(engine: Engine, ref: str, username: str) -> dict[str, Any]:
    return export_child(engine, ref=ref, username=username,
                        now=parse_instant(EXPORTED_AT, LONDON), origin=audit.Origin.cli("t"))


def numbers_under(value: Any, keys: set[str]) -> set[int]:
    """Every number under one of `keys`, at any depth (lists of them too)."""
    found: set[int] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k in keys:
                for item in v if isinstance(v, list) else [v]:
                    if isinstance(item, int) and not isinstance(item, bool):
                        found.add(item)
            found |= numbers_under(v, keys)
    elif isinstance(value, list):
        for v in value:
            found |= numbers_under(v, keys)
    return found


@backends
def test_the_export_holds_the_childs_record_and_nothing_of_another_child(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    two_children(org, protocol, tmp_path / "mail")
    corrected_and_handed_over(org, protocol)
    doc = export(org, "R100", "irom.cat")
    text = json.dumps(doc)

    # The child's record: both its alerts (the one moved here too), with everything on them.
    assert doc["child"] == "R100" and doc["record"]["ref"] == "R100"
    assert [a["id"] for a in doc["alerts"]] == [1, 3]
    first = doc["alerts"][0]
    assert first["summary"] == "ALPHA plan not shared" and first["detail"] == "ALPHA detail"
    assert [e["kind"] for e in first["events"]][:2] == ["raised", "responded"]
    assert first["actions"][0]["text"] == "ALPHA action"
    assert first["related"] == []
    # Its corrections (the original, the reason, who, when) and its case notes' marks.
    assert [{k: c[k] for k in ("field", "event", "original", "reason", "by", "at")}
            for c in first["corrections"]] == [{
        "field": "response", "event": 2, "original": "ALPHA response",
        "reason": "ALPHA named a parent", "by": "iro.ada", "at": "2027-03-04T13:00:00+00:00"}]
    assert first["events"][1]["comment"] == "ALPHA response, corrected"
    assert first["events"][-1]["kind"] == "corrected"
    handed = {e["seq"] for e in first["events"] if e["kind"] in ("raised", "responded")}
    assert handed and handed <= {m["event"] for m in first["casenote_exports"]}
    assert {m["exported_at"] for m in first["casenote_exports"]} == {
        "2027-03-06T09:00:00+00:00"}
    assert doc["alerts"][1]["casenote_exports"] and doc["alerts"][1]["corrections"] == []
    assert "corrected a text" in [p for t in doc["third_parties"] if t["username"] == "iro.ada"
                                  for p in t["appears_as"]]
    assert {m["alert"] for m in doc["emails"]} == {1, 3} and len(doc["emails"]) >= 5
    assert any("ALPHA plan not shared" in m["text"] for m in doc["emails"])
    log = doc["access_log"]
    assert {"actor": "iro.ada", "action": "view", "alert": 1} in [
        {k: r[k] for k in ("actor", "action", "alert")} for r in log]
    search = [r for r in log if r["action"] == "search"]
    assert len(search) == 1 and "R100" in search[0]["detail"]
    assert OTHER_CHILD in search[0]["detail"]
    moved = [e for e in doc["alerts"][1]["events"] if e["kind"] == "moved"]
    assert moved and (moved[0]["data"]["from"], moved[0]["data"]["to"]) == (OTHER_CHILD, "R100")

    # Nothing of the other child: its reference, its alert's text, its alert's number.
    assert "R101" not in text
    assert "OMEGA" not in text
    assert numbers_under(doc, {"id", "alert", "related", "other", "alert_id"}) <= {1, 3}
    assert not re.search(r"alert\s+#?2\b", text, re.IGNORECASE)
    linked = [e for e in first["events"] if e["kind"] == "linked"]
    assert linked and linked[0]["data"] == {"other": None}

    # The people named, by username and name, for the council to redact.
    third = {p["username"]: p for p in doc["third_parties"]}
    assert {"iro.ada", "tm.fay", "irom.cat", "sw.dan"} <= set(third)
    assert third["tm.fay"]["name"] == "Fay Manager"
    assert "owns an agreed action" in third["tm.fay"]["appears_as"]
    assert "iro.ben" in third  # raised alert 3 before it was moved here, and was mailed

    # The export itself is in the access log: one row, and one per alert exported.
    with Session(org) as session:
        rows = session.exec(select(AccessLog).where(
            col(AccessLog.action).in_(["child_export", "exported"]),
            AccessLog.actor == "irom.cat")).all()
    assert sorted((r.action, r.alert_id, r.actor) for r in rows) == [
        ("child_export", None, "irom.cat"), ("exported", 1, "irom.cat"),
        ("exported", 3, "irom.cat")]
    assert all(r.channel == "cli" for r in rows)


@backends
def test_only_the_iro_manager_exports_and_refusals_say_nothing_of_existence(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    two_children(org, protocol, tmp_path / "mail")
    said = {}
    for ref, username in (("R100", "iro.ada"), ("R100", "tm.fay"), ("R100", "admin.max"),
                          ("R100", "dcs.lou"), ("R999", "irom.cat"), ("R999", "iro.ada"),
                          ("R100", "nobody")):
        with pytest.raises(NotFound) as refused:
            export(org, ref, username)
        said[ref, username] = refused.value.message
    # An unknown child and a child not theirs to export read alike, but for what was asked.
    assert said["R100", "iro.ada"].replace("R100", "R999") == said["R999", "iro.ada"]
    assert said["R999", "irom.cat"] == (
        "there is no child 'R999' whose record irom.cat may export; check the reference"
        " (only an IRO manager exports a child's record)")
    with Session(org) as session:
        refusals = session.exec(select(AccessLog).where(AccessLog.action == "refused")).all()
        exported = session.exec(select(AccessLog).where(
            col(AccessLog.action).in_(["child_export", "exported"]))).all()
    assert len([r for r in refusals if "(child export)" in (r.detail or "")]) == 7
    assert exported == []


def test_drp_child_export_on_the_command_line(cli: Cli, tmp_path: Path) -> None:
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "ALPHA",
        "--now", "2027-03-01T09:00")
    cli("alert", "raise", "--as", "iro.ben", "--child", "R101", "--summary", "OMEGA",
        "--now", "2027-03-01T10:00")
    cli("alert", "link", "1", "2", "--as", "irom.cat", "--now", "2027-03-02T09:00")
    doc = json.loads(cli("child", "export", "R100", "--as", "irom.cat").stdout)
    assert doc["child"] == "R100" and [a["id"] for a in doc["alerts"]] == [1]
    assert {"child", "alerts", "access_log"} <= set(doc) and doc["alerts"][0]["events"]
    assert "R101" not in json.dumps(doc) and "OMEGA" not in json.dumps(doc)
    # To a file of its owner's alone; the reminder to redact on stderr.
    written = cli("child", "export", "R100", "--as", "irom.cat", "--format", "json",
                  "--out", str(tmp_path / "r100.json"))
    assert written.stdout == "" and "redact" in written.stderr
    assert json.loads((tmp_path / "r100.json").read_text())["child"] == "R100"
    assert (tmp_path / "r100.json").stat().st_mode & 0o077 == 0
    # Refused alike: one line, exit 1, for another's child and for no child.
    assert cli.refused("child", "export", "R100", "--as", "iro.ada") == (
        "drp: there is no child 'R100' whose record iro.ada may export; check the reference"
        " (only an IRO manager exports a child's record)")
    assert cli.refused("child", "export", "R999", "--as", "iro.ada") == (
        "drp: there is no child 'R999' whose record iro.ada may export; check the reference"
        " (only an IRO manager exports a child's record)")
    assert cli.refused("child", "export", "R100", "--as", "admin.max").startswith(
        "drp: there is no child 'R100' whose record admin.max may export")
    assert "use json" in cli.refused("child", "export", "R100", "--as", "irom.cat",
                                     "--format", "xml")
    assert cli.rows("SELECT count(*) FROM access_log WHERE action = 'child_export'") == [(2,)]
