"""`drp report`: the figures councils publish."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import db
from ..clock import parse_date
from ..errors import BadValue
from .shared import env, err

report_app = typer.Typer(no_args_is_help=True, help="The figures councils publish.")


@report_app.command("disputes")
def report_disputes(
    from_: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (included).")],
    fmt: Annotated[str, typer.Option("--format", help="json, html, csv or md.")] = "json",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """The dispute resolution figures for a period, beside the previous one."""
    from sqlmodel import Session

    from ..models import Council
    from ..reporting import render as report_render
    from ..reporting.figures import report

    if fmt not in ("json", "html", "csv", "md"):
        raise BadValue(f"--format {fmt!r} is not known; use json, html, csv or md")
    start, end = parse_date(from_, "--from"), parse_date(to, "--to")
    runtime = env()
    db.require_schema(runtime.engine)
    with Session(runtime.engine) as session:
        figures = report(session, runtime.protocol, runtime.calendar, runtime.taxonomy,
                         runtime.settings.tz, start, end)
        council = session.get(Council, 1)
    if fmt == "html":
        text = report_render.to_html(figures, council.name if council else "drp")
    else:
        text = {"json": report_render.to_json, "csv": report_render.to_csv,
                "md": report_render.to_md}[fmt](figures)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text, encoding="utf-8")
        err.print(f"Wrote {out_file}.", markup=False)
    else:
        sys.stdout.write(text)
