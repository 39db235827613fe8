"""Wiring the notifications package to drp's settings: the renderer, the transport, delivery
(after a command's commit, and in the background for the web app)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection

from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from notifications.models import OutboxMessage
from notifications.outbox import DeliveryReport, deliver
from notifications.render import Renderer
from notifications.transports import FileTransport, SmtpTransport, Transport
from notifications.webhook import Routed, WebhookTransport

from .clock import Clock
from .models import Person
from .notify import QUEUED, Notifier
from .settings import Settings

log = logging.getLogger(__name__)


def renderer(settings: Settings) -> Renderer:
    return Renderer(settings.templates_dir, settings.mail_detail)


def notifier(settings: Settings) -> Notifier:
    if settings.webhook_url:  # each case note queued for the webhook too
        from .casenotes_webhook import WebhookNotifier

        return WebhookNotifier(renderer=renderer(settings), base_url=settings.base_url,
                               tz=settings.tz, webhook_url=settings.webhook_url)
    return Notifier(renderer=renderer(settings), base_url=settings.base_url, tz=settings.tz)


def transport(settings: Settings) -> Transport:
    """The mail transport, and the webhook's rows POSTed beside it (DRP_WEBHOOK_URL): a
    webhook row waits, rather than goes by mail, while the webhook is not set."""
    secret = settings.webhook_secret
    hook = WebhookTransport(secret.get_secret_value()) if settings.webhook_url and secret \
        else None
    return Routed(_mail_transport(settings), hook)


def _mail_transport(settings: Settings) -> Transport:
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpTransport(settings.smtp_host, settings.smtp_port, settings.smtp_tls_mode,
                             settings.smtp_user, password, settings.mail_from)
    return FileTransport(settings.mail_dir, settings.mail_from)


def send(engine: Engine, settings: Settings, clock: Clock, *, due_only: bool = True,
         ids: Collection[int] | None = None) -> DeliveryReport:
    return deliver(engine, transport(settings), clock.now, due_only=due_only,
                   renderer=renderer(settings), ids=ids)


def queued_ids(session: Session) -> list[int]:
    """The ids of the outbox rows this session writes, filled in as it flushes (so a command
    delivers what it queued, and nothing else)."""
    found: list[int] = []

    def collect(session: Session, _context: object) -> None:
        found.extend(int(o.id) for o in session.new
                     if isinstance(o, OutboxMessage) and o.id is not None)

    event.listen(session, "after_flush", collect)
    session.info[QUEUED] = found  # and the rows an event's e-mails write (`insert_rows`)
    return found


def send_after_commit(engine: Engine, settings: Settings, clock: Clock,
                      ids: Collection[int] | None = None) -> DeliveryReport:
    """Deliver what a committed action queued (`ids`), with the transport's timeout. The
    action stands whatever happens here: if delivery cannot be done, the messages wait in the
    outbox for the next delivery (the report says so in its errors)."""
    try:
        return send(engine, settings, clock, ids=ids)
    except OperationalError as exc:
        from .db import reason

        return DeliveryReport(errors=[
            f"the database could not be reached for delivery ({reason(exc)})"])
    except Exception as exc:  # never the action's failure
        log.exception("mail delivery after a commit failed")
        return DeliveryReport(errors=[f"delivery failed ({type(exc).__name__}: {exc})"])


class Deliverer:
    """Delivers the outbox in a background thread, so no request waits for the mail server:
    woken after each committed action (`wake`), and every `poll` seconds for retries and
    what others queued. Its failures are logged; `stop` ends it, aborting a send that waits
    on a silent server."""

    def __init__(self, engine: Engine, settings: Settings, clock: Clock,
                 poll: float = 5.0) -> None:
        self.engine, self.settings, self.clock, self.poll = engine, settings, clock, poll
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None
        self.runs = 0

    def start(self) -> None:
        """Start the thread; an app started again while it runs keeps the one it has."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="drp-mail", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(min(timeout, 1.0))
        if thread.is_alive():  # a send waits on a silent server: end it
            abort = getattr(self._transport, "abort", None)
            if abort is not None:
                abort()
            thread.join(timeout)
        if thread.is_alive():
            log.error("mail delivery did not stop within %s s; it is left to end", timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self.deliver_once()

    def deliver_once(self) -> DeliveryReport | None:
        try:
            self._transport = transport(self.settings)
            report = deliver(self.engine, self._transport, self.clock.now,
                             renderer=renderer(self.settings), stop=self._stopping.is_set)
        except Exception:
            log.exception("mail delivery failed; the messages wait in the outbox")
            return None
        finally:
            self._transport = None
            self.runs += 1
        for line in report.errors:
            log.warning("mail delivery: %s", line)
        return report


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
