"""What the command line and the API print: kept apart from the tables so a column can change
without breaking the JSON contract (docs: interface.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, field_serializer


class EventView(BaseModel):
    at: datetime
    actor: str
    kind: str
    from_stage: str | None
    to_stage: str | None
    comment: str | None

    @field_serializer("at")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()


class ActionView(BaseModel):
    no: int
    text: str
    owner: str
    due: date
    stage: str
    done: bool
    done_at: datetime | None
    overdue: bool

    @field_serializer("done_at")
    def _iso(self, value: datetime | None) -> str | None:
        return value.isoformat() if value else None


class AlertView(BaseModel):
    id: int
    child: str
    status: str
    stage: str
    iro: str
    responsible: str | None
    theme: str | None
    raised_at: datetime
    stage_due: date | None
    resolution_due: date
    overdue: bool
    # Beyond the contract's keys: useful to people and the web app.
    summary: str
    stage_title: str
    on_hold: bool
    hold_until: date | None
    team: str

    @field_serializer("raised_at")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()


class AlertDetail(AlertView):
    detail: str | None
    impact: str | None
    outcome_wanted: str | None
    outcome: str | None
    events: list[EventView]
    actions: list[ActionView]

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
