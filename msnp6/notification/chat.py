"""XFR SB: hand out a switchboard address and a cookie to start a chat."""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from ..core.tickets import Ticket
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.lines import Command
from .presence import is_visible

if TYPE_CHECKING:
    from .protocol import NotificationProtocol


def handle_xfr(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    if command.trid is None or len(command.args) != 1:
        raise Disconnect("malformed XFR")
    if command.args[0] != "SB":
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    # Hidden users, and users who have not set a status yet, cannot chat (913).
    if not is_visible(conn.status):
        raise ProtocolError(ErrorCode.NOT_ALLOWED_WHEN_OFFLINE)
    assert conn.state is not None and conn.dialect is not None
    realm, me = conn.realm, conn.state.handle
    # Each XFR SB makes a cookie: a rate per account, and a cap on the cookies one account holds
    # unused, so nobody can fill the node's memory (or Redis) with them (800: XFR SB too fast).
    # The cap is checked first (as the cookie is made): a request it refuses uses no allowance.
    trid, dialect, name = command.trid, conn.dialect.name, conn.state.name
    # Picked before the cookie is made: with no switchboard node alive there is nothing to issue.
    address = realm.sb_picker()
    if address is None:
        raise ProtocolError(ErrorCode.SERVER_UNAVAILABLE)

    def issued(ticket: Ticket | None) -> "Deferred[None]":
        if ticket is None:
            realm.limited("cookies-user", me)
            raise ProtocolError(ErrorCode.CHANGING_TOO_RAPIDLY)

        def allowed(ok: bool) -> None:
            if not ok:
                realm.session_tickets.revoke(ticket.cookie, me)
                realm.limited("xfr-sb", me)
                raise ProtocolError(ErrorCode.CHANGING_TOO_RAPIDLY)
            conn.send("XFR", trid, "SB", address, "CKI", ticket.cookie)

        return realm.windows.allow("xfr-sb", me).addCallback(allowed)

    return realm.session_tickets.issue(me, dialect, name).addCallback(issued)
