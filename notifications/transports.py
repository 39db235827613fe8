"""Two transports: .eml files in a folder (the embedded default) and SMTP (stdlib smtplib)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import smtplib
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import EmailMessage
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol


def private_folder(folder: Path) -> None:
    """Create `folder` and its missing parents for this user alone (0700): the mail, the
    database and drp's other files hold records of children (drp.db and drp.keys use this
    too). Folders that exist keep their modes."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):
            each.mkdir(mode=0o700)


@dataclass(frozen=True)
class Outgoing:
    """One e-mail, as the outbox hands it over."""

    row_id: int
    key: str
    to_addr: str
    subject: str
    text: str
    html: str
    created_at: datetime
    message: str


class TransientError(Exception):
    """Try again later (server down, 4xx). `connection` means the whole run should stop."""

    def __init__(self, message: str, *, connection: bool = False) -> None:
        super().__init__(message)
        self.connection = connection


class PermanentError(Exception):
    """This message cannot be delivered as it stands (5xx, bad address)."""


def message_id(out: Outgoing, sender: str) -> str:
    """Stable, derived from the outbox row: a resend after a crash is recognisable."""
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "drp.invalid"
    digest = hashlib.sha256(out.key.encode()).hexdigest()[:16]
    return f"<drp.{out.row_id}.{digest}@{domain}>"


def build_email(out: Outgoing, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = out.to_addr
    msg["Subject"] = out.subject
    msg["Date"] = format_datetime(out.created_at)
    msg["Message-ID"] = message_id(out, sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg["X-drp-Message"] = out.message
    msg.set_content(out.text)
    msg.add_alternative(out.html, subtype="html")
    return msg


def _part(subtype: str, body: str) -> str:
    body = body if body.endswith("\n") else body + "\n"
    return (f'Content-Type: text/{subtype}; charset="utf-8"\nMIME-Version: 1.0\n'
            f"Content-Transfer-Encoding: {'7bit' if body.isascii() else '8bit'}\n\n{body}")


def email_bytes(out: Outgoing, sender: str, linesep: str = "\n") -> bytes:
    """The message as written or sent: build_email's message (multipart/alternative, a plain
    text and an HTML part in UTF-8, 7bit or 8bit), written out directly: EmailMessage parses
    every header it is given and costs 5 ms a message here, most of a delivery's time.
    Addresses that are not ASCII (they need SMTPUTF8), a carriage return or a line too long
    for 8bit go build_email's way."""
    parts = (out.subject, out.text, out.html)
    if not (sender.isascii() and out.to_addr.isascii()) or "\n" in out.subject \
            or any("\r" in p for p in parts) \
            or any(len(line) > 900 for p in parts[1:] for line in p.split("\n")):
        return build_email(out, sender).as_bytes(
            policy=default_policy.clone(linesep=linesep))
    boundary = f"==============={uuid.uuid4().hex}=="
    subject = (compat32.fold("Subject", out.subject) if out.subject.isascii() else
               "Subject: " + Header(out.subject, "utf-8", header_name="Subject").encode()
               + "\n")
    text = (f'Content-Type: multipart/alternative; boundary="{boundary}"\nMIME-Version: 1.0\n'
            + compat32.fold("From", sender) + f"To: {out.to_addr}\n" + subject
            + f"Date: {format_datetime(out.created_at)}\n"
            f"Message-ID: {message_id(out, sender)}\n"
            "Auto-Submitted: auto-generated\n"  # RFC 3834: no auto-replies, please
            f"X-drp-Message: {out.message}\n\n"
            f"--{boundary}\n{_part('plain', out.text)}\n"
            f"--{boundary}\n{_part('html', out.html)}\n--{boundary}--\n")
    return (text if linesep == "\n" else text.replace("\n", linesep)).encode()


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Transport(Protocol):
    def send(self, out: Outgoing) -> None: ...

    def close(self) -> None: ...


class FileTransport:
    """Writes each message as one RFC 5322 .eml file; rewriting after a crash replaces the
    same file, so the folder never holds a message twice."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder, self.sender = folder, sender

    def send(self, out: Outgoing) -> None:
        """Write to a temporary file of this writer's own (process, thread and a random part:
        two deliverers never share one), then rename it into place atomically. A local error
        is this message's failure, to retry; it says nothing of any server."""
        path = self.folder / f"{out.row_id:08d}-{out.message}.eml"
        tmp = self.folder / (f".{path.stem}.{os.getpid()}.{threading.get_ident()}"
                             f".{uuid.uuid4().hex}.tmp")
        try:
            private_folder(self.folder)
            # The message is for its recipient alone: 0600 in a 0700 folder (os.replace
            # keeps the mode).
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(email_bytes(out, self.sender))
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise TransientError(f"cannot write to {self.folder}: {exc.strerror or exc}"
                                 ) from None

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The TLS settings for SMTP over TLS: the system's trusted certificates, read once a
    process (reading them costs 20-40 ms of CPU, which each connection paid), and shared by
    its connections as ssl allows. Only made where a connection uses TLS."""
    return ssl.create_default_context()


class SmtpTransport:
    """One connection per delivery run, opened on the first message."""

    def __init__(self, host: str, port: int, tls: str, user: str | None,
                 password: str | None, sender: str, timeout: float = 30.0) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.user, self.password, self.sender, self.timeout = user, password, sender, timeout
        self._smtp: smtplib.SMTP | None = None
        self._opening: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        smtp: smtplib.SMTP = (smtplib.SMTP_SSL(timeout=self.timeout, context=tls_context())
                              if self.tls == "ssl" else smtplib.SMTP(timeout=self.timeout))
        self._opening = smtp  # abort() can reach its socket while it waits for the banner
        try:
            smtp.connect(self.host, self.port)
            if self.tls == "starttls":
                smtp.starttls(context=tls_context())
            if self.user:
                smtp.login(self.user, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientError(f"SMTP sign-in refused ({exc.smtp_code}); check"
                                 " DRP_SMTP_USER and DRP_SMTP_PASSWORD", connection=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"cannot reach the SMTP server {self.host}:{self.port}"
                                 f" ({exc})", connection=True) from None
        finally:
            self._opening = None
        self._smtp = smtp
        return smtp

    def send(self, out: Outgoing) -> None:
        """Send one message. Only a lost connection stops the run (`connection=True`); what
        the server says of this message (a recipient refused, 4xx or 5xx), and what cannot be
        sent as it stands (a non-ASCII address to a server without SMTPUTF8), is this
        message's failure. smtplib.SMTPException is an OSError: the order matters."""
        smtp = self._connect()
        try:
            if self.sender.isascii() and out.to_addr.isascii():
                smtp.sendmail(self.sender, [out.to_addr],
                              email_bytes(out, self.sender, linesep="\r\n"))
            else:  # smtplib asks for SMTPUTF8 (or says the server lacks it)
                smtp.send_message(build_email(out, self.sender), from_addr=self.sender,
                                  to_addrs=[out.to_addr])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            reason = f"{code} {_text(text)}"
            if code == 421:  # smtplib has closed the connection
                self._drop()
                raise TransientError(f"the SMTP server closed the connection ({reason})",
                                     connection=True) from None
            if 400 <= code < 500:
                raise TransientError(f"recipient {out.to_addr} deferred ({reason})") from None
            raise PermanentError(f"recipient {out.to_addr} refused ({reason})") from None
        except smtplib.SMTPServerDisconnected as exc:
            self._smtp = None
            raise TransientError(f"lost the SMTP server ({exc})", connection=True) from None
        except smtplib.SMTPResponseException as exc:
            reason = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            if exc.smtp_code == 421:  # the server is closing the connection
                self._drop()
                raise TransientError(f"the SMTP server closed the connection ({reason})",
                                     connection=True) from None
            if 400 <= exc.smtp_code < 500:
                raise TransientError(f"server deferred the message ({reason})") from None
            raise PermanentError(f"server refused the message ({reason})") from None
        except smtplib.SMTPNotSupportedError as exc:
            self._reset()
            raise PermanentError(f"cannot be sent to {out.to_addr} by this server ({exc})"
                                 ) from None
        except (UnicodeError, ValueError) as exc:
            self._reset()
            raise PermanentError(f"cannot be sent to {out.to_addr} as it stands ({exc})"
                                 ) from None
        except smtplib.SMTPException as exc:
            self._reset()
            raise TransientError(f"SMTP error ({exc})") from None
        except OSError as exc:
            self._drop()
            raise TransientError(f"lost the SMTP server ({exc})", connection=True) from None

    def _reset(self) -> None:
        """Back to a clean state after a message refused before the server saw it."""
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError):
                self._smtp.close()
        self._smtp = None

    def abort(self) -> None:
        """From another thread: end a send blocked on a silent server (it fails at once as a
        lost connection), so a deliverer can stop."""
        smtp = self._smtp or self._opening
        sock = getattr(smtp, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None
