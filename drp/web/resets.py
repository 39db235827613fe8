"""Password reset by a one-time link: an administrator asks for one (the administration
page), drp queues an e-mail to the person with DRP_BASE_URL/reset/<token>, and the person
sets a new password there. The token is random (256 bits) and only its sha256 is kept
(drp.resetlinks.PasswordReset); it works once, for resetlinks.LIFETIME, and only while the
person's credentials are the ones it was issued in: a newer link, a new password or leaving
the organisation ends it. Using it sets the password by the rules `drp user password` uses
(drp.keys.hash_password), ends every session and API token of the person (their credential
epoch moves on: drp.web.auth.new_password) and clears their failed sign-ins. The request and
the use are audited; neither the token nor the password is ever written anywhere else but
the e-mail (the outbox row that carries it is emptied of its body once the link is used)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from notifications.models import OutboxMessage
from notifications.outbox import enqueue
from notifications.render import Renderer

from ..audit import Origin, record
from ..errors import BadValue, DrpError
from ..models import Council, Person
from ..resetlinks import LIFETIME, PasswordReset
from .auth import _digest, clear_strikes, new_password

MESSAGE = "password_reset"  # notifications/templates/password_reset.txt and .html
USED_BODY = "(A password reset link, used: removed from the outbox.)\n"


class LinkNotUsable(DrpError):
    """A reset link that is unknown, used, expired or superseded: the person asks an
    administrator for a new one."""

    http_status = 410  # Gone: used or expired; an unknown link is 404

    def __init__(self, message: str, status: int = 410) -> None:
        super().__init__(message)
        self.http_status = status


UNKNOWN = ("This link is not one drp sent. Check that you copied the whole link from the"
           " e-mail, or ask an administrator to send a new one.")
USED = "This link has already been used. Ask an administrator to send a new one."
EXPIRED = "This link has expired. Ask an administrator to send a new one."


@dataclass(frozen=True)
class Sent:
    """A link queued: for whom (name, username), until when, and the outbox row's id."""

    name: str
    username: str
    expires_at: datetime
    outbox_id: int | None


def send_link(s: Session, renderer: Renderer, base_url: str, username: str, by: str,
              now: datetime, origin: Origin | None = None) -> Sent:
    """In the caller's transaction (a page's, with its form's one-time key): issue a link for
    `username` and queue its e-mail, with the audit row; earlier links of theirs not yet
    used stop working. `by`: the administrator."""
    token = secrets.token_urlsafe(32)
    person = s.exec(select(Person).where(Person.username == username)).first()
    if person is None or person.id is None or not person.active:
        raise BadValue("there is no such person in the organisation now", field="person")
    if not person.email:
        raise BadValue(f"{person.name} has no e-mail address; add one in the organisation"
                       " file, then send the link", field="person")
    s.execute(update(PasswordReset).where(
        col(PasswordReset.person_id) == person.id, col(PasswordReset.used_at).is_(None),
        col(PasswordReset.expires_at) > now).values(expires_at=now))
    row = PasswordReset(token_hash=_digest(token), person_id=person.id, requested_by=by,
                        created_at=now, expires_at=now + LIFETIME,
                        epoch=person.credential_epoch)
    s.add(row)
    s.flush()
    council = s.get(Council, 1)
    context = {
        "council": council.name if council else "drp",
        "recipient": {"name": person.name, "part": "the person the link is for"},
        "link": f"{base_url.rstrip('/')}/reset/{token}",
        "link_text": "Set a new password", "valid_hours": int(LIFETIME.total_seconds() // 3600),
    }
    queued = enqueue(s, key=f"{MESSAGE}:{row.id}", message=MESSAGE, alert_id=None,
                     recipient=person.username, to_addr=person.email, now=now,
                     rendered=renderer.render(MESSAGE, context))
    record(s, origin, at=now, actor=by, action="reset_sent",
           detail=f"password reset link {row.id} sent to {person.username}, works once until"
                  f" {row.expires_at:%Y-%m-%d %H:%M} UTC")
    s.flush()
    return Sent(person.name, person.username, row.expires_at,
                queued.id if queued is not None else None)


def _usable(s: Session, token: str, now: datetime) -> tuple[PasswordReset, Person]:
    row = s.exec(select(PasswordReset).where(
        PasswordReset.token_hash == _digest(token[:200]))).first()
    if row is None:
        raise LinkNotUsable(UNKNOWN, 404)
    person = s.get(Person, row.person_id)
    if row.used_at is not None:
        raise LinkNotUsable(USED)
    if row.expires_at <= now or person is None or not person.active \
            or person.credential_epoch != row.epoch:
        raise LinkNotUsable(EXPIRED)
    return row, person


def person_for(engine: Engine, token: str, now: datetime) -> str:
    """The name of the person a usable link is for (the page greets them), or
    LinkNotUsable saying why not."""
    with Session(engine) as s:
        return _usable(s, token, now)[1].name


def use_link(engine: Engine, token: str, hashed: str, now: datetime,
             origin: Origin | None = None) -> str:
    """Set the password (already hashed by keys.hash_password's rules) through a usable link,
    once: the link is claimed by a conditional UPDATE, so of two uses at once one wins. Ends
    the person's sessions and tokens, clears their failed sign-ins; their username."""
    with Session(engine) as s:
        row, person = _usable(s, token, now)
        claimed = s.execute(update(PasswordReset).where(
            col(PasswordReset.id) == row.id, col(PasswordReset.used_at).is_(None))
            .values(used_at=now))
        if not getattr(claimed, "rowcount", 0):
            raise LinkNotUsable(USED)
        revoked = new_password(s, person, hashed, now)
        cleared = clear_strikes(s, person.username)
        s.execute(update(OutboxMessage).where(col(OutboxMessage.key) == f"{MESSAGE}:{row.id}")
                  .values(text_body=USED_BODY, html_body=""))
        record(s, origin, at=now, actor=person.username, action="password_reset",
               detail=f"password set through reset link {row.id} for {person.username};"
                      f" sessions ended, {revoked} API token(s) revoked, {cleared} failed"
                      " sign-in(s) cleared")
        s.commit()
        return person.username


def check_new_password(password: str, confirm: str) -> None:
    """The two fields agree (the length and hashing are keys.hash_password's)."""
    if not password:
        raise BadValue("Enter a new password", field="password")
    if password != confirm:
        raise BadValue("The passwords do not match; type the same password in both fields",
                       field="confirm")
