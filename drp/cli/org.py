"""`drp org`: the organisation file."""

from pathlib import Path
from typing import Annotated

import typer

from .. import db
from .shared import env, out

org_app = typer.Typer(no_args_is_help=True, help="The organisation: people, teams, children.")


@org_app.command("load")
def org_load(
    file: Annotated[Path, typer.Argument(help="The organisation file (YAML).")],
) -> None:
    """Load, or on a second run update, the organisation (all or nothing)."""
    from ..org import load_org

    runtime = env()
    db.require_schema(runtime.engine)
    with db.transaction(runtime.engine) as session:
        result = load_org(session, file, runtime.protocol)
    gone = f"; {result.deactivated} people no longer listed marked inactive" if (
        result.deactivated) else ""
    out.print(
        f"Loaded {result.council}: {result.people} people, {result.services} services,"
        f" {result.teams} teams, {result.children} children{gone}.", markup=False
    )
