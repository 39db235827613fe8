"""`drp org`: the organisation file."""

from pathlib import Path
from typing import Annotated

import typer

from .shared import Now, out, service

org_app = typer.Typer(no_args_is_help=True, help="The organisation: people, teams, children.")


@org_app.command("load")
def org_load(
    file: Annotated[Path, typer.Argument(help="The organisation file (YAML).")],
    now: Now = None,
) -> None:
    """Load, or on a second run update, the organisation (all or nothing). Open alerts of a
    child who moved team or IRO, or whose responsible manager changed, follow at once."""
    with service(now) as alerts:
        loaded = alerts.load_organisation(file)
    for line in loaded.lines():
        out.print(line, markup=False)
