"""Dispatch server: VER/INF/USR MD5 I, answered with a referral to a notification server."""
from __future__ import annotations

from typing import Any

from .framing import Handler, MsnpConnection
from .negotiation import handle_cvr_before_login, handle_inf, handle_ver, login_handle, require_version
from .wire.dialects import Dialect
from .wire.errors import Disconnect, ErrorCode, ProtocolError
from .wire.lines import Command
from .wire.payload import DS_CLIENT_PAYLOAD


class DispatchProtocol(MsnpConnection):
    service = "ds"
    payload_commands = DS_CLIENT_PAYLOAD

    def __init__(self, realm: Any) -> None:
        super().__init__(realm)
        self.dialect: Dialect | None = None

    def handlers(self) -> dict[str, Handler]:
        return _HANDLERS

    def handle_usr(self, command: Command) -> None:
        require_version(self, command)
        package, stage = command.arg(0), command.arg(1)
        if package != "MD5":
            raise Disconnect(f"USR with package {package!r}")
        if stage == "S":
            # The DS never issued a salt, so this is a command at the wrong moment.
            raise ProtocolError(ErrorCode.NOT_EXPECTED, close=True)
        if stage != "I":
            raise Disconnect(f"USR MD5 {stage!r}")
        handle = login_handle(command)
        assert self.dialect is not None
        ns = self.realm.ns_picker(handle)
        if ns is None:  # no notification node is alive: "server unavailable", try again later
            raise ProtocolError(self.dialect.store_unavailable_error, close=True)
        self.send("XFR", command.trid, "NS", *self.dialect.xfr_ns_args(ns, self.realm.address("ds")))
        self.close()

    def handle_out(self, command: Command) -> None:
        self.close()


_HANDLERS: dict[str, Handler] = {
    "VER": handle_ver,
    "INF": handle_inf,
    "CVR": handle_cvr_before_login,
    "USR": DispatchProtocol.handle_usr,
    "OUT": DispatchProtocol.handle_out,
}

