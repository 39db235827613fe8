"""PDFs for the child's file: `drp child export REF --format pdf` renders the same document as
the JSON (every alert, event, action, referral, e-mail, access-log row and third party, and
nothing of another child), marked OFFICIAL-SENSITIVE on every page; and an alert's case notes
print as a PDF and as plain text (`drp export casenote`), for whoever may see the alert."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import Engine

from drp.casenotes_pdf import MARKING, notes_document, subject_access_document
from drp.clock import parse_instant
from drp.ladder.protocol import Protocol
from drp.subject_access import OTHER_CHILD, as_pdf

from .conftest import LONDON, backends
from .support.cli import Cli, prepare_folder
from .test_casenotes import RECORD_ID, a_case, org_with_record_id
from .test_subject_access import corrected_and_handed_over, export, two_children


def pages(pdf: bytes) -> int:
    return pdf.count(b"/Type /Page\n") or pdf.count(b"/Type /Page ") or pdf.count(
        b"/Type/Page")


@backends
def test_the_pdf_holds_every_part_of_the_json_and_nothing_of_another_child(
        org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    two_children(org, protocol, tmp_path / "mail")
    corrected_and_handed_over(org, protocol)
    document = export(org, "R100", "irom.cat")
    rendered = subject_access_document(document, LONDON)
    text = rendered.all_text()
    data = as_pdf(document, LONDON)
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    for a in document["alerts"]:
        assert f"Alert {a['id']}: {a['summary']}" in text
        for e in a["events"]:
            assert f"{e['seq']}. " in text and e["kind"] in text
            if e["comment"]:
                assert e["comment"] in text
        for x in a["actions"]:
            assert x["text"] in text
        for c in a["corrections"]:
            assert c["original"] in text and c["reason"] in text
        if a["casenote_exports"]:
            assert "Handed over as case notes" in text
    for m in document["emails"]:
        assert m["subject"] in text
    assert text.count("\n" + "2027") + text.count("  ") >= len(document["access_log"])
    for t in document["third_parties"]:
        assert f"({t['username']})" in text
    for note in document["notes"]:
        assert note in text
    # Nothing of the other child: its summaries, responses and reference are not there.
    for other in ("OMEGA", "R101"):
        assert other not in text
    assert OTHER_CHILD in json.dumps(document) and OTHER_CHILD in text
    # Marked at the head and foot of every page, with who exported it and when.
    count = text.count("Page ")
    assert count >= 2 and text.count(MARKING) == 2 * count
    assert "Exported 10 March 2027 09:00 by irom.cat" in text


def test_the_printable_case_notes(org: Engine, protocol: Protocol, tmp_path: Path) -> None:
    from sqlmodel import Session

    from drp.casenotes import notes_of_alert

    a_case(org, protocol)
    with Session(org) as session:
        notes = notes_of_alert(session, protocol, LONDON, 1)
    rendered = notes_document(notes, LONDON, council="Riverside", printed_by="Ada Iro",
                              printed_at=parse_instant("2027-03-10T09:00", LONDON))
    text = rendered.all_text()
    for n in notes:
        assert n.title in text and n.text in text
    assert "Author: Fay Manager" in text and "Date: 2 March 2027 09:00" in text
    assert text.startswith(f"{MARKING}\nRiverside: IRO dispute resolution, case notes for"
                           " alert 1")
    assert "Printed 10 March 2027 09:00 by Ada Iro. Page 1" in text


def test_drp_child_export_and_drp_export_casenote_write_pdfs(tmp_path: Path) -> None:
    prepare_folder(tmp_path, org_with_record_id(tmp_path))
    c = Cli(tmp_path)
    c("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "Plan late",
      "--detail", "Zoë's plan: ünïcode and ελληνικά", "--now", "2027-03-01T09:00")
    c("alert", "respond", "1", "--as", "tm.fay", "--message", "On it",
      "--now", "2027-03-02T09:00")
    out = tmp_path / "R100.pdf"
    c("child", "export", "R100", "--as", "irom.cat", "--format", "pdf", "--out", str(out),
      "--now", "2027-03-03T09:00")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and out.stat().st_mode & 0o777 == 0o600
    assert b"DejaVu" in data  # the font that carries the text beyond Latin-1
    assert "use json or pdf" in c.refused("child", "export", "R100", "--as", "irom.cat",
                                          "--format", "docx")
    # Only an IRO manager exports: anyone else is refused as before, PDF or not.
    assert "may export" in c.refused("child", "export", "R100", "--as", "iro.ada",
                                     "--format", "pdf", "--out", str(tmp_path / "no.pdf"))
    text = c("export", "casenote", "1", "--as", "iro.ada", "--now", "2027-03-03T09:00").stdout
    assert text.startswith(f"IRO dispute, alert 1: Raised\nChild: {RECORD_ID} (drp reference"
                           " R100)\nAuthor: Ada Iro\n")
    assert "Zoë's plan: ünïcode and ελληνικά" in text and "Author: Fay Manager" in text
    notes = tmp_path / "notes.pdf"
    c("export", "casenote", "1", "--as", "iro.ada", "--format", "pdf", "--out", str(notes),
      "--now", "2027-03-03T09:00")
    assert notes.read_bytes().startswith(b"%PDF-")
    # Whoever may not see the alert is refused, and the print is in the access log.
    assert "no alert 1" in c.refused("export", "casenote", "1", "--as", "tm.gus")
    assert ("iro.ada", "print", 1) in c.rows(
        "SELECT actor, action, alert_id FROM access_log")
