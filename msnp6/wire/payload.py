"""Which client commands carry a byte-counted payload, and the check of their declared length.

The framing itself (lines, then exactly that many payload bytes) is done by MsnpConnection on
Twisted's LineReceiver; what is decided here needs no I/O.
"""
from __future__ import annotations

from .errors import FramingError
from .lines import Command
from .numbers import parse_number

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
    length = parse_number(command.args[-1]) if command.args else None
    if length is None:
        raise FramingError(f"{command.name} without a byte length")
    if length > max_payload:
        raise FramingError(f"{command.name} payload of {length} bytes is over the cap")
    return length
