"""Password reset links: the table of links issued (only each token's hash is kept). The
issuing, checking and use are drp.web.resets' (the web app's sign-in, beside drp.web.auth);
this module holds the table alone, so drp.models can name it without importing the web app
(as drp.idempotency holds its own)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Field, SQLModel

from notifications.models import UTCDateTime

LIFETIME = timedelta(hours=24)  # a link works for a day after it is sent, once


class PasswordReset(SQLModel, table=True):
    """A one-time link to set a new password, sent by e-mail at an administrator's request.
    It works once, until `expires_at`, and only while the person's credentials are those it
    was issued in (`epoch`): a newer password or link, or leaving the organisation, ends it."""

    __tablename__ = "password_reset"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)  # sha256 of the token in the link
    person_id: int = Field(foreign_key="person.id", index=True)
    requested_by: str = Field(max_length=80)  # the administrator's username
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    epoch: int = 0  # the person's credential epoch when it was issued
