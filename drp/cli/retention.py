"""`drp retention`: remove what is past its retention date (drp.retention; the periods are
settings, docs/data-protection.md "Retention")."""

from typing import Annotated

import typer

from .. import audit, db, retention
from ..clock import clock_for
from .shared import Json, Now, emit, env, origin, out

retention_app = typer.Typer(no_args_is_help=True,
                            help="Remove what is past its retention date.")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say what would be removed; change nothing.")] = False,
    now: Now = None,
    as_json: Json = False,
) -> None:
    """Delete closed alerts' records past the child's birthday (or years after closure),
    access-log rows and e-mail bodies past their periods, and corrected texts' originals, in
    batches, each recorded in the retention log (counts and ids, never content). Safe to
    rerun: a run that stopped halfway is finished by the next."""
    runtime = env()
    db.require_schema(runtime.engine)
    instant = clock_for(now, runtime.settings.tz).now()
    with audit.coming_from(origin()):
        report = retention.run(runtime.engine, retention.Policy.of(runtime.settings),
                               now=instant, tz=runtime.settings.tz, dry_run=dry_run)
    if as_json:
        emit(report.as_dict())
        return
    for line in report.lines():
        out.print(line, markup=False)
    if dry_run:
        for what, rule in report.rules.items():
            out.print(f"  ({what}: {rule})", markup=False)
