"""Wiring the notifications package to drp's settings: the renderer, the transport, delivery."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from notifications.models import OutboxMessage
from notifications.outbox import DeliveryReport, deliver
from notifications.render import Renderer
from notifications.transports import FileTransport, SmtpTransport, Transport

from .clock import Clock
from .models import Person
from .notify import Notifier
from .settings import Settings


def renderer(settings: Settings) -> Renderer:
    return Renderer(settings.templates_dir)


def notifier(settings: Settings) -> Notifier:
    return Notifier(renderer=renderer(settings), base_url=settings.base_url)


def transport(settings: Settings) -> Transport:
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpTransport(settings.smtp_host, settings.smtp_port, settings.smtp_tls_mode,
                             settings.smtp_user, password, settings.mail_from)
    return FileTransport(settings.mail_dir, settings.mail_from)


def send(engine: Engine, settings: Settings, clock: Clock, *, due_only: bool = True
         ) -> DeliveryReport:
    return deliver(engine, transport(settings), clock.now, due_only=due_only,
                   renderer=renderer(settings))


def send_after_commit(engine: Engine, settings: Settings, clock: Clock) -> DeliveryReport:
    """Deliver what a committed action queued. The action stands whatever happens here: if the
    database cannot be reached for delivery, the messages wait in the outbox for the next one
    (the report says so in its errors)."""
    try:
        return send(engine, settings, clock)
    except OperationalError as exc:
        from .db import reason

        return DeliveryReport(errors=[
            f"the database could not be reached for delivery ({reason(exc)})"])


def refresh_addresses(engine: Engine) -> int:
    """Failed for want of an address: take the address the organisation now has."""
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage.id, Person.email)
            .join(Person, col(Person.username) == OutboxMessage.recipient)
            .where(OutboxMessage.status == "failed", col(OutboxMessage.to_addr).is_(None),
                   col(Person.email).is_not(None))
        ).all()
        for row_id, email in rows:
            session.execute(update(OutboxMessage).where(col(OutboxMessage.id) == row_id)
                            .values(to_addr=email))
        session.commit()
        return len(rows)
