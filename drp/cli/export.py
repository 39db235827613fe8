"""`drp export`: what drp hands to the council's other systems (case notes: drp.casenotes)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import audit, db
from ..clock import clock_for, parse_instant
from ..errors import BadValue
from .shared import As, Now, env, err, origin, service

if TYPE_CHECKING:
    from ..casenotes import Note

export_app = typer.Typer(no_args_is_help=True,
                         help="Hand drp's records to the council's other systems.")

FORMATS = ("json", "csv")


@export_app.command("casenotes")
def casenotes(
    since: Annotated[str | None, typer.Option(
        "--since", help="Only notes from this instant, ISO 8601 (local time unless an"
                        " offset); without it, every note.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    again: Annotated[bool, typer.Option(
        "--again", help="Include notes exported before (they are marked again).")] = False,
    out: Annotated[str | None, typer.Option(
        "--out", help="Write to this file (created readable by its owner only) instead of"
                      " stdout.")] = None,
    now: Now = None,
) -> None:
    """Case notes for the child's file in the council's case-management system: each alert's
    raising, responses, escalations, outcome and referral to Cafcass, keyed by the child's
    record id (docs/casenotes.md maps them to LCS and Mosaic). Every note not yet exported,
    each marked as exported once written: a rerun gives nothing new unless --again. Recorded
    in the access log."""
    from ..casenotes import as_csv, as_json, export

    if fmt not in FORMATS:
        raise BadValue(f"--format {fmt!r} is not available; use json or csv", field="format")
    runtime = env()
    db.require_schema(runtime.engine)
    tz = runtime.settings.tz
    instant = clock_for(now, tz).now()
    start = parse_instant(since, tz) if since else None
    path = Path(out) if out else None

    def write(notes: list[Note]) -> None:
        text = as_json(notes, tz, instant) if fmt == "json" else as_csv(notes, tz)
        if path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")

    with audit.coming_from(origin()) as where:
        done = export(runtime.engine, runtime.protocol, tz, since=start, now=instant,
                      again=again, write=write, origin=where)
    if path is not None or not done.notes:
        err.print(f"{len(done.notes)} case note(s) exported"
                  + (f" to {path}" if path is not None else "")
                  + ("" if done.notes or again else " (nothing new since the last export;"
                     " --again gives them again)"), markup=False)


@export_app.command("casenote")
def casenote(
    alert_id: Annotated[int, typer.Argument(help="The alert's number.", min=1)],
    username: As,
    fmt: Annotated[str, typer.Option("--format", help="text (to paste) or pdf.")] = "text",
    out: Annotated[str | None, typer.Option(
        "--out", help="Write to this file (created readable by its owner only) instead of"
                      " stdout.")] = None,
    now: Now = None,
) -> None:
    """One alert's case notes, printable: as plain text to paste into the child's file, or as
    a PDF marked OFFICIAL-SENSITIVE. Whoever may see the alert may print it; recorded in the
    access log as a print."""
    from ..casenotes_print import PRINT_FORMATS, printable

    if fmt not in PRINT_FORMATS:
        raise BadValue(f"--format {fmt!r} is not available; use text or pdf", field="format")
    if fmt == "pdf" and out is None and sys.stdout.isatty():
        raise BadValue("a PDF is not for the terminal: give --out FILE, or redirect it",
                       field="out")
    with service(now) as alerts:
        printed = printable(alerts, alert_id, username, fmt)
    data = printed.data
    if out is None:
        if fmt == "pdf":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data.decode())
        return
    path = Path(out)
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)
    err.print(f"Wrote {printed.notes} case note(s) of alert {alert_id} to {path}", markup=False)
