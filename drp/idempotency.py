"""One-time keys, so a repeat submission returns the first result and changes nothing.

Every form that changes data carries a hidden key made when the page was rendered (`new_key`);
a JSON API write may send one in the `Idempotency-Key` header (the IETF httpapi draft's
convention). The shell claims the key as the first write of the change's own transaction and
records the result (a page's redirect, the API's status and body) in that same transaction:

    with work() as svc:
        first = once.claim(svc.s, username, svc.now)
        if first is not None:
            return <first.status, first.result>      # nothing else is done
        ... the change ...
        once.record(svc.s, who, status, result)

So the key and the change commit together or not at all. Two requests racing with one key
serialise on its row (PostgreSQL waits for the first transaction's insert; SQLite for its
write lock): the second finds the first's result. A refused change rolls back its claim, so
the key may be sent again. Keys are each person's own: the same key from another person is
theirs, apart. The key is refused (KeyRefused, 422) when the same person used it for another
route or other content. Keys are kept KEEP (a day), then
pruned by the next claim (one indexed DELETE of the expired rows)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Text, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel, col

from notifications.models import UTCDateTime

from .errors import DrpError

KEEP = timedelta(hours=24)
KEY_MAX = 128
# What a key may be, as the OpenAPI document says it: 1 to KEY_MAX visible ASCII characters,
# or the same in double quotes (a structured-field string).
KEY_PATTERN = f'^(?:"[!-~]{{1,{KEY_MAX}}}"|[!-~]{{1,{KEY_MAX}}})$'
FORM_FIELD = "idempotency_key"  # the hidden field of every form that changes data
HEADER = "Idempotency-Key"
# Fields that are not the submission's content (the session's CSRF token, the key itself).
NOT_CONTENT = frozenset({"csrf_token", FORM_FIELD})


class IdempotencyKey(SQLModel, table=True):
    """A key claimed by one person's request, with the result it got. Keys are each person's
    own (the IETF draft scopes them per client): another person's use of the same key is a
    request of theirs, neither replayed from nor blocked by the first."""

    __tablename__ = "idempotency_key"
    person: str = Field(primary_key=True, max_length=80)  # username
    key: str = Field(primary_key=True, max_length=KEY_MAX)
    route: str = Field(max_length=200)  # "POST /alerts/7/respond"
    fingerprint: str = Field(max_length=64)  # sha256 of the request's content
    status: int | None = None
    result: str | None = Field(default=None, sa_type=Text)  # a redirect's URL, or a JSON body
    created_at: datetime = Field(sa_type=UTCDateTime, index=True)


class KeyRefused(DrpError):
    """The key was used already by another person, or for another request."""

    http_status = 422


@dataclass(frozen=True)
class Stored:
    """The first result: HTTP status, and a redirect's URL or a JSON body."""

    status: int
    result: str


def new_key() -> str:
    """A fresh key for a form being rendered (unguessable: 144 random bits)."""
    return secrets.token_urlsafe(18)


def checked(key: str, field: str = FORM_FIELD) -> str:
    """A key as sent (a structured-field string's quotes taken off), or BadValue-like refusal:
    1 to KEY_MAX visible ASCII characters."""
    value = key.strip()
    if re.fullmatch(KEY_PATTERN, value) is None:
        raise KeyRefused(f"{field} must be 1 to {KEY_MAX} visible ASCII characters, such as a"
                         " UUID; send a fresh one")
    return value[1:-1] if len(value) >= 3 and value[0] == value[-1] == '"' else value


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def form_fingerprint(form: dict[str, str]) -> str:
    """A form's content: its fields, the CSRF token and the key left out."""
    content = sorted((k, v) for k, v in form.items() if k not in NOT_CONTENT)
    return fingerprint(json.dumps(content, ensure_ascii=False).encode())


def body_fingerprint(body: bytes) -> str:
    """A JSON body's content, whatever its spacing and key order; other bytes as they are."""
    try:
        parsed = json.loads(body) if body.strip() else None
    except ValueError:
        return fingerprint(body)
    return fingerprint(json.dumps(parsed, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False).encode())


@dataclass(frozen=True)
class Once:
    """One request's key, the route it was sent to and its content's fingerprint."""

    key: str
    route: str
    fingerprint: str

    def claim(self, session: Session, person: str, now: datetime) -> Stored | None:
        """None: the key is this request's, go on (and `record`). Else the first result, to be
        answered as it is. Must be the transaction's first write (see the module's text)."""
        session.execute(delete(IdempotencyKey).where(
            col(IdempotencyKey.created_at) < now - KEEP))
        row = {"key": self.key, "person": person, "route": self.route[:200],
               "fingerprint": self.fingerprint, "created_at": now}
        dialect = session.get_bind().dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
            IdempotencyKey).values(**row).on_conflict_do_nothing(
            index_elements=["person", "key"])
        if session.execute(insert.returning(col(IdempotencyKey.key))).first() is not None:
            return None  # inserted: this request's key
        first = session.execute(select(IdempotencyKey).where(
            col(IdempotencyKey.person) == person, col(IdempotencyKey.key) == self.key)
        ).scalar_one()
        if first.route != row["route"] or first.fingerprint != self.fingerprint:
            raise KeyRefused("this key was used for a different request; what you sent now"
                             " was not done: reload the page (or send a new Idempotency-Key)"
                             " to send it as a new request")
        if first.status is None or first.result is None:  # pragma: no cover - one transaction
            raise KeyRefused("this key's first request recorded no result; send a new key")
        session.expunge(first)
        return Stored(first.status, first.result)

    def record(self, session: Session, person: str, status: int, result: str) -> None:
        """The first result, in the change's transaction (`person`: as claimed)."""
        table = IdempotencyKey.__table__  # type: ignore[attr-defined]
        session.execute(table.update().where(table.c.person == person,
                                             table.c.key == self.key)
                        .values(status=status, result=result))


def for_form(form: dict[str, str], route: str) -> Once | None:
    """The key a form carries, or None when it carries none (a script's post, or a page
    rendered before keys existed: done as a fresh submission, as before)."""
    key = form.get(FORM_FIELD, "")
    if not key.strip():
        return None
    return Once(checked(key), route, form_fingerprint(form))
