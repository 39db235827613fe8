"""`drp outbox`: e-mails waiting, sent and failed."""

from typing import Annotated

import typer
from rich.table import Table

from .. import db, mail
from ..clock import clock_for
from ..errors import BadValue, DrpError
from .shared import Json, Now, emit, env, esc, out

outbox_app = typer.Typer(no_args_is_help=True, help="E-mails waiting, sent and failed.")


@outbox_app.command("list")
def outbox_list(
    failed: Annotated[bool, typer.Option("--failed", help="Only failed messages.")] = False,
    as_json: Json = False,
) -> None:
    """List the outbox: what waits to be sent and what failed, and why (sent messages are
    not listed: they are in the mail directory or with the SMTP server)."""
    from sqlmodel import Session, col, select

    from notifications.models import OutboxMessage
    from notifications.render import load_context

    runtime = env()
    db.require_schema(runtime.engine)
    with Session(runtime.engine) as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        query = query.where(OutboxMessage.status == "failed") if failed else query.where(
            OutboxMessage.status != "sent")
        rows = session.exec(query).all()
    templates = mail.renderer(runtime.settings)

    def subject(row: OutboxMessage) -> str:
        if row.subject or row.context is None:
            return row.subject
        try:  # queued in bulk: rendered when sent
            return templates.render(row.message, load_context(row.context)).subject
        except Exception as exc:
            return f"(cannot be rendered: {exc})"

    items = [{"id": row.id, "message": row.message, "alert": row.alert_id, "to": row.recipient,
              "address": row.to_addr, "status": row.status, "attempts": row.attempts,
              "next_attempt_at": row.next_attempt_at.isoformat(),
              "subject": subject(row), "error": row.last_error} for row in rows]
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
    for item in items:
        table.add_row(str(item["id"]), str(item["status"]), esc(str(item["to"])),
                      str(item["attempts"]), esc(str(item["subject"])),
                      esc(str(item["error"] or "")))
    out.print(table)


@outbox_app.command("send")
def outbox_send(now: Now = None) -> None:
    """Deliver every message waiting now (retry timers are for automatic delivery)."""
    runtime = env()
    db.require_schema(runtime.engine)
    report = mail.send(runtime.engine, runtime.settings, clock_for(now, runtime.settings.tz),
                       due_only=False)
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
    runtime = env()
    db.require_schema(runtime.engine)
    clock = clock_for(now, runtime.settings.tz)
    mail.refresh_addresses(runtime.engine)
    retried = retry(runtime.engine, clock.now(), message_id)
    if message_id is not None and retried == 0:
        raise BadValue(f"message {message_id} has not failed (or has no address yet);"
                       " see drp outbox list --failed")
    report = mail.send(runtime.engine, runtime.settings, clock, due_only=False)
    out.print(f"Retried {retried} message(s): {report.summary()}.")
