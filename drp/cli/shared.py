"""What every part of the `drp` command shares: the runtime, one unit of work per command,
the common options, printing, and the mapping of errors to exit 1 and one stderr line."""

import functools
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import OperationalError

from .. import audit, db, mail
from ..alerts import AlertService
from ..clock import Clock, clock_for
from ..errors import BadValue, DrpError
from ..runtime import Runtime
from ..runtime import runtime as build_runtime
from ..schemas import AlertDetail


def esc(text: str) -> str:
    """Text from people or the database, shown as it is: never read as rich markup (a summary
    such as "[/]" or "[bold]" would otherwise be styled, or refused with a traceback)."""
    return escape(text)


# Tables stay readable when stdout is a file or a pipe (rich would assume 80 columns).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)

As = Annotated[str, typer.Option("--as", help="Act as this person (username).")]
Now = Annotated[
    str | None,
    typer.Option("--now", help="Run as of this instant, ISO 8601 (local time unless an offset)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
AlertId = Annotated[int, typer.Argument(help="The alert's number.", min=1)]


def env() -> Runtime:
    return build_runtime()


def origin() -> audit.Origin:
    """This command's origin: the command line, the operating-system user running it, and
    the command (e.g. `drp alert show`: its leading words only, never an option's value)."""
    words = []
    for word in sys.argv[1:4]:
        if not re.fullmatch(r"[a-z][a-z-]{0,30}", word):
            break
        words.append(word)
    return audit.Origin.cli(via=" ".join(["drp", *words]))


@contextmanager
def service(now: str | None, *, clock: Clock | None = None) -> Iterator[AlertService]:
    """One unit of work, from the command line (every row it writes records that and the
    operating-system user; a view it refused is recorded after it); afterwards, deliver the
    mail it queued, and only that (a delivery problem never undoes the command nor changes its
    exit code: the mail waits in the outbox)."""
    runtime = env()
    db.require_schema(runtime.engine)
    clock = clock or clock_for(now, runtime.settings.tz)
    notifier = mail.notifier(runtime.settings)
    with audit.coming_from(origin()):
        refused: list[dict[str, Any]] = []
        try:
            with db.transaction(runtime.engine) as session:
                queued = mail.queued_ids(session)
                alerts = runtime.service(session, clock, notifier)
                refused = alerts.refused
                yield alerts
        finally:
            audit.keep_refused(runtime.engine, refused)
    for line in [*notifier.missing, *runtime.warnings]:
        err.print(f"drp: warning: {line}", markup=False)
    runtime.warnings.clear()
    if alerts.queued and queued:  # only this command's mail: the rest is the deliverers'
        report = mail.send_after_commit(runtime.engine, runtime.settings, clock, queued)
        if report.errors or report.failed:
            err.print(f"drp: mail: {report.summary()}; {'; '.join(report.errors[:1])}"
                      " (the messages wait in the outbox: drp outbox list)", markup=False)


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None, ensure_ascii=False) + "\n")


def when(day: date | None) -> str:
    return day.strftime("%a %-d %b %Y") if day else "-"


def act(
    alert_id: int | None, username: str, now: str | None, as_json: bool,
    do: Callable[[AlertService], Any], done: Callable[[AlertDetail], str],
) -> None:
    """Do one thing to an alert in one unit of work, then print the alert (--json) or the
    confirmation `done` writes from it."""
    with service(now) as alerts:
        result = do(alerts)
        target = alert_id if alert_id is not None else result.id
        view = alerts.show(target, username)
    if as_json:
        emit(view.public())
    else:
        out.print(done(view), markup=False)


def option_of(field: str) -> str:
    """The command-line option for an input as the service layer names it (BadValue.field):
    advised_on -> --advised-on."""
    return "--" + field.strip().replace("_", "-")


def refusal(exc: DrpError) -> str:
    """A refusal in one line, naming the option refused when the service layer says which
    (and the message does not already)."""
    message = " ".join(exc.message.split())
    field = exc.field if isinstance(exc, BadValue) else None
    if not field:
        return message
    option = option_of(field)
    named = re.search(rf"{re.escape(option)}(?![\w-])", message)
    return message if named else f"{message} ({option})"


@functools.cache
def _command(app: typer.Typer) -> Any:
    """The click command Typer makes of `app` (reading every command's signature and types):
    made once a process. Typer makes it again on each `app()`, 40% of a quick command run
    in-process (the tests run hundreds); `pretty_exceptions_enable=False` (root.py) leaves
    nothing else to Typer's call."""
    return typer.main.get_command(app)


def run(app: typer.Typer) -> None:
    """Run the command: a refusal (DrpError) or an unreachable database exits 1 with one line
    on stderr; usage errors stay Typer's (exit 2)."""
    try:
        _command(app)()
    except DrpError as exc:
        # The service layer names the input it refused; on the command line that is the
        # option of the same name.
        err.print(f"drp: {refusal(exc)}", markup=False)
        sys.exit(exc.exit_code)
    except OperationalError as exc:
        err.print(f"drp: database error ({db.reason(exc)}); check"
                  " DRP_DATABASE_URL and that `drp init` has run", markup=False)
        sys.exit(1)
