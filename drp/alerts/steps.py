"""The steps both writers take, the service layer one alert at a time and the timescale run's
set-based writer (drp/batch.py) a chunk at a time, so the two write the same rows: the
machine's view of an alert, and an event's columns. (A stage's clocks come from `drp.ladder.due`;
outbox rows from `drp.notify`.)"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from .. import audit
from ..audit import Origin
from ..ladder import access, due
from ..ladder.access import Actor, Line
from ..ladder.machine import AlertState
from ..ladder.protocol import Protocol
from ..models import Alert


def alert_state(protocol: Protocol, alert: Any, actor: Actor, line: Line, outstanding: int,
                *, referred: bool = False, **may_kw: Any) -> AlertState:
    """The machine's adapter for one alert (a model or a row), asking the access policy
    whether `actor` may fire each trigger."""
    return AlertState(
        status=alert.status, stage=alert.stage, cafcass_key=protocol.cafcass.key,
        on_hold=alert.on_hold, outstanding_actions=outstanding, referred=referred,
        acknowledged=alert.acknowledged_at is not None,
        responded=alert.stage_responded_at is not None,
        permitted=lambda trigger: access.may(actor, trigger, protocol, alert, line, **may_kw),
    )


def event_values(alert: Alert | Any, *, seq: int, at: datetime, actor: str, kind: str,
                 from_stage: str | None, to_stage: str | None, comment: str | None = None,
                 data: dict[str, Any] | None = None, stage_due: date | None = None,
                 team: str | None = None, iro: str | None = None,
                 as_cover_for: str | None = None, origin: Origin | None = None
                 ) -> dict[str, Any]:
    """An event's columns, with the alert's clocks as they stand after it (`stage_due` when
    the writer has not set it on the alert yet), the child's team and IRO at that moment,
    whom the actor stood in for, and where the act came from."""
    return {
        "alert_id": alert.id, "seq": seq, "at": at, "actor": actor, "kind": kind,
        "from_stage": from_stage, "to_stage": to_stage, "comment": comment,
        "data": {**due.clocks(alert, stage_due), **(data or {})},
        "team": team, "iro": iro, "as_cover_for": as_cover_for, **audit.columns(origin),
    }
