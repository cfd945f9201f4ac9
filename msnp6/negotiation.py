"""The login-stage commands the dispatch and notification servers share: VER, INF, early CVR."""
from __future__ import annotations

from typing import Any

from .wire.dialects import negotiate
from .wire.errors import Disconnect, ErrorCode, ProtocolError
from .wire.lines import Command
from .wire.names import is_valid_handle, normalize_handle


def handle_ver(conn: Any, command: Command) -> None:
    if command.trid is None:
        raise Disconnect("VER without a TrID")
    if conn.dialect is not None:
        raise ProtocolError(ErrorCode.NOT_EXPECTED, close=True)
    result = negotiate(command.args)
    if result.dialect is None:
        conn.send("VER", command.trid, "0")
        conn.close()
        return
    conn.dialect = result.dialect
    conn.send("VER", command.trid, *result.echo)


def handle_inf(conn: Any, command: Command) -> None:
    require_version(conn, command)
    conn.send("INF", command.trid, "MD5")


def handle_cvr_before_login(conn: Any, command: Command) -> None:
    """CVR belongs after login: before the first USR it gets 731, between the two USRs 715;
    both then close (hypothetic.org, MSNP7-era servers)."""
    if getattr(conn, "login_handle", None) is not None:
        raise ProtocolError(ErrorCode.NOT_EXPECTED, close=True)
    raise ProtocolError(ErrorCode.NOT_EXPECTED_CVR, close=True)


def require_version(conn: Any, command: Command) -> None:
    if conn.dialect is None:
        raise Disconnect(f"{command.name} before VER")
    if command.trid is None:
        raise Disconnect(f"{command.name} without a TrID")


def login_handle(command: Command) -> str:
    """The handle of ``USR t MD5 I handle``; a malformed one gets 911 and a disconnect."""
    if len(command.args) != 3:
        raise Disconnect("USR MD5 I with the wrong number of parameters")
    handle = normalize_handle(command.args[2])
    if not is_valid_handle(handle):
        raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, close=True)
    return handle
