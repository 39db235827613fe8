"""Queueing case notes for the webhook (DRP_WEBHOOK_URL): the notifier every command, page and
flow uses (drp.mail.notifier), with each note added to the outbox beside the event's e-mails,
in the same transaction, whichever path writes the event (a person's unit of work, or the
timescale run's set-based writer). Delivery: notifications/webhook.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from .casenotes import webhook_row
from .directory import Directory
from .ladder.access import Line
from .ladder.protocol import Protocol
from .models import Alert
from .notify import SYSTEM_NAME, Notice, Notifier


@dataclass
class WebhookNotifier(Notifier):
    webhook_url: str = ""

    def _note(self, session: Session, protocol: Protocol, notice: Notice, now: datetime
              ) -> dict[str, Any] | None:
        event_id = notice.event.id
        if event_id is None:
            return None
        return webhook_row(session, protocol, self.tz, event_id=event_id,
                           kind=notice.event.kind, url=self.webhook_url, now=now)

    def deferred(self, session: Session, protocol: Protocol, alert: Alert, line: Line,
                 notice: Notice, now: datetime, directory: Directory | None = None,
                 actor_name: str = SYSTEM_NAME) -> list[dict[str, Any]]:
        # (a person's command queues through here too: Notifier.queue writes these rows)
        rows = super().deferred(session, protocol, alert, line, notice, now, directory,
                                actor_name)
        note = self._note(session, protocol, notice, now)
        return rows if note is None else [*rows, note]
