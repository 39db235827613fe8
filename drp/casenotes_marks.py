"""The mark of a case note handed over by `drp export casenotes` (drp.casenotes): its own
module so drp.models can import it (the schema knows every table) without a cycle."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from notifications.models import UTCDateTime


class CasenoteExport(SQLModel, table=True):
    """A note handed over by `drp export casenotes`: once marked, a rerun leaves it out. The
    note is its event (no foreign key: retention may remove the event and keep the mark)."""

    __tablename__ = "casenote_export"
    event_id: int = Field(primary_key=True)
    exported_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
