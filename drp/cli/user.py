"""`drp user`: local sign-in, passwords, lock-outs and API tokens. Each credential issued,
revoked or cleared leaves an access-log row naming the operating-system user who did it."""

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .. import db
from ..errors import BadValue
from .shared import Json, emit, env, esc, origin, out

if TYPE_CHECKING:  # imported when used: argon2 and the web app's needs, not every command's
    from ..web.auth import Auth

user_app = typer.Typer(no_args_is_help=True,
                       help="Local sign-in: passwords, lock-outs and API tokens.")


def _auth() -> "Auth":
    from ..web.auth import Auth

    runtime = env()
    db.require_schema(runtime.engine)
    return Auth(runtime.engine, runtime.settings)


def _now() -> datetime:
    """Credentials are issued and revoked on the real clock (never --now)."""
    return datetime.now(UTC)


@user_app.command("password")
def user_password(
    username: Annotated[str, typer.Argument(help="The person's username.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set a person's password for local sign-in (at least 12 characters). Their sessions
    and API tokens end; a lock-out stays (drp user unlock)."""
    from ..web.auth import set_password

    if not password_stdin:
        raise BadValue("give the password on standard input with --password-stdin, so it"
                       " stays out of your shell history")
    password = sys.stdin.readline().rstrip("\r\n")
    auth = _auth()
    revoked = set_password(auth.engine, username, password, _now(), origin())
    out.print(f"Password set for {username}; their sessions are signed out and {revoked} API"
              " token(s) revoked.", markup=False)


@user_app.command("unlock")
def user_unlock(
    username: Annotated[str | None, typer.Argument(
        help="The person's username (or give --client).")] = None,
    client: Annotated[str | None, typer.Option(
        "--client", metavar="ADDRESS",
        help="Clear the failed sign-ins from this address instead (every username tried"
             " from it), e.g. when many people share one address.")] = None,
) -> None:
    """Let a person sign in again at once: their failed sign-ins, from every address, no
    longer count. With --client, the failed sign-ins from one address no longer count."""
    if (username is None) == (client is None):
        raise BadValue("give a username, or --client ADDRESS (one of the two)")
    if client is not None:
        cleared = _auth().unlock_client(client, _now(), origin())
        out.print(f"Unlocked the address {client}: {cleared} failed sign-in(s) no longer"
                  " count.", markup=False)
        return
    assert username is not None
    cleared = _auth().unlock(username, _now(), origin())
    out.print(f"Unlocked {username}: {cleared} failed sign-in(s) no longer count.",
              markup=False)


@user_app.command("token")
def user_token(
    username: Annotated[str | None, typer.Argument(
        help="The person the system acts as (not with --revoke).")] = None,
    label: Annotated[str, typer.Option(help="What uses it.")] = "api",
    expires: Annotated[int | None, typer.Option(
        "--expires", metavar="DAYS",
        help="Days until it stops working (default 90, at most 366).")] = None,
    revoke: Annotated[int | None, typer.Option(
        "--revoke", metavar="ID", help="Revoke this token (its id in drp user tokens).")
    ] = None,
) -> None:
    """Create an API token (printed once) for another system to use the JSON API, or revoke
    one with --revoke ID."""
    if revoke is not None:
        if username is not None:
            raise BadValue("--revoke takes the token's id alone; leave out the username")
        _revoke(revoke)
        return
    if username is None:
        raise BadValue("give the username the token acts as (or --revoke ID)")
    from ..web.auth import TOKEN_DAYS

    token = _auth().new_api_token(username, label, _now(),
                                  days=TOKEN_DAYS if expires is None else expires,
                                  origin=origin())
    sys.stdout.write(token + "\n")


def _revoke(token_id: int) -> None:
    username = _auth().revoke_token(token_id, _now(), origin())
    out.print(f"API token {token_id} of {username} is revoked.", markup=False)


@user_app.command("tokens")
def user_tokens(
    username: Annotated[str | None, typer.Argument(help="Only this person's tokens.")] = None,
    revoke: Annotated[int | None, typer.Option(
        "--revoke", metavar="ID", help="Revoke this token.")] = None,
    as_json: Json = False,
) -> None:
    """List API tokens (never the tokens themselves): id, person, label, created, expires,
    last used, revoked, and whether it works now."""
    if revoke is not None:
        _revoke(revoke)
        return
    rows = _auth().tokens(username)

    def at(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment else None

    items = [{"id": t.id, "username": who, "label": t.label, "created": at(t.created_at),
              "expires": at(t.expires_at), "last_used": at(t.last_used_at),
              "revoked": at(t.revoked_at), "works": works} for t, who, works in rows]
    if as_json:
        emit(items)
        return
    if not items:
        out.print("No API tokens.")
        return
    table = Table(title=f"{len(items)} API token(s)", title_justify="left")
    for column in ("id", "person", "label", "created", "expires", "last used", "revoked",
                   "works"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(*(esc(str(item[key] or "-")) for key in (
            "id", "username", "label", "created", "expires", "last_used", "revoked")),
            "yes" if item["works"] else "no")
    out.print(table)
