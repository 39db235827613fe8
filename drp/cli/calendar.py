"""`drp calendar`: working days (England and Wales bank holidays, and the council's closure
days once it has a database)."""

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from ..calendar import WorkingCalendar, default_calendar
from ..clock import parse_date
from ..errors import BadValue, ConfigError
from ..runtime import load_settings
from .shared import Json, Now, emit, env, out, service

calendar_app = typer.Typer(no_args_is_help=True,
                           help="Working days (England and Wales, and closure days).")

# `drp calendar add DATE -5`: a negative number is an argument, not an unknown option.
_NEGATIVE_NUMBERS = {"ignore_unknown_options": True}


def working_days() -> WorkingCalendar:
    """The bank holidays, and the council's closure days where its database exists (these
    commands work before `drp init` too, and never create a database)."""
    try:
        url = make_url(load_settings().database_url)
    except (ConfigError, ValueError):
        return default_calendar()
    if url.drivername.startswith("sqlite") and (
            not url.database or url.database == ":memory:" or not Path(url.database).exists()):
        return default_calendar()
    try:
        return env().calendar
    except ConfigError:
        return default_calendar()


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
    out.print(working_days().add(parse_date(start), days).isoformat())


@calendar_app.command("between")
def calendar_between(
    a: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
    b: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
) -> None:
    """Print the number of working days after A up to and including B."""
    out.print(str(working_days().between(parse_date(a), parse_date(b))))


@calendar_app.command("close")
def calendar_close(
    day: Annotated[str, typer.Argument(metavar="DATE", help="YYYY-MM-DD: the day closed.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. a state funeral).")],
    username: Annotated[str | None, typer.Option(
        "--as", help="The administrator closing it (username); without it, the command"
                     " line acts as one, as for drp org load.")] = None,
    now: Now = None,
    as_json: Json = False,
) -> None:
    """An administrator adds a closure day or short-notice bank holiday: not a working day
    from now on; the open due dates it falls within move on by one working day."""
    when = parse_date(day, "the closure day")
    try:
        with service(now) as alerts:
            result = alerts.close_day(username, when, reason)
    except BadValue as exc:
        if exc.field != "day":
            raise
        raise BadValue(exc.message) from None  # DATE is an argument, not an option
    if as_json:
        emit({"day": result.day.isoformat(), "reason": result.reason,
              "created_by": result.created_by,
              "moved": [{"alert": m.alert_id,
                         **{k: {"from": old.isoformat(), "to": new.isoformat()}
                            for k, (old, new) in m.dates.items()}} for m in result.moved]})
        return
    moved = ", ".join(str(m.alert_id) for m in result.moved)
    out.print(f"{result.day.isoformat()} is a closure day ({result.reason}): not a working"
              f" day from now on. Due dates moved on by one working day:"
              f" {len(result.moved)} open alert(s){': ' + moved if moved else ''}.",
              markup=False)


@calendar_app.command("closures")
def calendar_closures(as_json: Json = False) -> None:
    """List the council's closure days."""
    with service(None) as alerts:
        rows = [c.public() for c in alerts.closures()]
    if as_json:
        emit(rows)
        return
    if not rows:
        out.print("No closure days recorded (drp calendar close DATE --reason TEXT adds one).")
        return
    for c in rows:
        out.print(f"{c['day']}  {c['reason']}  (by {c['created_by']},"
                  f" {c['created_at'][:16].replace('T', ' ')} UTC)", markup=False)
