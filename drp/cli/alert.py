"""`drp alert`: raise alerts and move them up the ladder (docs: interface.md)."""

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from ..alerts import ActionIn, AlertService
from ..alerts.commands import CAFCASS_RESPONSES
from ..clock import parse_date
from ..errors import BadValue
from ..schemas import AlertDetail, AlertView
from .shared import AlertId, As, Json, Now, act, emit, env, esc, out, service, when

alert_app = typer.Typer(no_args_is_help=True, help="Raise alerts and move them up the ladder.")


def print_detail(view: AlertDetail, tz: ZoneInfo) -> None:
    status = view.status if view.status != "open" else f"open at {view.stage_title}"
    if view.kind == "good_practice":
        status = "a record of good practice (no ladder, no clock)"
    if view.on_hold:
        status += f" (on hold{' until ' + view.hold_until.isoformat() if view.hold_until else ''})"
    out.print(f"[bold]Alert {view.id}[/] for child {esc(view.child)} (team {esc(view.team)}):"
              f" {esc(status)}")
    out.print(f"  Summary: {view.summary}", markup=False)
    out.print(f"  IRO: {view.iro}; responsible now: {view.responsible or '-'}; "
              f"theme: {view.theme or '-'}", markup=False)
    if view.status == "open":
        overdue = " [red bold]OVERDUE[/]" if view.overdue else ""
        formal = (f"resolution due: {when(view.resolution_due)}" if view.resolution_due
                  else "no formal timescale yet (it starts at the first formal stage)")
        out.print(f"  Stage due: {when(view.stage_due)}; {formal}{overdue}")
        if view.acknowledged_by:
            ack = view.acknowledged_at.astimezone(tz) if view.acknowledged_at else None
            out.print(f"  Acknowledged by {view.acknowledged_by}"
                      f"{ack.strftime(' on %a %-d %b %Y at %H:%M') if ack else ''}"
                      " (acknowledged is not responded)", markup=False)
        elif answered_at_this_stage(view):
            out.print("  Answered at this stage (no separate acknowledgement)")
        elif view.responsible:
            out.print(f"  Not yet acknowledged by {view.responsible}", markup=False)
    for line in casework_lines(view):
        out.print(f"  {line}", markup=False)
    table = Table(title="Events", show_lines=False, title_justify="left")
    for column in ("#", "when", "who", "what", "stage", "comment"):
        table.add_column(column)
    for number, event in enumerate(view.events, start=1):
        stage = event.to_stage or ""
        if event.from_stage and event.from_stage != event.to_stage:
            stage = f"{event.from_stage} → {event.to_stage}"
        who = event.actor + (f" (as cover for {event.as_cover_for})" if event.as_cover_for
                             else "")
        table.add_row(str(number), event.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                      esc(who), event.kind, esc(stage), esc((event.comment or "")[:80]))
    out.print(table)
    if view.actions:
        actions = Table(title="Agreed actions", title_justify="left")
        for column in ("no", "action", "owner", "due", "done"):
            actions.add_column(column)
        for action in view.actions:
            done = "yes" if action.done else ("[red]overdue[/]" if action.overdue else "no")
            actions.add_row(str(action.no), esc(action.text), esc(action.owner),
                            action.due.isoformat(), done)
        out.print(actions)


STAGE_ENTERED = frozenset({"raised", "escalated", "auto_escalated", "reopened"})


def answered_at_this_stage(view: AlertDetail) -> bool:
    """Has the current stage had its response (read from the timeline, newest first, back
    to the stage's entry)?"""
    for event in reversed(view.events):
        if event.kind == "responded":
            return True
        if event.kind in STAGE_ENTERED:
            return False
    return False


def casework_lines(view: AlertDetail) -> list[str]:
    """The referral to Cafcass, linked alerts and the child's other alerts, in words."""
    lines = []
    if view.cafcass is not None:
        c = view.cafcass
        advised = f", {c.advised_on.isoformat()}" if c.advised_on else ""
        response = "none recorded yet"
        if c.response:
            response = c.response + (f" on {c.responded_on.isoformat()}" if c.responded_on
                                     else "") + (f" ({c.response_note})" if c.response_note
                                                 else "")
        lines.append(f"Referred to Cafcass on {c.referred_on.isoformat()} by {c.referred_by}"
                     f" (legal advice: {c.legal_advice}{advised}); Cafcass's response:"
                     f" {response}")
    if view.related:
        lines.append(f"Linked alerts: {', '.join(map(str, view.related))}")
    others = ", ".join(map(str, view.child_alerts)) or "none"
    lines.append(f"Child {view.child}'s other alerts: {others}")
    return lines


def print_list(views: list[AlertView]) -> None:
    if not views:
        out.print("No alerts to show.")
        return
    table = Table(title=f"{len(views)} alert(s)", title_justify="left")
    for column in ("id", "child", "team", "status", "stage", "responsible", "stage due",
                   "resolution due", "overdue", "summary"):
        table.add_column(column, overflow="fold")
    for view in views:
        table.add_row(
            str(view.id), esc(view.child), esc(view.team),
            view.status + (" (held)" if view.on_hold else "")
            + (" (good practice)" if view.kind == "good_practice" else ""),
            esc(view.stage), esc(view.responsible or "-"),
            view.stage_due.isoformat() if view.stage_due else "-",
            view.resolution_due.isoformat() if view.resolution_due else "-",
            "[red bold]yes[/]" if view.overdue else "no",
            esc(view.summary[:60]),
        )
    out.print(table)


def parse_action(text: str) -> ActionIn:
    """--action "WHAT|YYYY-MM-DD" or "WHAT|YYYY-MM-DD|OWNER" ("|" may appear in WHAT)."""
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
    due: Annotated[str | None, typer.Option(
        help="The informal stage's due date, YYYY-MM-DD (default and most: the protocol's)."
    )] = None,
    kind: Annotated[str, typer.Option(
        help="concern (the default) or good-practice: a record of good practice, with no"
             " ladder and no clock.")] = "concern",
    separate: Annotated[bool, typer.Option(
        "--separate", help="Confirm a separate matter when the child has an open alert.")
    ] = False,
    now: Now = None,
    as_json: Json = False,
) -> None:
    """Raise an alert; it starts at the first stage unless --stage names a formal one.
    With --kind good-practice, record good practice instead."""
    kind_key = kind.strip().lower().replace("-", "_")
    if kind_key not in ("concern", "good_practice"):
        raise BadValue(f"--kind {kind!r} is not known; use concern or good-practice",
                       field="kind")
    day = parse_date(due, "--due") if due else None
    if kind_key == "good_practice":
        act(None, as_, now, as_json,
            lambda alerts: alerts.record_good_practice(
                as_, child, summary, detail=detail, theme=theme, stage=stage, due=due,
                impact=impact, outcome_wanted=outcome_wanted),
            lambda view: f"Good practice recorded as alert {view.id} for {view.child}; its"
                         " team manager and head of service are told.")
        return
    suggested: list[Any] = []

    def do(alerts: AlertService) -> Any:
        alert = alerts.raise_alert(as_, child, summary, detail=detail, impact=impact,
                                   outcome_wanted=outcome_wanted, theme=theme, stage=stage,
                                   due_on=day, separate=separate)
        suggested.append(alerts.last_suggestion)
        return alert

    def done(view: AlertDetail) -> str:
        formal = (f"resolution due {when(view.resolution_due)}" if view.resolution_due
                  else "the formal timescale starts if it is escalated")
        line = (f"Alert {view.id} raised for {view.child} at {view.stage_title}; response due"
                f" {when(view.stage_due)} from {view.responsible}; {formal}.")
        suggestion = suggested[0] if suggested else None
        if theme is None and suggestion is not None:
            why = f" (because of: {', '.join(suggestion.because)})" if suggestion.because else ""
            verdict = " (unsure)" if suggestion.unsure else ""
            line += (f"\nSuggested theme: {suggestion.theme}, confidence"
                     f" {suggestion.confidence:.2f}{verdict}{why}. Confirm it or choose"
                     f" another: drp alert theme {view.id} --as {as_} --theme {suggestion.theme}")
        return line

    act(None, as_, now, as_json, do, done)


@alert_app.command("theme")
def alert_theme(
    alert_id: AlertId, as_: As,
    theme: Annotated[str, typer.Option(help="The theme key (drp themes list).")],
    now: Now = None, as_json: Json = False,
) -> None:
    """Confirm the suggested theme, or choose another (the allocated IRO or their cover)."""
    act(alert_id, as_, now, as_json, lambda alerts: alerts.set_theme(alert_id, as_, theme),
        lambda view: f"Alert {view.id}: theme {view.theme} confirmed.")


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
    actions = [parse_action(text) for text in action or []]
    act(alert_id, as_, now, as_json,
        lambda alerts: alerts.respond(alert_id, as_, message, actions),
        lambda view: f"Response recorded on alert {view.id}"
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
        lambda alerts: alerts.escalate(alert_id, as_, reason, to=to),
        lambda view: f"Alert {view.id} escalated to {view.stage_title}; response due"
                     f" {when(view.stage_due)} from {view.responsible}.")


def closed(view: AlertDetail) -> str:
    return f"Alert {view.id} is now {view.status} (at {view.stage})."


def _closing(verb: str, option: str, helptext: str) -> Callable[..., None]:
    """A command that ends (or reopens) an alert with one text: --outcome or --reason."""
    def command(
        alert_id: AlertId, as_: As,
        text: Annotated[str, typer.Option(f"--{option}", help=helptext)],
        now: Now = None, as_json: Json = False,
    ) -> None:
        method = getattr(AlertService, verb)
        act(alert_id, as_, now, as_json,
            lambda alerts: method(alerts, alert_id, as_, text), closed)

    return command


alert_app.command("resolve", help="Resolve the alert with its outcome.")(
    _closing("resolve", "outcome", "The outcome agreed."))
alert_app.command("withdraw", help="Withdraw the alert, with a reason.")(
    _closing("withdraw", "reason", "Why it is withdrawn."))


@alert_app.command("refer", help="Refer to Cafcass, from any open stage, with the legal"
                                 " advice taken; the alert stays open and the local process"
                                 " goes on.")
def alert_refer(
    alert_id: AlertId, as_: As,
    reason: Annotated[str, typer.Option(
        help="Why (after advice from the IRO manager and legal).")],
    legal_advice: Annotated[str | None, typer.Option(
        help="The legal advice taken: who advised (needed to refer).")] = None,
    advised_on: Annotated[str | None, typer.Option(
        help="When the legal advice was given, YYYY-MM-DD.")] = None,
    now: Now = None, as_json: Json = False,
) -> None:
    day = parse_date(advised_on, "--advised-on") if advised_on else None
    act(alert_id, as_, now, as_json,
        lambda alerts: alerts.refer(alert_id, as_, reason, legal_advice=legal_advice,
                                    advised_on=day),
        lambda view: f"Alert {view.id} referred to Cafcass; it stays {view.status} at"
                     f" {view.stage} and the local process goes on. Record Cafcass's response"
                     f" with: drp alert cafcass {view.id} --as {as_} --response ...")


@alert_app.command("cafcass")
def alert_cafcass(
    alert_id: AlertId, as_: As,
    response: Annotated[str, typer.Option(
        help=f"Cafcass's response: {'|'.join(CAFCASS_RESPONSES)}.")],
    note: Annotated[str | None, typer.Option(help="A note on the response.")] = None,
    now: Now = None, as_json: Json = False,
) -> None:
    """Record Cafcass's response to the referral (the allocated IRO or their cover)."""
    act(alert_id, as_, now, as_json,
        lambda alerts: alerts.cafcass_response(alert_id, as_, response, note),
        lambda view: f"Alert {view.id}: Cafcass's response recorded"
                     f" ({view.cafcass.response if view.cafcass else response}).")


@alert_app.command("acknowledge")
def alert_acknowledge(alert_id: AlertId, as_: As, now: Now = None,
                      as_json: Json = False) -> None:
    """Acknowledge the alert at its current stage (the person responsible, or their cover).
    Acknowledged is not responded: the response is still due."""
    act(alert_id, as_, now, as_json, lambda alerts: alerts.acknowledge(alert_id, as_),
        lambda view: f"Alert {view.id} acknowledged at {view.stage}; the response is still due"
                     f" {when(view.stage_due)}.")


@alert_app.command("move")
def alert_move(
    alert_id: AlertId, as_: As,
    child: Annotated[str, typer.Option(help="The child the alert belongs to, e.g. C1001.")],
    reason: Annotated[str, typer.Option(help="Why it was on the wrong child.")],
    now: Now = None, as_json: Json = False,
) -> None:
    """Move a misfiled alert to the right child (the allocated IRO or an IRO manager)."""
    act(alert_id, as_, now, as_json,
        lambda alerts: alerts.move(alert_id, as_, child, reason),
        lambda view: f"Alert {view.id} is now on child {view.child}'s record (IRO {view.iro}).")


@alert_app.command("link")
def alert_link(
    alert_id: AlertId,
    other_id: Annotated[int, typer.Argument(help="The related alert's number.", min=1)],
    as_: As, now: Now = None, as_json: Json = False,
) -> None:
    """Link two related alerts (e.g. siblings'); each then lists the other."""
    act(alert_id, as_, now, as_json, lambda alerts: alerts.link(alert_id, other_id, as_),
        lambda view: f"Alerts {view.id} and {other_id} are linked.")


alert_app.command("reopen", help="Reopen a resolved alert whose agreed actions are not done.")(
    _closing("reopen", "reason", "Why it is reopened."))


@alert_app.command("hold")
def alert_hold(
    alert_id: AlertId, as_: As,
    reason: Annotated[str, typer.Option(help="Why the clock stops (e.g. court hearing).")],
    until: Annotated[str | None, typer.Option(
        help="When the hold ends, YYYY-MM-DD (required; at most the protocol's limit away)."
    )] = None,
    now: Now = None, as_json: Json = False,
) -> None:
    """Put the alert on hold: working days on hold do not count."""
    end = parse_date(until, "--until") if until else None
    act(alert_id, as_, now, as_json,
        lambda alerts: alerts.hold(alert_id, as_, reason, until=end),
        lambda view: f"Alert {view.id} is on hold" + (f" until {when(view.hold_until)}."
                                                        if view.hold_until else "."))


@alert_app.command("resume")
def alert_resume(alert_id: AlertId, as_: As, now: Now = None, as_json: Json = False) -> None:
    """Restart the clock; due dates move on by the working days held."""
    act(alert_id, as_, now, as_json, lambda alerts: alerts.resume(alert_id, as_),
        lambda view: f"Alert {view.id} resumed; stage due {when(view.stage_due)}, resolution"
                     f" due {when(view.resolution_due)}.")


@alert_app.command("extend")
def alert_extend(
    alert_id: AlertId, as_: As,
    until: Annotated[str, typer.Option(help="The new stage due date, YYYY-MM-DD.")],
    reason: Annotated[str, typer.Option(help="Why more time is agreed.")],
    now: Now = None, as_json: Json = False,
) -> None:
    """Agree a later due date for the current stage."""
    day = parse_date(until, "--until")
    act(alert_id, as_, now, as_json, lambda alerts: alerts.extend(alert_id, as_, day, reason),
        lambda view: f"Alert {view.id}: stage due date extended to {when(view.stage_due)}.")


@alert_app.command("action-done")
def alert_action_done(
    alert_id: AlertId,
    action_no: Annotated[int, typer.Argument(help="The action's number.", min=1)],
    as_: As, now: Now = None, as_json: Json = False,
) -> None:
    """Mark an agreed action done."""
    act(alert_id, as_, now, as_json,
        lambda alerts: alerts.action_done(alert_id, action_no, as_),
        lambda view: f"Action {action_no} of alert {view.id} marked done.")


@alert_app.command("show")
def alert_show(alert_id: AlertId, as_: As, now: Now = None, as_json: Json = False) -> None:
    """Show an alert with its events and agreed actions."""
    with service(now) as alerts:
        view = alerts.show(alert_id, as_)
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
    with service(now) as alerts:
        views = alerts.list_alerts(as_, status)
    if as_json:
        emit([view.model_dump(mode="json") for view in views])
    else:
        print_list(views)
