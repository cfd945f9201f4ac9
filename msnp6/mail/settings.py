"""The values of ``--smtp-relay HOST:PORT`` and ``--mail-from ADDRESS``, checked at start-up."""
from __future__ import annotations

from email.utils import parseaddr

import attrs

#: The port of a relay given without one.
SMTP_PORT = 25


class SettingError(ValueError):
    """An option value that is not what it should be (the message says what it should be)."""


@attrs.frozen(slots=True)
class MailSettings:
    """Where mail goes and whom it is from; ``sender`` is the ``From`` header as given (a name
    and an address, or the address alone), ``envelope`` the bare address (SMTP ``MAIL FROM``)."""

    host: str
    port: int
    sender: str
    envelope: str

    @property
    def domain(self) -> str:
        """The sender's domain: Message-IDs are made under it."""
        return self.envelope.rpartition("@")[2]


def parse_relay(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` (port 25) or ``[IPV6]:PORT`` -> (host, port)."""
    text = text.strip()
    host, port = text, str(SMTP_PORT)
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise SettingError(f"--smtp-relay is HOST:PORT, e.g. 127.0.0.1:25, not {text!r}")
        port = rest[1:] or port
    elif ":" in text:
        host, _, port = text.rpartition(":")
    if not host or not host.isascii() or any(c.isspace() or c in "/@[]" for c in host) \
            or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise SettingError(f"--smtp-relay is HOST:PORT, e.g. 127.0.0.1:25, not {text!r}")
    return host, int(port)


def parse_mail_from(text: str) -> tuple[str, str]:
    """``ADDRESS`` or ``NAME <ADDRESS>`` -> (the From header, the bare address)."""
    text = text.strip()
    if not text.isprintable():
        raise SettingError("--mail-from must be one line of printable characters")
    _, address = parseaddr(text)
    local, at, domain = address.rpartition("@")
    if not (at and local and domain and address.isascii()
            and not any(c.isspace() or c in "<>\"(),;:" for c in address)):
        raise SettingError(f"--mail-from is an address such as messenger@example.org "
                           f"(or \"Name <messenger@example.org>\"), not {text!r}")
    return text, address


def mail_settings(relay: str, mail_from: str) -> MailSettings | None:
    """The settings of ``--smtp-relay`` and ``--mail-from`` (None: no relay, e-mail is off).
    SettingError when they are wrong, or a relay is given without a sender."""
    if not relay.strip():
        return None
    host, port = parse_relay(relay)
    if not mail_from.strip():
        raise SettingError("--smtp-relay needs --mail-from ADDRESS (or $MSNP6_MAIL_FROM): "
                           "the address the server's mails come from")
    sender, envelope = parse_mail_from(mail_from)
    return MailSettings(host, port, sender, envelope)
