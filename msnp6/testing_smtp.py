"""A catching SMTP server for tests: twisted.mail's ESMTP server on 127.0.0.1 that keeps every
message it is given as one JSON file in a folder (envelope and raw text), delivering nowhere.

``SmtpCatcher`` runs it as a subprocess (``python -m msnp6.testing_smtp FOLDER PORT``), as a
relay runs beside a real server; ``catching_factory`` serves it in the test's own reactor.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.mail import smtp
from zope.interface import implementer

from .testing import free_port, wait_until_listening


@implementer(smtp.IMessage)
class _Message:
    def __init__(self, folder: Path, number: int, origin: str, recipient: str) -> None:
        self.folder = folder
        self.number = number
        self.origin = origin
        self.recipient = recipient
        self.lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def eomReceived(self) -> "Deferred[None]":
        record = {"mail_from": self.origin, "rcpt_to": self.recipient,
                  "raw": b"\n".join(self.lines).decode("utf-8", "surrogateescape") + "\n"}
        name = self.folder / f"{self.number:06d}.json"
        temporary = name.with_suffix(".tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, name)  # whole files only: a reader never sees half a message
        return succeed(None)

    def connectionLost(self) -> None:
        self.lines = []


@implementer(smtp.IMessageDelivery)
class _Delivery:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = itertools.count(1)

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> None:
        return None

    def validateFrom(self, helo: Any, origin: smtp.Address) -> smtp.Address:
        return origin

    def validateTo(self, user: smtp.User) -> Any:
        number, origin, recipient = next(self.numbers), str(user.orig), str(user.dest)
        return lambda: _Message(self.folder, number, origin, recipient)


class _Factory(smtp.SMTPFactory):
    protocol = smtp.ESMTP

    def __init__(self, delivery: _Delivery) -> None:
        super().__init__()
        self.delivery = delivery

    def buildProtocol(self, addr: Any) -> Any:
        p = super().buildProtocol(addr)
        p.delivery = self.delivery
        return p


def catching_factory(folder: Path) -> smtp.SMTPFactory:
    """An ESMTP server factory keeping each message in ``folder`` (one JSON file per recipient)."""
    folder.mkdir(parents=True, exist_ok=True)
    return _Factory(_Delivery(folder))


@attrs.frozen
class Caught:
    mail_from: str
    rcpt_to: str
    raw: str

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw.encode("utf-8", "surrogateescape"))
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())


def read_caught(folder: Path) -> list[Caught]:
    """Every message kept in ``folder`` so far, in the order they came."""
    return [Caught(**json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]


class SmtpCatcher:
    """The catching server in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder.parent / f"{self.folder.name}.out", "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "msnp6.testing_smtp", str(self.folder), str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_until_listening(self.proc, [self.port], timeout, lambda: "the catching SMTP server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def messages(self) -> list[Caught]:
        return read_caught(self.folder)

    def to(self, address: str) -> list[Caught]:
        return [m for m in self.messages() if m.rcpt_to == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15.0) -> list[Caught]:
        """The first ``count`` messages to ``address``, once that many have come."""
        deadline = time.monotonic() + timeout
        while len(found := self.to(address)) < count:
            assert time.monotonic() < deadline, f"no mail to {address} within {timeout:g} s"
            time.sleep(0.05)
        return found[:count]


def main(argv: list[str]) -> None:
    from twisted.internet import reactor

    folder, port = Path(argv[0]), int(argv[1])
    reactor.listenTCP(port, catching_factory(folder), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
