"""`drp flows`: the Prefect flows, run once or served on their schedules."""

from typing import Annotated

import typer

from .. import db
from ..clock import clock_for
from ..errors import BadValue, DrpError
from .shared import Json, Now, emit, env, err, out

flows_app = typer.Typer(no_args_is_help=True, help="The Prefect flows: run once, or serve.")

FLOWS = ("timescales", "digest", "themes", "retention")


@flows_app.command("run")
def flows_run(
    name: Annotated[str, typer.Argument(help="timescales, digest, themes or retention.")],
    now: Now = None,
    as_json: Json = False,
) -> None:
    """Run one flow once, as of --now (under a temporary local Prefect server unless
    PREFECT_API_URL names a long-lived one, as in production)."""
    if name not in FLOWS:
        raise BadValue(f"there is no flow {name!r}; the flows are {', '.join(FLOWS)}")
    runtime = env()
    db.require_schema(runtime.engine)
    if now:
        clock_for(now, runtime.settings.tz)  # a malformed --now is refused before Prefect starts
    from flows import prefect_home, start_api

    prefect_home(runtime.settings)
    problem = start_api()  # a server that cannot start is one line, not a traceback
    if problem:
        raise DrpError(problem)
    if name == "timescales":
        from flows.timescales import timescales_flow as flow_fn
    elif name == "digest":
        from flows.digest import digest_flow as flow_fn
    elif name == "retention":
        from flows.retention import retention_flow as flow_fn
    else:
        from flows.themes import themes_flow as flow_fn
    result = flow_fn(now=now)
    if as_json:
        emit(result)
        return
    if name == "timescales":
        if not result["working_day"]:
            out.print(f"{result['today']} is not a working day: nothing to do.")
            return
        counts = ", ".join(f"{count} {kind.replace('_', ' ')}"
                           for kind, count in result["counts"].items())
        out.print(f"Timescales as of {result['today']}: {counts}. Mail: {result['mail']}.")
        for problem in result["problems"]:
            err.print(f"drp: {problem}", markup=False)
    elif name == "retention":
        counts = ", ".join(f"{count} {kind}" for kind, count in result["counts"].items())
        out.print(f"Retention as of {result['now']}: removed {counts or 'nothing'}.")
    elif name == "digest":
        if result["skipped"]:
            out.print(result["skipped"])
        else:
            already = ", ".join(result["already_sent"])
            out.print(f"Digest for the fortnight from {result['fortnight']}: queued for"
                      f" {', '.join(result['queued_for']) or 'nobody new'}"
                      f"{'; already sent to ' + already if already else ''}."
                      f" Mail: {result['mail']}.")
    else:
        out.print(f"Themes: {len(result['unthemed'])} alert(s) without a theme;"
                  f" {len(result['categorised'])} categorised, {len(result['unsure'])} left"
                  f" for the IRO (unsure); {len(result['not_yet'])} not yet (touched after the"
                  f" run's instant). Trained on {result['trained_on']} examples.")
        for problem in result["problems"]:
            err.print(f"drp: {problem}", markup=False)


@flows_app.command("serve")
def flows_serve() -> None:
    """Serve every flow on its schedule until stopped (Ctrl-C)."""
    runtime = env()
    db.require_schema(runtime.engine)
    from flows import prefect_home

    prefect_home(runtime.settings)
    from flows.serve import serve_all

    out.print("Serving drp's flows: timescales hourly 07:00-18:00 on working days, the digest"
              " every other Monday at 08:00, themes and retention nightly (Europe/London)."
              " Ctrl-C stops.")
    try:
        serve_all(say=out.print)
    except KeyboardInterrupt:
        out.print("Stopped serving the flows.")
