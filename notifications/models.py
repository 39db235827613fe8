"""The outbox's table, and the column type that keeps instants in UTC on SQLite too. It
lives with `notifications`, which imports nothing of drp: drp.models uses both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; SQLite drops tzinfo, so it is re-attached on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _instant(nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, **kw)


class OutboxMessage(SQLModel, table=True):
    """An e-mail waiting to go, written in the same transaction as the event that causes it.
    `key` (event and recipient) is unique, so no retry can queue a message twice."""

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    message: str = Field(max_length=40)
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)
    recipient: str = Field(max_length=80)
    to_addr: str | None = Field(default=None, max_length=254)
    subject: str = Field(max_length=300)
    text_body: str
    html_body: str
    # An event's e-mails (a person's command, the timescale run) carry their message's context
    # (JSON, as it stood at the event) and empty bodies; delivery renders them, once, and keeps
    # what it sent. Other messages (password resets, cover notices) are queued rendered.
    context: str | None = None
    status: str = Field(default="pending", max_length=16, index=True)
    attempts: int = 0
    created_at: datetime = _instant()
    next_attempt_at: datetime = _instant(index=True)
    claimed_at: datetime | None = _instant(nullable=True, default=None)
    sent_at: datetime | None = _instant(nullable=True, default=None)
    last_error: str | None = Field(default=None, max_length=500)
