"""Switchboard: chat sessions joined with cookies from the notification server."""
from __future__ import annotations

from typing import Any


from .framing import Handler, MsnpConnection
from .wire.errors import Disconnect, ErrorCode, ProtocolError
from .wire.lines import Command
from .wire.payload import SB_CLIENT_PAYLOAD

#: The real switchboard closed the sender's connection for a larger MSG (hypothetic.org).
MAX_MESSAGE_BYTES = 1664


class SwitchboardProtocol(MsnpConnection):
    service = "sb"
    payload_commands = SB_CLIENT_PAYLOAD
    max_payload = MAX_MESSAGE_BYTES

    def __init__(self, realm: Any) -> None:
        super().__init__(realm)
        self.handle: str | None = None

    def handlers(self) -> dict[str, Handler]:
        return _LOGIN

    def redact(self, command: Command) -> str:
        if command.name in ("USR", "ANS"):
            return f"{command.name} {command.trid} {command.arg(0)} <cookie hidden>"
        return super().redact(command)

    def handle_usr(self, command: Command) -> None:
        if command.trid is None or len(command.args) != 2:
            raise Disconnect("malformed USR")
        if self.realm.tickets.redeem(command.args[1], command.args[0].lower()) is None:
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, close=True)
        raise ProtocolError(ErrorCode.SWITCHBOARD_FAILED, close=True)

    def handle_ans(self, command: Command) -> None:
        if command.trid is None or len(command.args) != 3 or not command.args[2].isdigit():
            raise Disconnect("malformed ANS")
        if self.realm.tickets.redeem(command.args[1], command.args[0].lower(), int(command.args[2])) is None:
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, close=True)
        raise ProtocolError(ErrorCode.SWITCHBOARD_FAILED, close=True)


_LOGIN: dict[str, Handler] = {
    "USR": SwitchboardProtocol.handle_usr,
    "ANS": SwitchboardProtocol.handle_ans,
    "OUT": lambda conn, command: conn.close(),
}

