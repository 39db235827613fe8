"""The `drp` command: a thin shell over the service layer (docs: interface.md)."""


import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import OperationalError

from . import db, mail
from .alerts import ActionIn, AlertService
from .calendar import default_calendar
from .clock import Clock, clock_for, parse_date
from .errors import BadValue, ConfigError, DrpError
from .runtime import Runtime, runtime
from .schemas import AlertDetail, AlertView

T = TypeVar("T")

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="drp: the dispute resolution engine for IRO services.",
)
alert_app = typer.Typer(no_args_is_help=True, help="Raise alerts and move them up the ladder.")
org_app = typer.Typer(no_args_is_help=True, help="The organisation: people, teams, children.")
protocol_app = typer.Typer(no_args_is_help=True, help="The dispute ladder in force.")
calendar_app = typer.Typer(no_args_is_help=True, help="Working days (England and Wales).")
app.add_typer(alert_app, name="alert")
app.add_typer(org_app, name="org")
app.add_typer(protocol_app, name="protocol")
app.add_typer(calendar_app, name="calendar")
outbox_app = typer.Typer(no_args_is_help=True, help="E-mails waiting, sent and failed.")
mail_app = typer.Typer(no_args_is_help=True, help="The e-mail messages drp sends.")
app.add_typer(outbox_app, name="outbox")
app.add_typer(mail_app, name="mail")
flows_app = typer.Typer(no_args_is_help=True, help="The Prefect flows: run once, or serve.")
app.add_typer(flows_app, name="flows")
user_app = typer.Typer(no_args_is_help=True, help="Local sign-in: passwords and API tokens.")
app.add_typer(user_app, name="user")
report_app = typer.Typer(no_args_is_help=True, help="The figures councils publish.")
app.add_typer(report_app, name="report")
themes_app = typer.Typer(no_args_is_help=True, help="The theme taxonomy and the classifier.")
app.add_typer(themes_app, name="themes")

# Tables stay readable when stdout is a file or a pipe (rich would assume 80 columns).
def esc(text: str) -> str:
    """Text from people or the database, shown as it is: never read as rich markup (a summary
    such as "[/]" or "[bold]" would otherwise be styled, or refused with a traceback)."""
    return escape(text)


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
    return runtime()


@contextmanager
def service(now: str | None, *, clock: Clock | None = None) -> Iterator[AlertService]:
    """One unit of work; afterwards, deliver the mail it queued (a delivery problem never
    undoes the command: the mail waits in the outbox)."""
    e = env()
    db.require_schema(e.engine)
    clock = clock or clock_for(now, e.settings.tz)
    notifier = mail.notifier(e.settings)
    with db.transaction(e.engine) as session:
        svc = e.service(session, clock, notifier)
        yield svc
    for line in [*notifier.missing, *e.warnings]:
        err.print(f"drp: warning: {line}", markup=False)
    e.warnings.clear()
    queued = svc.queued
    if queued:
        report = mail.send_after_commit(e.engine, e.settings, clock)
        if report.errors or report.failed:
            err.print(f"drp: mail: {report.summary()}; {'; '.join(report.errors[:1])}"
                      " (the messages wait in the outbox: drp outbox list)", markup=False)


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None, ensure_ascii=False) + "\n")


def _when(d: date | None) -> str:
    return d.strftime("%a %-d %b %Y") if d else "-"


def print_detail(view: AlertDetail, tz: ZoneInfo) -> None:
    status = view.status if view.status != "open" else f"open at {view.stage_title}"
    if view.on_hold:
        status += f" (on hold{' until ' + view.hold_until.isoformat() if view.hold_until else ''})"
    out.print(f"[bold]Alert {view.id}[/] for child {esc(view.child)} (team {esc(view.team)}):"
              f" {esc(status)}")
    out.print(f"  Summary: {view.summary}", markup=False)
    out.print(f"  IRO: {view.iro}; responsible now: {view.responsible or '-'}; "
              f"theme: {view.theme or '-'}", markup=False)
    if view.status == "open":
        overdue = " [red bold]OVERDUE[/]" if view.overdue else ""
        out.print(f"  Stage due: {_when(view.stage_due)}; resolution due: "
                  f"{_when(view.resolution_due)}{overdue}")
    table = Table(title="Events", show_lines=False, title_justify="left")
    for column in ("#", "when", "who", "what", "stage", "comment"):
        table.add_column(column)
    for i, ev in enumerate(view.events, start=1):
        stage = ev.to_stage or ""
        if ev.from_stage and ev.from_stage != ev.to_stage:
            stage = f"{ev.from_stage} → {ev.to_stage}"
        table.add_row(str(i), ev.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), esc(ev.actor),
                      ev.kind, esc(stage), esc((ev.comment or "")[:80]))
    out.print(table)
    if view.actions:
        actions = Table(title="Agreed actions", title_justify="left")
        for column in ("no", "action", "owner", "due", "done"):
            actions.add_column(column)
        for a in view.actions:
            done = "yes" if a.done else ("[red]overdue[/]" if a.overdue else "no")
            actions.add_row(str(a.no), esc(a.text), esc(a.owner), a.due.isoformat(), done)
        out.print(actions)


def print_list(views: list[AlertView]) -> None:
    if not views:
        out.print("No alerts to show.")
        return
    table = Table(title=f"{len(views)} alert(s)", title_justify="left")
    for column in ("id", "child", "team", "status", "stage", "responsible", "stage due",
                   "resolution due", "overdue", "summary"):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(
            str(v.id), esc(v.child), esc(v.team), v.status + (" (held)" if v.on_hold else ""),
            esc(v.stage), esc(v.responsible or "-"),
            v.stage_due.isoformat() if v.stage_due else "-",
            v.resolution_due.isoformat(), "[red bold]yes[/]" if v.overdue else "no",
            esc(v.summary[:60]),
        )
    out.print(table)


def act(
    alert_id: int | None, username: str, now: str | None, as_json: bool,
    do: Callable[[AlertService], Any], done: Callable[[AlertDetail], str],
) -> None:
    with service(now) as svc:
        result = do(svc)
        target = alert_id if alert_id is not None else result.id
        view = svc.show(target, username)
    if as_json:
        emit(view.public())
    else:
        out.print(done(view), markup=False)


# --- set-up -------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create or upgrade the database to the newest schema (safe to run twice)."""
    e = env()
    try:
        db.upgrade(e.engine)
    except OperationalError as exc:
        raise ConfigError(
            f"cannot open the database ({db.reason(exc)}); check DRP_DATABASE_URL"
        ) from None
    url = e.engine.url.render_as_string(hide_password=True)
    out.print(f"Database ready ({url}).", markup=False)


@app.command()
def demo(
    reset: Annotated[bool, typer.Option(help="Empty the database first.")] = False,
    now: Now = None,
) -> None:
    """Initialise the database, load the demo organisation and some sample alerts."""
    from .demo import run_demo

    e = env()
    run_demo(e.engine, e.protocol, e.calendar, e.taxonomy, e.settings, now=now, reset=reset,
             say=out.print)


@app.command()
def simulate(
    year: Annotated[int, typer.Option(help="The reporting year that starts on 1 April.")],
    profile: Annotated[str, typer.Option(
        help="manchester, peterborough or cambridgeshire (their annual reports' figures).")],
    seed: Annotated[int, typer.Option(help="The same seed gives the same year.")] = 2025,
    scale: Annotated[float, typer.Option(help="Multiply the volumes (1 = as published).")] = 1.0,
    as_json: Json = False,
) -> None:
    """Create a realistic year of alerts in an empty database, through the real service
    layer and timescale flow, matching a council's published volumes and stage funnel."""
    from .simulate import simulate as run_simulation

    e = env()
    db.require_schema(e.engine)
    result = run_simulation(e.engine, e.protocol, e.calendar, e.taxonomy, e.settings.tz,
                            year=year, profile=profile, seed=seed, scale=scale,
                            say=(lambda _m: None) if as_json else out.print)
    if as_json:
        emit(result)


@org_app.command("load")
def org_load(
    file: Annotated[Path, typer.Argument(help="The organisation file (YAML).")],
) -> None:
    """Load, or on a second run update, the organisation (all or nothing)."""
    from .org import load_org

    e = env()
    db.require_schema(e.engine)
    with db.transaction(e.engine) as session:
        result = load_org(session, file, e.protocol)
    gone = f"; {result.deactivated} people no longer listed marked inactive" if (
        result.deactivated) else ""
    out.print(
        f"Loaded {result.council}: {result.people} people, {result.services} services,"
        f" {result.teams} teams, {result.children} children{gone}.", markup=False
    )


# --- protocol ------------------------------------------------------------------------------


@protocol_app.command("show")
def protocol_show(as_json: Json = False) -> None:
    """Print the ladder in force (DRP_PROTOCOL)."""
    e = env()
    p = e.protocol
    if as_json:
        emit(p.model_dump(mode="json"))
        return
    table = Table(title=f"{p.name} ({e.settings.protocol})", title_justify="left")
    for column in ("stage", "title", "responsible", "working days", "reminder",
                   "when overdue"):
        table.add_column(column)
    for s in p.stages:
        table.add_row(
            s.key, s.title, s.responsible.value.replace("_", " "),
            str(s.timescale_working_days), f"{s.reminder_lead_working_days} day(s) before",
            s.when_overdue.value.replace("_", " "),
        )
    table.add_row(p.cafcass.key, p.cafcass.title, "IRO (with IRO manager)", "-", "-",
                  "status referred")
    out.print(table)
    out.print(f"Overall aim: resolved within {p.resolution_working_days} working days of"
              " raising. The IRO may bypass stages or refer to Cafcass from any open stage.")


@protocol_app.command("diagram")
def protocol_diagram(
    out_file: Annotated[Path, typer.Option("--out", help=".svg, .png, .pdf, .dot or .mmd")],
) -> None:
    """Draw the configured state machine (SVG/PNG with Graphviz, or Mermaid)."""
    from .machine import diagram

    path = diagram(env().protocol, out_file)
    out.print(f"Wrote {path}.", markup=False)


# --- calendar ------------------------------------------------------------------------------

_NEG = {"ignore_unknown_options": True}


@calendar_app.command("add", context_settings=_NEG)
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


# --- alerts ---------------------------------------------------------------------------------


def _parse_action(text: str) -> ActionIn:
    parts = text.split("|")
    if len(parts) >= 3:
        try:
            due = date.fromisoformat(parts[-2].strip())
            return ActionIn(text="|".join(parts[:-2]).strip(), due=due, owner=parts[-1].strip())
        except ValueError:
            pass
    if len(parts) < 2:
        raise BadValue(
            f"--action {text!r} needs a due date: write \"WHAT|YYYY-MM-DD\" (optionally"
            " \"WHAT|YYYY-MM-DD|OWNER\")"
        )
    return ActionIn(text="|".join(parts[:-1]).strip(), due=parse_date(parts[-1], "the due date"))


@alert_app.command("raise")
def alert_raise(
    as_: As,
    child: Annotated[str, typer.Option(help="The child's reference, e.g. C1001.")],
    summary: Annotated[str, typer.Option(help="What is wrong, in a line.")],
    detail: Annotated[str | None, typer.Option(help="More detail.")] = None,
    impact: Annotated[str | None, typer.Option(help="The impact on the child.")] = None,
    outcome_wanted: Annotated[str | None, typer.Option(help="The outcome wanted.")] = None,
    theme: Annotated[str | None, typer.Option(help="Theme key (drp themes list).")] = None,
    stage: Annotated[str | None, typer.Option(help="Start at this formal stage.")] = None,
    now: Now = None,
    as_json: Json = False,
) -> None:
    """Raise an alert; it starts at the first stage unless --stage names a formal one."""
    def done(v: AlertDetail) -> str:
        line = (f"Alert {v.id} raised for {v.child} at {v.stage_title}; response due"
                f" {_when(v.stage_due)} from {v.responsible}; resolution due"
                f" {_when(v.resolution_due)}.")
        s = suggested[0] if suggested else None
        if theme is None and s is not None:
            why = f" (because of: {', '.join(s.because)})" if s.because else ""
            verdict = " (unsure)" if s.unsure else ""
            line += (f"\nSuggested theme: {s.theme}, confidence {s.confidence:.2f}{verdict}"
                     f"{why}. Confirm it or choose another: drp alert theme {v.id} --as {as_}"
                     f" --theme {s.theme}")
        return line

    suggested: list[Any] = []

    def do(s: AlertService) -> Any:
        alert = s.raise_alert(as_, child, summary, detail=detail, impact=impact,
                              outcome_wanted=outcome_wanted, theme=theme, stage=stage)
        suggested.append(s.last_suggestion)
        return alert

    act(None, as_, now, as_json, do, done)


@alert_app.command("theme")
def alert_theme(
    alert_id: AlertId, as_: As,
    theme: Annotated[str, typer.Option(help="The theme key (drp themes list).")],
    now: Now = None, as_json: Json = False,
) -> None:
    """Confirm the suggested theme, or choose another (the child's IRO or an IRO manager)."""
    act(alert_id, as_, now, as_json, lambda s: s.set_theme(alert_id, as_, theme),
        lambda v: f"Alert {v.id}: theme {v.theme} confirmed.")


@alert_app.command("respond")
def alert_respond(
    alert_id: AlertId,
    as_: As,
    message: Annotated[str, typer.Option(help="The written response.")],
    action: Annotated[
        list[str] | None,
        typer.Option(help='An agreed action, "WHAT|YYYY-MM-DD[|OWNER]"; repeat for more.'),
    ] = None,
    now: Now = None,
    as_json: Json = False,
) -> None:
    """Respond at the current stage, optionally agreeing actions with dates."""
    actions = [_parse_action(a) for a in action or []]
    act(alert_id, as_, now, as_json,
        lambda s: s.respond(alert_id, as_, message, actions),
        lambda v: f"Response recorded on alert {v.id}"
                  f"{f' with {len(actions)} agreed action(s)' if actions else ''}.")


@alert_app.command("escalate")
def alert_escalate(
    alert_id: AlertId,
    as_: As,
    reason: Annotated[str, typer.Option(help="Why it goes further.")],
    to: Annotated[str | None, typer.Option(help="Bypass to this later stage.")] = None,
    now: Now = None,
    as_json: Json = False,
) -> None:
    """Escalate to the next stage, or with --to to a later one."""
    act(alert_id, as_, now, as_json,
        lambda s: s.escalate(alert_id, as_, reason, to=to),
        lambda v: f"Alert {v.id} escalated to {v.stage_title}; response due"
                  f" {_when(v.stage_due)} from {v.responsible}.")


def _closing(verb: str, option: str, helptext: str) -> Callable[..., None]:
    def command(
        alert_id: AlertId, as_: As,
        text: Annotated[str, typer.Option(f"--{option}", help=helptext)],
        now: Now = None, as_json: Json = False,
    ) -> None:
        method = getattr(AlertService, verb)
        act(alert_id, as_, now, as_json,
            lambda s: method(s, alert_id, as_, text),
            lambda v: f"Alert {v.id} is now {v.status} (at {v.stage}).")

    return command


alert_app.command("resolve", help="Resolve the alert with its outcome.")(
    _closing("resolve", "outcome", "The outcome agreed."))
alert_app.command("withdraw", help="Withdraw the alert, with a reason.")(
    _closing("withdraw", "reason", "Why it is withdrawn."))
alert_app.command("refer", help="Refer to Cafcass, from any open stage.")(
    _closing("refer", "reason", "Why (after advice from the IRO manager and legal)."))
alert_app.command("reopen", help="Reopen a resolved alert whose agreed actions are not done.")(
    _closing("reopen", "reason", "Why it is reopened."))


@alert_app.command("hold")
def alert_hold(
    alert_id: AlertId, as_: As,
    reason: Annotated[str, typer.Option(help="Why the clock stops (e.g. court hearing).")],
    until: Annotated[str | None, typer.Option(help="When the hold should end, YYYY-MM-DD.")] = None,
    now: Now = None, as_json: Json = False,
) -> None:
    """Put the alert on hold: working days on hold do not count."""
    end = parse_date(until, "--until") if until else None
    act(alert_id, as_, now, as_json,
        lambda s: s.hold(alert_id, as_, reason, until=end),
        lambda v: f"Alert {v.id} is on hold" + (f" until {_when(v.hold_until)}."
                                                  if v.hold_until else "."))


@alert_app.command("resume")
def alert_resume(alert_id: AlertId, as_: As, now: Now = None, as_json: Json = False) -> None:
    """Restart the clock; due dates move on by the working days held."""
    act(alert_id, as_, now, as_json, lambda s: s.resume(alert_id, as_),
        lambda v: f"Alert {v.id} resumed; stage due {_when(v.stage_due)}, resolution due"
                  f" {_when(v.resolution_due)}.")


@alert_app.command("extend")
def alert_extend(
    alert_id: AlertId, as_: As,
    until: Annotated[str, typer.Option(help="The new stage due date, YYYY-MM-DD.")],
    reason: Annotated[str, typer.Option(help="Why more time is agreed.")],
    now: Now = None, as_json: Json = False,
) -> None:
    """Agree a later due date for the current stage."""
    day = parse_date(until, "--until")
    act(alert_id, as_, now, as_json, lambda s: s.extend(alert_id, as_, day, reason),
        lambda v: f"Alert {v.id}: stage due date extended to {_when(v.stage_due)}.")


@alert_app.command("action-done")
def alert_action_done(
    alert_id: AlertId,
    action_no: Annotated[int, typer.Argument(help="The action's number.", min=1)],
    as_: As, now: Now = None, as_json: Json = False,
) -> None:
    """Mark an agreed action done."""
    act(alert_id, as_, now, as_json, lambda s: s.action_done(alert_id, action_no, as_),
        lambda v: f"Action {action_no} of alert {v.id} marked done.")


@alert_app.command("show")
def alert_show(alert_id: AlertId, as_: As, now: Now = None, as_json: Json = False) -> None:
    """Show an alert with its events and agreed actions."""
    with service(now) as svc:
        view = svc.show(alert_id, as_)
    if as_json:
        emit(view.public())
    else:
        print_detail(view, env().settings.tz)


@alert_app.command("list")
def alert_list(
    as_: As,
    status: Annotated[str | None, typer.Option(help="open, overdue or closed.")] = None,
    now: Now = None, as_json: Json = False,
) -> None:
    """List the alerts you may see."""
    with service(now) as svc:
        views = svc.list_alerts(as_, status)
    if as_json:
        emit([v.model_dump(mode="json") for v in views])
    else:
        print_list(views)


# --- mail -----------------------------------------------------------------------------------


@outbox_app.command("list")
def outbox_list(
    failed: Annotated[bool, typer.Option("--failed", help="Only failed messages.")] = False,
    as_json: Json = False,
) -> None:
    """List the outbox: what waits to be sent and what failed, and why (sent messages are
    not listed: they are in the mail directory or with the SMTP server)."""
    from sqlmodel import Session, col, select

    from notifications.render import load_context

    from .models import OutboxMessage

    e = env()
    db.require_schema(e.engine)
    with Session(e.engine) as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        query = query.where(OutboxMessage.status == "failed") if failed else query.where(
            OutboxMessage.status != "sent")
        rows = session.exec(query).all()
    templates = mail.renderer(e.settings)

    def subject(r: OutboxMessage) -> str:
        if r.subject or r.context is None:
            return r.subject
        try:  # queued in bulk: rendered when sent
            return templates.render(r.message, load_context(r.context)).subject
        except Exception as exc:
            return f"(cannot be rendered: {exc})"

    items = [{"id": r.id, "message": r.message, "alert": r.alert_id, "to": r.recipient,
              "address": r.to_addr, "status": r.status, "attempts": r.attempts,
              "next_attempt_at": r.next_attempt_at.isoformat(),
              "subject": subject(r), "error": r.last_error} for r in rows]
    if as_json:
        emit(items)
        return
    if not items:
        out.print("Nothing failed." if failed else "The outbox is empty: everything was sent.")
        return
    table = Table(title=f"{len(items)} message(s) {'failed' if failed else 'not yet sent'}",
                  title_justify="left")
    for column in ("id", "status", "to", "attempts", "subject", "problem"):
        table.add_column(column, overflow="fold")
    for i in items:
        table.add_row(str(i["id"]), str(i["status"]), esc(str(i["to"])), str(i["attempts"]),
                      esc(str(i["subject"])), esc(str(i["error"] or "")))
    out.print(table)


@outbox_app.command("send")
def outbox_send(now: Now = None) -> None:
    """Deliver every message waiting now (retry timers are for automatic delivery)."""
    e = env()
    db.require_schema(e.engine)
    report = mail.send(e.engine, e.settings, clock_for(now, e.settings.tz), due_only=False)
    out.print(f"Outbox: {report.summary()}.")
    if report.errors:
        raise DrpError(f"mail delivery: {report.errors[0]}; the rest wait in the outbox")


@outbox_app.command("retry")
def outbox_retry(
    message_id: Annotated[int | None, typer.Argument(help="The message's id.")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed one.")] = False,
    now: Now = None,
) -> None:
    """Put failed messages back in the queue and send them."""
    from notifications.outbox import retry

    if (message_id is None) == (not all_failed):
        raise BadValue("name one message id, or --all-failed")
    e = env()
    db.require_schema(e.engine)
    clock = clock_for(now, e.settings.tz)
    mail.refresh_addresses(e.engine)
    n = retry(e.engine, clock.now(), message_id)
    if message_id is not None and n == 0:
        raise BadValue(f"message {message_id} has not failed (or has no address yet);"
                       " see drp outbox list --failed")
    report = mail.send(e.engine, e.settings, clock, due_only=False)
    out.print(f"Retried {n} message(s): {report.summary()}.")


@mail_app.command("preview")
def mail_preview(
    message: Annotated[str, typer.Argument(help="The message name, e.g. escalated.")],
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part.")] = False,
    role: Annotated[str, typer.Option(help="responsible, iro, copy or owner.")] = "responsible",
) -> None:
    """Render a message with sample data, to review (or override) its wording."""
    from notifications.samples import sample_context

    r = mail.renderer(env().settings)
    try:
        rendered = r.render(message, sample_context(role))
    except KeyError as exc:
        raise BadValue(str(exc.args[0])) from None
    sys.stdout.write(f"Subject: {rendered.subject}\n\n")
    sys.stdout.write(rendered.html if html else rendered.text)


# --- themes ---------------------------------------------------------------------------------


@themes_app.command("list")
def themes_list(as_json: Json = False) -> None:
    """The theme keys with their titles (DRP_THEMES)."""
    t = env().taxonomy
    if as_json:
        emit([{"key": x.key, "title": x.title, "description": x.description} for x in t.themes])
        return
    table = Table(title=t.name, title_justify="left")
    for column in ("key", "title", "what belongs"):
        table.add_column(column, overflow="fold")
    for x in t.themes:
        table.add_row(x.key, x.title, x.description)
    out.print(table)


@themes_app.command("classify")
def themes_classify(
    as_json: Json = False,
    explain: Annotated[bool, typer.Option("--explain", help="Say which words led to it.")] = False,
) -> None:
    """Read one alert text per line on stdin; print each line's theme key (with --json, one
    JSON object per line: theme, confidence 0-1, unsure, and the words that led to it)."""
    classifier = env().classifier()
    lines = sys.stdin.read().splitlines()
    for start in range(0, len(lines), 2000):
        chunk = lines[start:start + 2000]
        for s in classifier.suggest_many(chunk, explain=as_json or explain):
            if as_json:
                sys.stdout.write(json.dumps(s.as_json()) + "\n")
            elif explain:
                flag = " (unsure)" if s.unsure else ""
                sys.stdout.write(f"{s.theme}\t{s.confidence:.2f}{flag}\t{', '.join(s.because)}\n")
            else:
                sys.stdout.write(s.theme + "\n")


@themes_app.command("evaluate")
def themes_evaluate(
    file: Annotated[Path | None, typer.Option(
        "--file", help="A JSON-lines file of {text, theme}: cross-validate on it instead.")] = None,
    heldout: Annotated[Path | None, typer.Option(
        "--heldout", help="Train on the corpus, then test on this JSON-lines file.")] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.", min=2, max=20)] = 5,
    as_json: Json = False,
) -> None:
    """Accuracy, per-theme precision and recall, and a confusion matrix."""
    from .classifier import cross_validate, held_out, load_corpus

    e = env()
    if heldout is not None:
        result = held_out(e.classifier(), load_corpus(heldout, e.taxonomy))
    else:
        examples = load_corpus(file, e.taxonomy) if file else e.corpus()
        result = cross_validate(e.taxonomy, examples, folds)
    if as_json:
        emit(result)
        return
    out.print(f"{result['method']}: {result['examples']} examples, accuracy"
              f" {result['accuracy']:.1%}")
    table = Table(title_justify="left")
    for column in ("theme", "precision", "recall", "f1", "examples"):
        table.add_column(column)
    for key, m in result["per_theme"].items():
        table.add_row(key, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}",
                      str(m["support"]))
    out.print(table)
    labels = result["confusion"]["labels"]
    matrix = Table(title="Confusion (rows: true theme; columns: suggested)",
                   title_justify="left")
    matrix.add_column("")
    for i in range(len(labels)):
        matrix.add_column(str(i + 1), justify="right")
    for i, row in enumerate(result["confusion"]["rows_true_columns_predicted"]):
        matrix.add_row(f"{i + 1} {labels[i]}", *[str(v) for v in row])
    out.print(matrix)


# --- reports --------------------------------------------------------------------------------


@report_app.command("disputes")
def report_disputes(
    from_: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (included).")],
    fmt: Annotated[str, typer.Option("--format", help="json, html, csv or md.")] = "json",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """The dispute resolution figures for a period, beside the previous one."""
    from sqlmodel import Session

    from . import report_render
    from .models import Council
    from .reports import report

    if fmt not in ("json", "html", "csv", "md"):
        raise BadValue(f"--format {fmt!r} is not known; use json, html, csv or md")
    start, end = parse_date(from_, "--from"), parse_date(to, "--to")
    e = env()
    db.require_schema(e.engine)
    with Session(e.engine) as session:
        r = report(session, e.protocol, e.calendar, e.taxonomy, e.settings.tz, start, end)
        council = session.get(Council, 1)
    if fmt == "html":
        text = report_render.to_html(r, council.name if council else "drp")
    else:
        text = {"json": report_render.to_json, "csv": report_render.to_csv,
                "md": report_render.to_md}[fmt](r)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text, encoding="utf-8")
        err.print(f"Wrote {out_file}.", markup=False)
    else:
        sys.stdout.write(text)


# --- people and the web app -----------------------------------------------------------------


@user_app.command("password")
def user_password(
    username: Annotated[str, typer.Argument(help="The person's username.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set a person's password for local sign-in (at least 12 characters)."""
    from .web.auth import set_password

    if not password_stdin:
        raise BadValue("give the password on standard input with --password-stdin, so it"
                       " stays out of your shell history")
    password = sys.stdin.readline().rstrip("\r\n")
    e = env()
    db.require_schema(e.engine)
    set_password(e.engine, username, password)
    out.print(f"Password set for {username}; their other sessions are signed out.")


@user_app.command("token")
def user_token(
    username: Annotated[str, typer.Argument(help="The person the system acts as.")],
    label: Annotated[str, typer.Option(help="What uses it.")] = "api",
) -> None:
    """Create an API token (printed once) for another system to use the JSON API."""
    from .web.auth import Auth

    e = env()
    db.require_schema(e.engine)
    now = clock_for(None, e.settings.tz).now()
    token = Auth(e.engine, e.settings).new_api_token(username, label, now)
    sys.stdout.write(token + "\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    no_flows: Annotated[bool, typer.Option("--no-flows", help="Do not serve the flows.")] = False,
) -> None:
    """Serve the web app (and, unless --no-flows, the flows on their schedules)."""
    import subprocess

    import uvicorn

    from .web.app import create_app

    e = env()
    db.require_schema(e.engine)
    flows_process = None
    if not no_flows:
        flows_process = subprocess.Popen(
            [sys.executable, "-m", "drp.cli", "flows", "serve"])
    out.print(f"drp is at http://{host}:{port}/ (sign in as a demo user; Ctrl-C stops).")
    try:
        uvicorn.run(create_app(e), host=host, port=port, log_level="warning",
                    proxy_headers=True)
    finally:
        if flows_process is not None:
            flows_process.terminate()
            flows_process.wait(timeout=30)


# --- flows ----------------------------------------------------------------------------------

FLOWS = ("timescales", "digest", "themes")


@flows_app.command("run")
def flows_run(
    name: Annotated[str, typer.Argument(help="timescales, digest or themes.")],
    now: Now = None,
    as_json: Json = False,
) -> None:
    """Run one flow once, as of --now (under a local Prefect server unless PREFECT_API_URL
    names one)."""
    if name not in FLOWS:
        raise BadValue(f"there is no flow {name!r}; the flows are {', '.join(FLOWS)}")
    e = env()
    db.require_schema(e.engine)
    if now:
        clock_for(now, e.settings.tz)  # a malformed --now is refused before Prefect starts
    from flows import prefect_home

    prefect_home(e.settings)
    if name == "timescales":
        from flows.timescales import timescales_flow as flow_fn
    elif name == "digest":
        from flows.digest import digest_flow as flow_fn
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
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in result["counts"].items())
        out.print(f"Timescales as of {result['today']}: {counts}. Mail: {result['mail']}.")
        for problem in result["problems"]:
            err.print(f"drp: {problem}", markup=False)
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
                  f" for the IRO (unsure). Trained on {result['trained_on']} examples.")


@flows_app.command("serve")
def flows_serve() -> None:
    """Serve every flow on its schedule until stopped (Ctrl-C)."""
    e = env()
    db.require_schema(e.engine)
    from flows import prefect_home

    prefect_home(e.settings)
    from flows.serve import serve_all

    out.print("Serving drp's flows: timescales hourly 07:00-18:00 on working days, the digest"
              " every other Monday at 08:00, themes nightly (Europe/London). Ctrl-C stops.")
    try:
        serve_all(say=out.print)
    except KeyboardInterrupt:
        out.print("Stopped serving the flows.")


def main() -> None:
    try:
        app()
    except DrpError as exc:
        err.print(f"drp: {exc.message}", markup=False)
        sys.exit(exc.exit_code)
    except OperationalError as exc:
        err.print(f"drp: database error ({db.reason(exc)}); check"
                  " DRP_DATABASE_URL and that `drp init` has run", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
