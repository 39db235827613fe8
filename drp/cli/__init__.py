"""The `drp` command: a thin shell over the service layer (docs: interface.md).

One module per sub-command group (alert, org, cover, protocol, calendar, outbox, mail, flows,
user, report, themes), the top-level commands in root, and what they share in shared; this module
puts them together. Sub-command modules import shared, never each other or this module."""

from . import alert, calendar, cover, flows, mail, org, outbox, protocol, report, themes, user
from . import correction as correction_cli
from . import retention as retention_cli
from .child import child_app
from .export import export_app
from .root import app
from .shared import run

app.add_typer(alert.alert_app, name="alert")
app.add_typer(org.org_app, name="org")
app.add_typer(cover.cover_app, name="cover")
app.add_typer(protocol.protocol_app, name="protocol")
app.add_typer(calendar.calendar_app, name="calendar")
app.add_typer(outbox.outbox_app, name="outbox")
app.add_typer(mail.mail_app, name="mail")
app.add_typer(flows.flows_app, name="flows")
app.add_typer(user.user_app, name="user")
app.add_typer(report.report_app, name="report")
app.add_typer(themes.themes_app, name="themes")
app.add_typer(child_app, name="child")
app.add_typer(retention_cli.retention_app, name="retention")
alert.alert_app.command("correct")(correction_cli.alert_correct)
app.add_typer(export_app, name="export")

__all__ = ["app", "main"]


def main() -> None:
    """The `drp` script: refusals exit 1 with one line on stderr (shared.run)."""
    run(app)
