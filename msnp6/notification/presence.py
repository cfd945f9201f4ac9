"""CHG: the user's own status."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.lines import Command

if TYPE_CHECKING:
    from .protocol import NotificationProtocol

#: Settable states; HDN shows as offline to others. FLN is a state but not settable (201).
STATES = frozenset({"NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN"})


def handle_chg(conn: "NotificationProtocol", command: Command) -> None:
    if command.trid is None or not command.args:
        raise Disconnect("malformed CHG")
    state = command.args[0]
    if state not in STATES:
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    first = conn.status is None
    conn.status = state
    conn.send("CHG", command.trid, state)
    if first:
        conn.challenges.schedule()
