"""`drp protocol`: the dispute ladder in force."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .shared import Json, emit, env, out

protocol_app = typer.Typer(no_args_is_help=True, help="The dispute ladder in force.")


@protocol_app.command("show")
def protocol_show(as_json: Json = False) -> None:
    """Print the ladder in force (DRP_PROTOCOL)."""
    runtime = env()
    protocol = runtime.protocol
    if as_json:
        emit(protocol.model_dump(mode="json"))
        return
    table = Table(title=f"{protocol.name} ({runtime.settings.protocol})", title_justify="left")
    for column in ("stage", "title", "responsible", "working days", "reminder",
                   "when overdue"):
        table.add_column(column)
    for stage in protocol.stages:
        days = str(stage.timescale_working_days)
        if not stage.formal:
            days = f"set by the IRO ({days} by default, at most {stage.max_working_days})"
        table.add_row(
            stage.key, stage.title, stage.responsible.value.replace("_", " "), days,
            f"{stage.reminder_lead_working_days} day(s) before",
            stage.when_overdue.value.replace("_", " "),
        )
    table.add_row(protocol.cafcass.key, protocol.cafcass.title,
                  "the allocated IRO (after legal advice)", "-", "-",
                  "alongside the local process")
    out.print(table)
    out.print(f"The formal process: within {protocol.resolution_working_days} working days of the"
              " first formal stage (the informal stage's date is the IRO's, outside them)."
              f" Holds: at most {protocol.max_hold_working_days} working days, with an end"
              f" date. Extensions: at most {protocol.max_extension_working_days} working days"
              " each. The IRO may bypass stages, and refer to Cafcass at any point alongside"
              " the local process.")


@protocol_app.command("diagram")
def protocol_diagram(
    out_file: Annotated[Path, typer.Option("--out", help=".svg, .png, .pdf, .dot or .mmd")],
) -> None:
    """Draw the configured state machine (SVG/PNG with Graphviz, or Mermaid)."""
    from ..ladder.machine import diagram

    path = diagram(env().protocol, out_file)
    out.print(f"Wrote {path}.", markup=False)
