"""One alert's case notes to print (`drp export casenote`, and the alert page's link): the
one code both shells call. Apart from drp.casenotes so that it may use drp.casenotes_pdf
(which reads drp.casenotes' notes) without an import cycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .casenotes import note_text, notes_of_alert
from .casenotes_pdf import notes_pdf
from .errors import BadValue
from .models import Council

if TYPE_CHECKING:
    from .alerts.records import Records

PRINT_FORMATS = ("text", "pdf")


@dataclass(frozen=True)
class Printable:
    data: bytes
    notes: int


def printable(alerts: Records, alert_id: int, username: str, fmt: str) -> Printable:
    """One alert's case notes to print (`drp export casenote`, and the alert page's link):
    plain text to paste, or a PDF marked OFFICIAL-SENSITIVE. Whoever may see the alert may
    print it (NotFound otherwise), recorded in the access log as a print, in the caller's
    transaction."""
    if fmt not in PRINT_FORMATS:
        raise BadValue(f"--format {fmt!r} is not available; use text or pdf", field="format")
    printed = alerts.print_file(alert_id, username)  # may see it? recorded as a print
    notes = notes_of_alert(alerts.s, alerts.protocol, alerts.tz, alert_id)
    if fmt == "text":
        return Printable(note_text(notes, alerts.tz).encode(), len(notes))
    council = alerts.s.get(Council, 1)
    return Printable(notes_pdf(notes, alerts.tz, council=council.name if council else "drp",
                               printed_by=printed.printed_by, printed_at=printed.printed_at),
                     len(notes))
