"""`drp child`: one child's record (subject access: drp.subject_access)."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import audit, db
from ..clock import clock_for
from ..errors import BadValue
from .shared import As, Now, env, err, origin

child_app = typer.Typer(no_args_is_help=True, help="A child's record.")

FORMATS = ("json", "pdf")


@child_app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="The child's reference.")],
    username: As,
    fmt: Annotated[str, typer.Option(
        "--format", help="json, or pdf to read and print (the same document).")] = "json",
    out: Annotated[str | None, typer.Option(
        "--out", help="Write to this file (created readable by its owner only) instead of"
                      " stdout.")] = None,
    now: Now = None,
) -> None:
    """Everything drp holds about one child, to answer a subject access request: alerts with
    their events, actions and referrals, the e-mails sent about them, the access-log rows
    about them, and the people named in them (for the council to redact). Only an IRO
    manager may export; the export is recorded in the access log."""
    from ..subject_access import as_pdf, export_child

    if fmt not in FORMATS:
        raise BadValue(f"--format {fmt!r} is not available; use json or pdf", field="format")
    if fmt == "pdf" and out is None and sys.stdout.isatty():
        raise BadValue("a PDF is not for the terminal: give --out FILE, or redirect it",
                       field="out")
    runtime = env()
    db.require_schema(runtime.engine)
    clock = clock_for(now, runtime.settings.tz)
    with audit.coming_from(origin()) as where:
        document = export_child(runtime.engine, ref=ref, username=username,
                                now=clock.now(), origin=where)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    data = as_pdf(document, runtime.settings.tz) if fmt == "pdf" else text.encode()
    if out is None:
        if fmt == "pdf":  # bytes, for a pipe or a file
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(text)
        return
    path = Path(out)
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)
    err.print(f"Wrote the record of child {ref} to {path} ({len(document['alerts'])} alerts):"
              " redact the third parties it lists before sending it.", markup=False)
