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
    # The child's team and IRO when it happened; whom the actor stood in for as cover.
    team: str | None = None
    iro: str | None = None
    as_cover_for: str | None = None
    data: dict[str, Any] | None = None  # what the event recorded beside its comment
    # Where it came from (drp.audit.Origin): cli/web/api/flow, the OS user or client address.
    channel: str | None = None
    os_user: str | None = None
    client: str | None = None

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


class CafcassView(BaseModel):
    """The referral to Cafcass (concurrent with the local process)."""

    referred_on: date
    referred_by: str
    legal_advice: str
    advised_on: date | None
    reason: str
    response: str | None
    response_note: str | None
    responded_on: date | None


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
    resolution_due: date | None  # None until the alert first enters a formal stage
    overdue: bool
    kind: str = "concern"  # or "good_practice"
    cafcass: CafcassView | None = None
    acknowledged_by: str | None = None  # the current stage's
    acknowledged_at: datetime | None = None
    # Beyond the contract's keys: useful to people and the web app.
    summary: str
    stage_title: str
    on_hold: bool
    hold_until: date | None
    team: str
    formal_since: date | None = None
    stage_responded: bool = False  # the current stage's response has been given
    related: list[int] = []  # linked alerts (siblings, the same concern)
    child_alerts: list[int] = []  # the child's other alerts, open and past

    @field_serializer("raised_at")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()

    @field_serializer("acknowledged_at")
    def _iso_ack(self, value: datetime | None) -> str | None:
        return value.isoformat() if value else None


class AlertDetail(AlertView):
    detail: str | None
    impact: str | None
    outcome_wanted: str | None
    outcome: str | None
    events: list[EventView]
    actions: list[ActionView]

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
