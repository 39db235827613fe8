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

FORMATS = ("json", "html", "csv", "md", "docx")


@report_app.command("disputes")
def report_disputes(
    from_: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (included).")],
    fmt: Annotated[str, typer.Option(
        "--format", help="json, html (prints on A4), csv (every table), md or docx (a Word"
                         " document; needs --out).")] = "json",
    out: Annotated[str | None, typer.Option(
        "--out", help="Write to this file. With --format csv, a folder (one that exists, or"
                      " a path ending in /) gets one CSV file per table.")] = None,
    compare: Annotated[str, typer.Option(
        "--compare", help="What the tables show beside the period: previous (the period of"
                          " equal length just before), last-year (the same dates a year"
                          " earlier), both, or none.")] = "previous",
) -> None:
    """The dispute resolution figures for a period, beside the previous one or the same
    dates a year earlier."""
    from sqlmodel import Session

    from ..models import Council
    from ..reporting import render as report_render
    from ..reporting.figures import report

    if fmt not in FORMATS:
        raise BadValue(f"--format {fmt!r} is not known; use {', '.join(FORMATS)}")
    if fmt == "docx" and not out:
        raise BadValue("--format docx writes a Word document: give the file with --out")
    start, end = parse_date(from_, "--from"), parse_date(to, "--to")
    runtime = env()
    db.require_schema(runtime.engine)
    with Session(runtime.engine) as session:
        figures = report(session, runtime.protocol, runtime.calendar, runtime.taxonomy,
                         runtime.settings.tz, start, end, compare=compare)
        council = session.get(Council, 1)
    council_name = council.name if council else "drp"
    # A Path would drop the trailing "/" that says a folder is meant.
    out_file = Path(out) if out else None
    if out and out_file and fmt == "csv" and (out_file.is_dir() or out.endswith("/")):
        out_file.mkdir(parents=True, exist_ok=True)
        files = report_render.csv_files(figures)
        for name, text in files.items():
            (out_file / name).write_text(text, encoding="utf-8")
        err.print(f"Wrote {len(files)} CSV files into {out_file}.", markup=False)
        return
    if fmt == "docx":
        from ..reporting.word import to_docx

        assert out_file is not None
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_bytes(to_docx(figures, council_name))
        err.print(f"Wrote {out_file}.", markup=False)
        return
    if fmt == "html":
        text = report_render.to_html(figures, council_name)
    else:
        text = {"json": report_render.to_json, "csv": report_render.to_csv,
                "md": report_render.to_md}[fmt](figures)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text, encoding="utf-8")
        err.print(f"Wrote {out_file}.", markup=False)
    else:
        sys.stdout.write(text)
