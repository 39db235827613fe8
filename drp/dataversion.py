"""The data's token (migration 0019): one row whose token every write to an alert and what its
pages show changes, by triggers in the database (as `OrgVersion`'s for the organisation), so a
process may keep a page made under it and answer it again while it stands
(drp.web.pagecache)."""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

# What the token guards: the tables migration 0019 gave its triggers (a table added to what
# pages show needs them too, or pages reading it are made anew each time).
WATCHED = frozenset({"alert", "event", "action", "referral", "alert_link", "correction",
                     "child", "closure", "casenote_export"})


class DataVersion(SQLModel, table=True):
    """One row: a token that every write to `WATCHED` changes."""

    __tablename__ = "data_version"
    id: int = Field(default=1, primary_key=True)
    token: int = Field(sa_type=BigInteger)

