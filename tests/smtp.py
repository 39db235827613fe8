"""A real SMTP server on loopback (aiosmtpd) that records what it receives, and can be
stopped and started again on the same port."""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    rcpt: list[str]
    message: Message

    @property
    def subject(self) -> str:
        # As a mail client shows it: Python folds a 71-77 character subject onto its own
        # continuation line ("Subject:\r\n [drp] ..."), which unfolds with a leading space.
        return str(self.message["Subject"]).strip()

    def part(self, subtype: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == f"text/{subtype}":
                return str(part.get_content())  # type: ignore[attr-defined]
        raise KeyError(subtype)


@dataclass
class Recorder:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=default)
        self.received.append(Received(list(envelope.rcpt_tos), msg))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.recorder = Recorder()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        return self.recorder.received

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt]
