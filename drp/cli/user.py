"""`drp user`: local sign-in, passwords and API tokens."""

import sys
from typing import Annotated

import typer

from .. import db
from ..clock import clock_for
from ..errors import BadValue
from .shared import env, out

user_app = typer.Typer(no_args_is_help=True, help="Local sign-in: passwords and API tokens.")


@user_app.command("password")
def user_password(
    username: Annotated[str, typer.Argument(help="The person's username.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set a person's password for local sign-in (at least 12 characters)."""
    from ..web.auth import set_password

    if not password_stdin:
        raise BadValue("give the password on standard input with --password-stdin, so it"
                       " stays out of your shell history")
    password = sys.stdin.readline().rstrip("\r\n")
    runtime = env()
    db.require_schema(runtime.engine)
    set_password(runtime.engine, username, password)
    out.print(f"Password set for {username}; their other sessions are signed out.")


@user_app.command("token")
def user_token(
    username: Annotated[str, typer.Argument(help="The person the system acts as.")],
    label: Annotated[str, typer.Option(help="What uses it.")] = "api",
) -> None:
    """Create an API token (printed once) for another system to use the JSON API."""
    from ..web.auth import Auth

    runtime = env()
    db.require_schema(runtime.engine)
    now = clock_for(None, runtime.settings.tz).now()
    token = Auth(runtime.engine, runtime.settings).new_api_token(username, label, now)
    sys.stdout.write(token + "\n")
