"""The `drp` command itself and its top-level commands: init, demo, simulate, serve."""

import sys
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from .. import audit, db
from ..errors import ConfigError
from .shared import Json, Now, emit, env, origin, out

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="drp: the dispute resolution engine for IRO services.",
)


@app.callback()
def _plain_arguments() -> None:
    """Before any command: an argument holding a control character (but tab and line breaks)
    is refused naming its option, by the one check the web app uses too
    (`drp.alerts.inputs.plain`). A NUL cannot reach here: the system refuses it."""
    from ..alerts.inputs import plain

    for before, arg in zip(["drp", *sys.argv[1:]], sys.argv[1:], strict=False):
        what = before if before.startswith("--") else "an argument"
        plain(arg, f"{what} ({arg!r})", lines=True)


@app.command()
def init() -> None:
    """Create or upgrade the database to the newest schema (safe to run twice)."""
    runtime = env()
    try:
        db.upgrade(runtime.engine)
    except OperationalError as exc:
        raise ConfigError(
            f"cannot open the database ({db.reason(exc)}); check DRP_DATABASE_URL"
        ) from None
    url = runtime.engine.url.render_as_string(hide_password=True)
    out.print(f"Database ready ({url}).", markup=False)


@app.command()
def demo(
    reset: Annotated[bool, typer.Option(help="Empty the database first.")] = False,
    now: Now = None,
) -> None:
    """Initialise the database, load the demo organisation and some sample alerts."""
    from ..tools.demo import run_demo

    runtime = env()
    with audit.coming_from(origin()):  # its rows: the command line and the OS user
        run_demo(runtime.engine, runtime.protocol, runtime.calendar, runtime.taxonomy,
                 runtime.settings, now=now, reset=reset, say=out.print)


@app.command()
def simulate(
    year: Annotated[int, typer.Option(help="The reporting year that starts on 1 April.")],
    profile: Annotated[str, typer.Option(
        help="manchester, peterborough, cambridgeshire, portsmouth or thurrock (their annual"
             " reports' figures).")],
    seed: Annotated[int, typer.Option(help="The same seed gives the same year.")] = 2025,
    scale: Annotated[float, typer.Option(help="Multiply the volumes (1 = as published).")] = 1.0,
    years: Annotated[int, typer.Option(
        help="Simulate this many years ending with --year (2: the year before too, with the"
             " seed's previous-year figures where it publishes them), so reports can compare"
             " with the year before.")] = 1,
    add: Annotated[bool, typer.Option(
        "--add", help="Add the year(s) to a database that already has data: new alerts take"
                      " the next numbers, the organisation there is used as it stands (the"
                      " profile's own is loaded only where there is none), concerns still"
                      " open are resolved on the first working day; refused when the"
                      " database holds anything dated on or after the first 1 April.")] = False,
    as_json: Json = False,
) -> None:
    """Create a realistic year of alerts in a new database (after `drp init`: no people, no
    alerts), through the real service layer and timescale flow, matching a council's
    published volumes and stage funnel. It loads its own council-sized organisation (its
    people, teams and children), so a database with an organisation or alerts is refused
    unless --add says to write on top of it: never run it on a live database. A year not yet
    ended writes events dated ahead and is refused unless DRP_ALLOW_FUTURE_NOW=1 (tests,
    demos and training copies only)."""
    from ..tools.simulation import simulate as run_simulation

    runtime = env()
    db.require_schema(runtime.engine)
    with audit.coming_from(origin()):  # its rows: the command line and the OS user
        result = run_simulation(runtime.engine, runtime.protocol, runtime.calendar,
                                runtime.taxonomy, runtime.settings.tz,
                                year=year, profile=profile, seed=seed, scale=scale,
                                years=years, add=add,
                                say=(lambda _message: None) if as_json else out.print)
    if as_json:
        emit(result)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    no_flows: Annotated[bool, typer.Option("--no-flows", help="Do not serve the flows.")] = False,
) -> None:
    """Serve the web app (and, unless --no-flows, the flows on their schedules)."""
    import subprocess

    import uvicorn

    from ..web.app import create_app

    runtime = env()
    db.require_schema(runtime.engine)
    flows_process = None
    if not no_flows:
        flows_process = subprocess.Popen(
            [sys.executable, "-m", "drp.cli", "flows", "serve"])
    out.print(f"drp is at http://{host}:{port}/ (sign in as a demo user; Ctrl-C stops).")
    try:
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning",
                    proxy_headers=True)
    finally:
        if flows_process is not None:
            flows_process.terminate()
            flows_process.wait(timeout=30)
