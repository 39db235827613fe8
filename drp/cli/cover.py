"""`drp cover`: cover periods (while one runs, the deputy receives the absent person's work
and acts as cover for them). The command line acts as an administrator unless --as names
someone (access.may_set_cover says who may)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from ..alerts import AlertService
from ..clock import parse_date
from ..errors import BadValue
from ..ladder.access import SYSTEM
from .shared import Json, Now, emit, esc, out, service

cover_app = typer.Typer(no_args_is_help=True,
                        help="Cover periods: who receives an absent person's work.")

AsWho = Annotated[str, typer.Option(
    "--as", help="Act as this person (username); without it, as an administrator.")]
# The service layer's names for its inputs, as this command's options.
_OPTIONS = {"deputy": "by", "starts": "from", "ends": "to", "person": None}


@contextmanager
def _cover_service(now: str | None) -> Iterator[AlertService]:
    """One unit of work; a refusal names this command's option (--by, --from, --to)."""
    try:
        with service(now) as alerts:
            yield alerts
    except BadValue as exc:
        if exc.field in _OPTIONS:
            exc.field = _OPTIONS[exc.field]
        raise


@cover_app.command("set")
def cover_set(
    user: Annotated[str, typer.Argument(help="The absent person (username).")],
    by: Annotated[str, typer.Option("--by", help="The deputy (username).")],
    starts: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    ends: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (included).")],
    reason: Annotated[str | None, typer.Option(help="Why (leave, sickness...).")] = None,
    as_user: AsWho = SYSTEM,
    now: Now = None,
) -> None:
    """Record that DEPUTY covers USER from one day to another (both included)."""
    first, last = parse_date(starts, "--from"), parse_date(ends, "--to")
    with _cover_service(now) as alerts:
        view = alerts.set_cover(as_user, user, by, first, last, reason)
    out.print(f"{view.deputy_name} ({view.deputy}) covers for {view.person_name}"
              f" ({view.person}) from {view.starts.isoformat()} to {view.ends.isoformat()}"
              f" ({view.state}).", markup=False)


@cover_app.command("list")
def cover_list(as_json: Json = False, as_user: AsWho = SYSTEM, now: Now = None) -> None:
    """List cover periods (planned, running, over and ended), earliest first."""
    with _cover_service(now) as alerts:
        views = alerts.list_covers(as_user)
    if as_json:
        emit([v.public() for v in views])
        return
    if not views:
        out.print("No cover periods recorded (drp cover set, or cover: in the organisation"
                  " file).")
        return
    table = Table(title=f"{len(views)} cover period(s)", title_justify="left")
    for column in ("person", "deputy", "from", "to", "state", "source", "reason"):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(esc(v.person), esc(v.deputy), v.starts.isoformat(), v.ends.isoformat(),
                      v.state, v.source, esc(v.reason or ""))
    out.print(table)


@cover_app.command("end")
def cover_end(
    user: Annotated[str, typer.Argument(help="The person whose cover ends (username).")],
    as_user: AsWho = SYSTEM,
    now: Now = None,
) -> None:
    """End USER's cover now: the deputy no longer receives their work."""
    with _cover_service(now) as alerts:
        views = alerts.end_cover(as_user, user)
    for v in views:
        out.print(f"Ended: {v.deputy} covering for {v.person} from {v.starts.isoformat()} to"
                  f" {v.ends.isoformat()}.", markup=False)
