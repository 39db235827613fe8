"""`drp mail`: the e-mail messages drp sends."""

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import mail
from ..errors import BadValue
from .shared import env

if TYPE_CHECKING:
    from notifications.render import Renderer

mail_app = typer.Typer(no_args_is_help=True, help="The e-mail messages drp sends.")


@mail_app.command("preview")
def mail_preview(
    message: Annotated[str | None, typer.Argument(
        help="The message name, e.g. escalated; without one, every message and its"
             " subject.")] = None,
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part.")] = False,
    role: Annotated[str, typer.Option(
        help="responsible, iro, copy, iro_manager or owner.")] = "responsible",
) -> None:
    """Render a message with sample data, to review (or override) its wording."""
    from jinja2 import TemplateError, TemplateSyntaxError

    from notifications.samples import sample_context

    renderer = mail.renderer(env().settings)
    if message is None:
        for name in renderer.messages():
            sys.stdout.write(f"{name}: {_subject(renderer, name, sample_context(role))}\n")
        return
    try:
        rendered = renderer.render(message, sample_context(role))
    except KeyError as exc:
        raise BadValue(str(exc.args[0])) from None
    except TemplateError as exc:  # a council's own wording (DRP_TEMPLATES_DIR) that is broken
        where = f" (line {exc.lineno})" if isinstance(exc, TemplateSyntaxError) else ""
        raise BadValue(f"the {message!r} template cannot be rendered{where}: {exc.message};"
                       " correct it in DRP_TEMPLATES_DIR") from None
    sys.stdout.write(f"Subject: {rendered.subject}\n\n")
    sys.stdout.write(rendered.html if html else rendered.text)


def _subject(renderer: "Renderer", message: str, context: dict[str, Any]) -> str:
    """A message's subject in the list, or why it cannot be rendered with the sample."""
    from jinja2 import TemplateError

    try:
        return renderer.render(message, context).subject
    except (KeyError, TemplateError) as exc:
        return f"(cannot be rendered: {exc})"
