"""Which client commands carry a byte-counted payload, and the frame decoder that reads them."""
from __future__ import annotations

from collections import deque

from .errors import FramingError
from .lines import Command, parse

#: Client-to-server payload commands (the last argument is the byte length).
NS_CLIENT_PAYLOAD = frozenset({"QRY", "PAG", "SDC"})
SB_CLIENT_PAYLOAD = frozenset({"MSG"})
#: What the dispatch server reads: nothing carries a payload there.
DS_CLIENT_PAYLOAD: frozenset[str] = frozenset()

DEFAULT_MAX_LINE = 4096


class FrameDecoder:
    """Turns a byte stream into Commands.

    Lines end in LF with an optional CR before it (bare LF is accepted: Gaim 2001 sent it).
    A payload command is complete once its declared byte count has arrived.
    """

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
        self._pending: Command | None = None
        self._pending_length = 0
        self.ready: deque[Command] = deque()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Add bytes and decode every complete command into ``ready``.

        Raises FramingError on an over-long line, a bad or over-large payload length.
        """
        buf = self._buffer
        buf += data
        start = 0
        try:
            while True:
                if self._pending is not None:
                    end = start + self._pending_length
                    if len(buf) < end:
                        break
                    self.ready.append(
                        Command(
                            self._pending.name,
                            self._pending.trid,
                            self._pending.args,
                            bytes(buf[start:end]),
                        )
                    )
                    self._pending = None
                    start = end
                    continue
                newline = buf.find(b"\n", start)
                if newline < 0:
                    if len(buf) - start > self._max_line:
                        raise FramingError("line too long")
                    break
                if newline - start > self._max_line:
                    raise FramingError("line too long")
                command = parse(bytes(buf[start:newline]))
                start = newline + 1
                if command.name in self._payload_commands:
                    self._pending = command
                    self._pending_length = self._declared_length(command)
                elif command.name:
                    self.ready.append(command)
        finally:
            del buf[:start]

    def _declared_length(self, command: Command) -> int:
        if not command.args or not command.args[-1].isdigit() or not command.args[-1].isascii():
            raise FramingError(f"{command.name} without a byte length")
        length = int(command.args[-1])
        if length > self._max_payload:
            raise FramingError(f"{command.name} payload of {length} bytes is over the cap")
        return length
