"""`drp calendar`: working days (England and Wales bank holidays)."""

from typing import Annotated

import typer

from ..calendar import default_calendar
from ..clock import parse_date
from ..errors import BadValue
from .shared import out

calendar_app = typer.Typer(no_args_is_help=True, help="Working days (England and Wales).")

# `drp calendar add DATE -5`: a negative number is an argument, not an unknown option.
_NEGATIVE_NUMBERS = {"ignore_unknown_options": True}


@calendar_app.command("add", context_settings=_NEGATIVE_NUMBERS)
def calendar_add(
    start: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
    n: Annotated[str, typer.Argument(help="Working days (negative for before).")],
) -> None:
    """Print the date N working days after DATE."""
    try:
        days = int(n)
    except ValueError:
        raise BadValue(f"{n!r} is not a whole number of working days") from None
    out.print(default_calendar().add(parse_date(start), days).isoformat())


@calendar_app.command("between")
def calendar_between(
    a: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
    b: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
) -> None:
    """Print the number of working days after A up to and including B."""
    out.print(str(default_calendar().between(parse_date(a), parse_date(b))))
