"""One MSNP command line: parse what a client sent, format what a server sends."""
from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from .numbers import MAX_UINT32, parse_number

MAX_TRID = MAX_UINT32


@attrs.frozen(slots=True)
class Command:
    """A parsed client command. ``trid`` is None when the second token is not a number."""

    name: str
    trid: int | None
    args: tuple[str, ...]
    payload: bytes | None = None

    def arg(self, index: int) -> str | None:
        return self.args[index] if index < len(self.args) else None


# A control byte anywhere in a command line, but for the CR that may end it (notification.md 1.1:
# parameters with control characters are percent-encoded, so a raw one is malformed input).
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f]|\r(?!\Z)")


def has_raw_control(line: bytes) -> bool:
    """True when ``line`` (without its LF) holds a control byte: tab and a final CR are allowed."""
    return _RAW_CONTROL.search(line) is not None


def parse(line: bytes) -> Command:
    """Parse one line without its terminator.

    Liberal on purpose: a trailing CR, trailing or doubled spaces and non-ASCII bytes are accepted
    (clients of the era differ); semantic checks are left to the handlers.
    """
    text = line.decode("utf-8", "replace")
    tokens = text.strip(" \r\t").split()
    if not tokens:
        return Command("", None, ())
    name = tokens[0]
    rest = tokens[1:]
    trid = parse_number(rest[0], MAX_TRID) if rest else None
    if trid is not None:
        rest = rest[1:]
    return Command(name, trid, tuple(rest))


def format_line(name: str, trid: int | None, *args: object) -> bytes:
    """``NAME [trid] args...`` + CRLF. ``trid`` None means the command has no TrID slot."""
    parts: list[str] = [name]
    if trid is not None:
        parts.append(str(trid))
    parts.extend(str(a) for a in args)
    return (" ".join(parts) + "\r\n").encode("utf-8")


def format_error(code: int, trid: int | None) -> bytes:
    return f"{int(code)} {trid if trid is not None else 0}\r\n".encode("ascii")


def format_payload(name: str, head: Iterable[object], payload: bytes) -> bytes:
    """A server payload command: the header line ends with the payload's byte length."""
    parts = [name, *(str(p) for p in head), str(len(payload))]
    return (" ".join(parts) + "\r\n").encode("utf-8") + payload
