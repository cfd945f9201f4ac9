"""Service commands after login: PNG, CVR, OUT, and wrong-moment login commands."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire import trace
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.lines import Command
from .presence import go_offline

if TYPE_CHECKING:
    from .protocol import NotificationProtocol

#: The longest client version kept for ``msnp6-admin who`` (real ones are like 5.0.0540).
MAX_CLIENT_VERSION = 32


def handle_png(conn: "NotificationProtocol", command: Command) -> None:
    conn.send("QNG", None)


def handle_out(conn: "NotificationProtocol", command: Command) -> None:
    conn.ending = "out"
    go_offline(conn)
    conn.send("OUT", None)
    conn.close()


def handle_usr_again(conn: "NotificationProtocol", command: Command) -> None:
    raise ProtocolError(ErrorCode.ALREADY_LOGGED_IN)


def handle_ver_again(conn: "NotificationProtocol", command: Command) -> None:
    raise ProtocolError(ErrorCode.NOT_EXPECTED, close=True)


def handle_inf_again(conn: "NotificationProtocol", command: Command) -> None:
    conn.send("INF", command.trid, "MD5")


def handle_cvr(conn: "NotificationProtocol", command: Command) -> None:
    """``CVR t lcid os os-ver arch library client-ver client-id``: the client's own version is
    both the recommended and the minimum one, so no client is ever told to upgrade."""
    if command.trid is None or len(command.args) < 6:
        raise Disconnect("malformed CVR")
    version = command.args[5]
    shown = trace.escape(version, limit=MAX_CLIENT_VERSION)
    if shown != conn.client_version:
        conn.client_version = shown
        conn.publish_record()  # msnp6-admin who shows it
    url = conn.realm.config.web_url("download")
    conn.send("CVR", command.trid, version, version, version, url, url)
