"""Hands one plain-text mail to the relay over SMTP (twisted.mail's client), never blocking.

The relay is expected to be a local MTA (postfix, msmtp...) that queues and relays on: this
speaks plain SMTP to it, without STARTTLS or AUTH, and tries once. A mail the relay does not
take within ``timeout`` seconds, or refuses, is logged in one line (the recipient and why: never
the message, whose links are secrets) and reported as False; the caller never sees an error.
"""
from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from io import BytesIO
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.logger import Logger
from twisted.mail.smtp import ESMTPSenderFactory, SMTPClientError, SMTPConnectError
from twisted.python.failure import Failure

from ..wire import trace
from .settings import MailSettings

log = Logger()

#: twisted.mail's client turns "\n" into CRLF itself (and escapes leading dots): compose with "\n".
_POLICY = policy.SMTP.clone(linesep="\n")


def compose(settings: MailSettings, to: str, subject: str, body: str, now: float) -> bytes:
    """The whole message: From, To, Subject, Date, Message-ID and a plain-text UTF-8 body."""
    message = EmailMessage(policy=_POLICY)
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(now, usegmt=True)
    # With the domain given, make_msgid does not ask the resolver for this host's name.
    message["Message-ID"] = make_msgid(domain=settings.domain)
    message.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    return message.as_bytes()


def why(failure: Failure) -> str:
    """What went wrong, for the log: the relay's answer or the network error, one short line."""
    error = failure.value
    if isinstance(error, SMTPConnectError):
        cause = error.__cause__ if error.__cause__ is not None else error.resp
        return f"could not be reached ({trace.escape(str(cause), limit=200)})"
    if isinstance(error, SMTPClientError):
        answer = error.resp.decode("utf-8", "replace") if isinstance(error.resp, bytes) else str(error.resp)
        return f"it answered {error.code} {trace.escape(answer, limit=200)}"
    if isinstance(error, (TimeoutError, CancelledError)):
        return "no answer in time"
    return trace.escape(f"{type(error).__name__}: {error}", limit=200)


class Mailer:
    def __init__(self, settings: MailSettings, reactor: Any, timeout: float = 30.0) -> None:
        self.settings = settings
        self.reactor = reactor
        self.timeout = timeout

    def send(self, to: str, subject: str, body: str, what: str) -> "Deferred[bool]":
        """Send one mail to ``to``; True once the relay has taken it, False (logged) if not.
        ``what`` names the mail in that log line (e.g. ``verification``)."""
        settings = self.settings
        message = compose(settings, to, subject, body, self.reactor.seconds())
        connectors: list[Any] = []

        def cancel(_: Deferred[Any]) -> None:
            factory.sendFinished = True  # no retry
            if factory.currentProtocol is not None and factory.currentProtocol.transport is not None:
                factory.currentProtocol.transport.abortConnection()
            else:
                for connector in connectors:
                    connector.disconnect()

        sent: Deferred[Any] = Deferred(cancel)
        # No user name or password: no AUTH; no host name: no STARTTLS. One try, each step
        # of the dialogue bounded by the timeout, the whole of it too (below).
        factory = ESMTPSenderFactory(None, None, settings.envelope, [to], BytesIO(message), sent, retries=0,
                                     timeout=self.timeout, heloFallback=True, requireAuthentication=False,
                                     requireTransportSecurity=False)
        factory.noisy = False  # no "Starting factory" line per mail
        connectors.append(self.reactor.connectTCP(settings.host, settings.port, factory, timeout=self.timeout))
        sent.addTimeout(self.timeout, self.reactor)

        def done(_: object) -> bool:
            return True

        def failed(failure: Failure) -> bool:
            log.warn("{what} mail to {to} not sent: the relay {relay} {reason}", what=what, to=trace.escape(to),
                     relay=f"{settings.host}:{settings.port}", reason=why(failure))
            return False

        return sent.addCallbacks(done, failed)
