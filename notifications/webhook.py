"""The webhook transport: an outbox row of kind "webhook" is POSTed, as it was queued (its body
JSON), to the address queued with it, signed with HMAC-SHA256 over the body. Delivery is the
outbox's (claimed, marked, retried with the same growing waits), so a note is never lost; a
row resent after a crash or a lost answer carries the same Idempotency-Key, so the receiver
can tell a repeat (HTTP, like SMTP, has no de-duplication of its own).

`Routed` sends webhook rows this way and every other row by the mail transport, so one
delivery run serves both; a webhook row is never handed to the mail transport."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import httpx

from .transports import Outgoing, PermanentError, TransientError, Transport

WEBHOOK = "webhook"  # the outbox's kind of message sent by this transport
SIGNATURE_HEADER = "X-Drp-Signature"
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx: the receiver may take it later


def signature(secret: bytes, body: bytes) -> str:
    """The X-Drp-Signature header's value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookTransport:
    """POSTs each message's body to its address (`to_addr`) with one HTTP client per run."""

    def __init__(self, secret: str, timeout: float = 30.0) -> None:
        self.secret = secret.encode()
        self.timeout = timeout
        self._client: httpx.Client | None = None

    def send(self, out: Outgoing) -> None:
        """One POST. A 2xx is delivered; 408, 425, 429, a 5xx, a refused connection or a
        timeout is tried again later; any other answer is the message's failure (the receiver
        refuses it as it stands: a wrong secret, a body it cannot read)."""
        body = out.text.encode()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   SIGNATURE_HEADER: signature(self.secret, body),
                   "Idempotency-Key": out.key, "User-Agent": "drp-webhook"}
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        try:
            response = self._client.post(out.to_addr, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientError(f"cannot reach the webhook {_where(out.to_addr)}"
                                 f" ({type(exc).__name__})", connection=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in RETRY_STATUSES or status >= 500:
            raise TransientError(f"the webhook answered {status}; tried again later")
        raise PermanentError(f"the webhook refused the note ({status}); check"
                             " DRP_WEBHOOK_URL and DRP_WEBHOOK_SECRET with the receiver")

    def abort(self) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


def _where(url: str) -> str:
    """The address without its query (which may hold a token)."""
    return url.split("?", 1)[0]


class Routed:
    """Webhook rows to the webhook, the rest to the mail transport. An unreachable webhook
    stops only the webhook's rows for this run (each waits for its retry without being
    tried), never the mail's."""

    def __init__(self, mail: Transport, webhook: WebhookTransport | None) -> None:
        self.mail, self.webhook = mail, webhook
        self._webhook_down: str | None = None

    def send(self, out: Outgoing) -> None:
        if out.message != WEBHOOK:
            self.mail.send(out)
            return
        if self.webhook is None:  # queued while it was set: the note waits, never mailed
            raise TransientError("not sent: DRP_WEBHOOK_URL and DRP_WEBHOOK_SECRET are not"
                                 " set now")
        if self._webhook_down is not None:
            raise TransientError(f"not tried: {self._webhook_down} earlier in this run")
        try:
            self.webhook.send(out)
        except TransientError as exc:
            if exc.connection:
                self._webhook_down = str(exc)
            raise TransientError(str(exc)) from None

    def abort(self) -> None:
        abort = getattr(self.mail, "abort", None)
        if abort is not None:
            abort()
        if self.webhook is not None:
            self.webhook.abort()

    def close(self) -> None:
        try:
            self.mail.close()
        finally:
            if self.webhook is not None:
                self.webhook.close()
