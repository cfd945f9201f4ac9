"""What logs show of the wire: client text escaped and bounded, secrets hidden, payloads left out.

One place decides it for every service, so no log line can carry a NUL, a terminal escape, a
password answer or a cookie, and ``--trace`` shows every line a write carries.
"""
from __future__ import annotations

from .lines import Command

#: Most characters (or bytes) of client text one log field shows; the rest is counted.
MAX_LOGGED = 200

HIDDEN = "<hidden>"

# Control characters, the backslash itself and bytes that are not UTF-8 (decoded to lone
# surrogates by surrogateescape) are shown as escapes; other non-ASCII goes through the ASCII
# codec's backslashreplace below.
_ESCAPES: dict[int, str] = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F)}
_ESCAPES.update({0xDC00 + b: f"\\x{b:02x}" for b in range(0x80, 0x100)})
_ESCAPES[ord("\\")] = "\\\\"

#: Server-to-client commands whose last argument counts the payload bytes that follow.
_SERVER_PAYLOAD = frozenset({b"MSG", b"NOT", b"IPG"})


def escape(text: str | bytes, limit: int = MAX_LOGGED) -> str:
    """Client-supplied text made safe for one log line: printable ASCII as is, everything else
    (NUL, CR, LF, ESC, non-ASCII) as a backslash escape; at most ``limit`` characters of it."""
    extra = len(text) - limit
    if isinstance(text, bytes):
        text = text[:limit].decode("utf-8", "surrogateescape")
    elif extra > 0:
        text = text[:limit]
    shown = text.translate(_ESCAPES).encode("ascii", "backslashreplace").decode("ascii")
    return shown + (f"...(+{extra})" if extra > 0 else "")


def _received_args(command: Command) -> tuple[str, ...]:
    args = command.args
    if command.name == "USR":
        if args[:1] == ("MD5",):
            # USR t MD5 S <md5 answer> (the NS's; a DS gets it too from a confused client).
            return args[:2] + ((HIDDEN,) if args[1:2] == ("S",) and len(args) > 2 else args[2:])
        return args[:1] + ((HIDDEN,) if len(args) > 1 else ())  # SB: USR t handle cookie
    if command.name == "ANS":
        return args[:1] + ((HIDDEN,) if len(args) > 1 else ()) + args[2:]  # ANS t handle cookie sid
    return args


def received(command: Command) -> str:
    """A received command as the trace shows it. Payloads (QRY's answer, a PAG, a chat message)
    are never shown: the header's byte count says how long it was."""
    trid = (str(command.trid),) if command.trid is not None else ()
    return escape(" ".join((command.name, *trid, *_received_args(command))))


def _sent_line(line: bytes) -> str:
    words = line.split(b" ")
    if b"CKI" in words:  # XFR t SB addr CKI cookie; RNG sid addr CKI cookie caller name
        i = words.index(b"CKI") + 1
        if i < len(words):
            words[i] = HIDDEN.encode()
            line = b" ".join(words)
    return escape(line)


def sent(data: bytes) -> list[str]:
    """Every line of one write as the trace shows it, payloads (the profile with its MSPAuth, a
    relayed message) left out."""
    lines: list[str] = []
    pos, end = 0, len(data)
    while pos < end:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            lines.append(_sent_line(data[pos:]))
            break
        line = data[pos:eol]
        pos = eol + 2
        if line.split(b" ", 1)[0] in _SERVER_PAYLOAD:
            length = line.rsplit(b" ", 1)[-1]
            if length.isdigit():
                pos += int(length)
        lines.append(_sent_line(line))
    return lines
