"""PDFs for the child's file (fpdf2, pure Python): the printable case notes of an alert
(drp.casenotes) and the subject access export (drp.subject_access), each page marked
OFFICIAL-SENSITIVE at its head and foot, with who made it and when.

The font is DejaVu Sans, which matplotlib (one of drp's dependencies) ships: it covers the
scripts people type (accents, Greek, Cyrillic...), which the PDF core fonts (Latin-1) do not.
fpdf2 embeds only the characters used."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from .casenotes import Note

MARKING = "OFFICIAL-SENSITIVE"
FONT = "DejaVu"


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


class _Document(FPDF):
    """A4, a marking and a title on each page, page numbers at the foot."""

    def __init__(self, title: str, made: str) -> None:
        super().__init__(format="A4")
        self.doc_title, self.made = title, made
        self.written: list[str] = []  # every text put on the pages, in order (for tests)
        fonts = _font_dir()
        self.add_font(FONT, "", str(fonts / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(fonts / "DejaVuSans-Bold.ttf"))
        self.set_title(title)
        self.set_creator("drp")
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(18, 16, 18)
        self.add_page()

    def header(self) -> None:
        self.written += [MARKING, self.doc_title]
        self.set_font(FONT, "B", 10)
        self.cell(0, 6, MARKING, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "", 8)
        self.cell(0, 5, self.doc_title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)

    def footer(self) -> None:
        self.written += [f"{self.made}. Page {self.page_no()}", MARKING]
        self.set_y(-14)
        self.set_font(FONT, "", 8)
        self.cell(0, 4, f"{self.made}. Page {self.page_no()} of {{nb}}", align="C",
                  new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(FONT, "B", 10)
        self.cell(0, 5, MARKING, align="C")

    # -- writing ------------------------------------------------------------------------------
    def heading(self, text: str, size: int = 14) -> None:
        if self.get_y() > self.h - 40:
            self.add_page()
        self.ln(2)
        self.written.append(text)
        self.set_font(FONT, "B", size)
        self.multi_cell(0, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1)

    def para(self, text: str, size: int = 10) -> None:
        self.written.append(text or "-")
        self.set_font(FONT, "", size)
        self.multi_cell(0, size * 0.5, text or "-", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)

    def fields(self, rows: list[tuple[str, Any]], size: int = 10) -> None:
        """Label and value, one a line; empty values left out."""
        for label, value in rows:
            if value is None or value == "" or value == []:
                continue
            self.written.append(f"{label}: {_text(value)}")
            self.set_font(FONT, "B", size)
            self.cell(48, size * 0.5, label, new_x=XPos.RIGHT, new_y=YPos.TOP)
            self.set_font(FONT, "", size)
            self.multi_cell(0, size * 0.5, _text(value), new_x=XPos.LMARGIN,
                            new_y=YPos.NEXT)
        self.ln(1)

    def rule(self) -> None:
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(2)

    def as_bytes(self) -> bytes:
        data = bytes(self.output())  # (pages close here: the last footer is written)
        return data

    def all_text(self) -> str:
        """What the pages say, in order (the PDF itself holds glyph numbers, not text)."""
        self.as_bytes()
        return "\n".join(self.written)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _when(instant: datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).strftime("%-d %B %Y %H:%M")


def notes_pdf(notes: list[Note], tz: ZoneInfo, *, council: str, printed_by: str,
              printed_at: datetime) -> bytes:
    """An alert's case notes, printable: each note's title, child (record id and reference),
    author, date and type, then its text."""
    return notes_document(notes, tz, council=council, printed_by=printed_by,
                          printed_at=printed_at).as_bytes()


def notes_document(notes: list[Note], tz: ZoneInfo, *, council: str, printed_by: str,
                   printed_at: datetime) -> _Document:
    first = notes[0] if notes else None
    title = (f"{council}: IRO dispute resolution, case notes"
             + (f" for alert {first.alert_id}" if first else ""))
    pdf = _Document(title, f"Printed {_when(printed_at, tz)} by {printed_by}")
    for n in notes:
        pdf.heading(n.title, 12)
        child = n.record_id + (f" (drp reference {n.child_ref})"
                               if n.record_id != n.child_ref else "")
        pdf.fields([("Child", child), ("Author", n.author), ("Date", _when(n.date, tz)),
                    ("Type", n.type)])
        pdf.para(n.text)
        pdf.rule()
    if not notes:
        pdf.para("No case notes.")
    return pdf


# -- the subject access export -----------------------------------------------------------------

def _instant(value: Any, tz: ZoneInfo) -> str:
    """An ISO 8601 value of the export, as people read it (dates and instants)."""
    if not isinstance(value, str) or not value:
        return "" if value is None else str(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if "T" not in value:
        return parsed.strftime("%-d %B %Y")
    return _when(parsed, tz)


def subject_access_pdf(document: dict[str, Any], tz: ZoneInfo) -> bytes:
    """The subject access export (`drp.subject_access.export_child`'s document), rendered
    section by section in the JSON's order: nothing added, nothing left out."""
    return subject_access_document(document, tz).as_bytes()


def subject_access_document(document: dict[str, Any], tz: ZoneInfo) -> _Document:
    ref = document["child"]
    pdf = _Document(f"Subject access: everything drp holds about child {ref}",
                    f"Exported {_instant(document['exported_at'], tz)} by"
                    f" {document['exported_by']}")
    pdf.heading(f"Child {ref}", 16)
    record = document["record"]
    team = record.get("team") or {}
    pdf.fields([("Reference", record["ref"]), ("Active", record["active"]),
                ("Team", f"{team.get('name', '')} ({team.get('key', '')})" if team else None),
                ("IRO", record["iro"]), ("Social worker", record["social_worker"]),
                ("Format version", document["format_version"])])
    pdf.heading("Before sending", 12)
    for note in document["notes"]:
        pdf.para(f"- {note}", 9)

    pdf.heading(f"Alerts ({len(document['alerts'])})", 14)
    for a in document["alerts"]:
        _alert(pdf, a, tz)
    if not document["alerts"]:
        pdf.para("No alerts.")

    pdf.heading(f"E-mails sent about these alerts ({len(document['emails'])})", 14)
    for m in document["emails"]:
        pdf.fields([("Alert", m["alert"]), ("Message", m["message"]),
                    ("To", f"{m['recipient']} <{m['to'] or 'no address'}>"),
                    ("Subject", m["subject"]), ("Status", m["status"]),
                    ("Queued", _instant(m["queued_at"], tz)),
                    ("Sent", _instant(m["sent_at"], tz))], 9)
        pdf.para(m["text"] or "(rendered when sent)", 8)
        pdf.rule()

    pdf.heading(f"Access log ({len(document['access_log'])} rows)", 14)
    for r in document["access_log"]:
        where = r["os_user"] or r["client"] or ""
        pdf.para(f"{_instant(r['at'], tz)}  {r['actor']}  {r['action']}"
                 + (f"  alert {r['alert']}" if r["alert"] else "")
                 + (f"  ({r['channel']}{', ' + where if where else ''})" if r["channel"]
                    else "") + (f"\n    {r['detail']}" if r["detail"] else ""), 8)

    pdf.heading("Third parties named (for the council to redact)", 14)
    for t in document["third_parties"]:
        pdf.para(f"{t['name'] or t['username']} ({t['username']}): "
                 + "; ".join(t["appears_as"]), 9)
    if not document["third_parties"]:
        pdf.para("None.")
    return pdf


def _alert(pdf: _Document, a: dict[str, Any], tz: ZoneInfo) -> None:
    kind = "Good practice" if a["kind"] == "good_practice" else "Alert"
    pdf.heading(f"{kind} {a['id']}: {a['summary']}", 12)
    pdf.fields([
        ("Status", f"{a['status']}, stage {a['stage']}"), ("IRO", a["iro"]),
        ("Theme", a["theme"]), ("Raised", _instant(a["raised_at"], tz)),
        ("Stage entered", _instant(a["stage_entered_at"], tz)),
        ("Stage due", _instant(a["stage_due"], tz)),
        ("Formal since", _instant(a["formal_since"], tz)),
        ("Resolution due", _instant(a["resolution_due"], tz)),
        ("Closed", _instant(a["closed_at"], tz)),
        ("On hold", f"until {_instant(a['hold_until'], tz)}" if a["on_hold"] else None),
        ("Acknowledged", f"{a['acknowledged_by']}, {_instant(a['acknowledged_at'], tz)}"
         if a["acknowledged_by"] else None),
        ("Related alerts", a["related"]),
        ("What happened", a["detail"]), ("Impact on the child", a["impact"]),
        ("Outcome wanted", a["outcome_wanted"]), ("Outcome", a["outcome"]),
    ], 9)
    pdf.heading("Events", 11)
    for e in a["events"]:
        stages = (f" {e['from_stage']} to {e['to_stage']}"
                  if e["from_stage"] and e["to_stage"] and e["from_stage"] != e["to_stage"]
                  else f" at {e['to_stage']}" if e["to_stage"] else "")
        cover = f" (as cover for {e['as_cover_for']})" if e["as_cover_for"] else ""
        where = e["os_user"] or e["client"] or ""
        origin = f" [{e['channel']}{', ' + where if where else ''}]" if e["channel"] else ""
        line = (f"{e['seq']}. {_instant(e['at'], tz)}  {e['actor']}{cover}: {e['kind']}"
                f"{stages}{origin}")
        if e["comment"]:
            line += f"\n    {e['comment']}"
        if e["data"]:
            line += "\n    " + ", ".join(f"{k}: {v}" for k, v in e["data"].items()
                                         if v not in (None, "", []))
        pdf.para(line, 8)
    if a["actions"]:
        pdf.heading("Agreed actions", 11)
        for x in a["actions"]:
            done = (f"done {_instant(x['done_at'], tz)} by {x['done_by']}" if x["done_at"]
                    else "not done")
            pdf.para(f"{x['no']}. {x['text']}\n    Owner {x['owner']}, due"
                     f" {_instant(x['due'], tz)}, agreed {_instant(x['agreed_at'], tz)} at"
                     f" {x['stage']}; {done}", 8)
    if a["corrections"]:
        pdf.heading("Texts corrected", 11)
        for k in a["corrections"]:
            what = k["field"].replace("_", " ") + (f" (event {k['event']})" if k["event"]
                                                   else "")
            original = (k["original"] if k["original"] is not None else
                        f"(removed by retention {_instant(k['original_removed_at'], tz)})")
            pdf.para(f"{k['seq']}. {_instant(k['at'], tz)}  {k['by']} corrected the {what}"
                     f"\n    Reason: {k['reason']}\n    Original: {original}", 8)
    if a["casenote_exports"]:
        pdf.heading("Handed over as case notes", 11)
        pdf.para("; ".join(f"event {m['event']} on {_instant(m['exported_at'], tz)}"
                           for m in a["casenote_exports"]), 8)
    c = a["cafcass"]
    if c:
        pdf.heading("Referral to Cafcass", 11)
        pdf.fields([("Referred", f"{_instant(c['referred_on'], tz)} by {c['referred_by']}"),
                    ("Reason", c["reason"]), ("Legal advice", c["legal_advice"]),
                    ("Advised on", _instant(c["advised_on"], tz)),
                    ("Response", c["response"]), ("Response note", c["response_note"]),
                    ("Responded on", _instant(c["responded_on"], tz))], 9)
    pdf.rule()
