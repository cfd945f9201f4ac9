"""Which client commands carry a byte-counted payload, the check of their declared length, and the
frame decoder that reads them."""
from __future__ import annotations

from typing import Iterator

from .errors import FramingError
from .lines import Command, parse

#: Client-to-server payload commands (the last argument is the byte length).
NS_CLIENT_PAYLOAD = frozenset({"QRY", "PAG", "SDC"})
SB_CLIENT_PAYLOAD = frozenset({"MSG"})
#: What the dispatch server reads: nothing carries a payload there.
DS_CLIENT_PAYLOAD: frozenset[str] = frozenset()

#: The longest command line accepted, without its LF (a CR before the LF counts).
DEFAULT_MAX_LINE = 4096


def declared_length(command: Command, max_payload: int) -> int:
    """The payload byte count a payload command's header declares (its last argument).

    Raises FramingError when it is missing, not a plain ASCII number, or over ``max_payload``:
    the stream cannot be framed past such a header.
    """
    last = command.args[-1] if command.args else ""
    if not (last.isdigit() and last.isascii()):
        raise FramingError(f"{command.name} without a byte length")
    length = int(last)
    if length > max_payload:
        raise FramingError(f"{command.name} payload of {length} bytes is over the cap")
    return length


class FrameDecoder:
    """Turns a byte stream into Commands, one at a time (``next``), so nothing is parsed ahead
    of what the connection is ready to handle.

    Lines end in LF with an optional CR before it (bare LF is accepted: Gaim 2001 sent it).
    A payload command is complete once its declared byte count has arrived.
    """

    __slots__ = ("_payload_commands", "_max_line", "_max_payload", "_buffer", "_pos", "_pending", "_pending_length")

    def __init__(
        self,
        payload_commands: frozenset[str],
        max_line: int = DEFAULT_MAX_LINE,
        max_payload: int = 8192,
    ) -> None:
        self._payload_commands = payload_commands
        self._max_line = max_line
        self._max_payload = max_payload
        self._buffer = bytearray()
        self._pos = 0
        #: The header of a payload command whose bytes have not all arrived.
        self._pending: Command | None = None
        self._pending_length = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into commands."""
        return len(self._buffer) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    def next(self) -> Command | None:
        """The next complete command, or None until more bytes arrive.

        Raises FramingError on an over-long line, a bad or over-large payload length.
        """
        buf = self._buffer
        while True:
            if self._pending is not None:
                end = self._pos + self._pending_length
                if len(buf) < end:
                    return None
                head, self._pending = self._pending, None
                payload = bytes(buf[self._pos : end])
                self._pos = end
                return Command(head.name, head.trid, head.args, payload)
            newline = buf.find(b"\n", self._pos)
            if newline < 0:
                if len(buf) - self._pos > self._max_line:
                    raise FramingError("line too long")
                return None
            if newline - self._pos > self._max_line:
                raise FramingError("line too long")
            command = parse(bytes(buf[self._pos : newline]))
            self._pos = newline + 1
            if command.name in self._payload_commands:
                self._pending_length = declared_length(command, self._max_payload)
                self._pending = command
            elif command.name:
                return command

    def commands(self) -> Iterator[Command]:
        """Every complete command available now."""
        while (command := self.next()) is not None:
            yield command
