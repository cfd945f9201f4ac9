"""Presence: CHG, and the ILN/NLN/FLN fan-out through the one visibility rule.

Watchers of U are the people on U's RL (they have U on their FL); U's own privacy decides which
of them see U. Every decision reads the in-memory state of online sessions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.lines import Command, format_line
from ..wire.names import encode_name

if TYPE_CHECKING:
    from .protocol import NotificationProtocol

#: Settable states; HDN shows as offline to others. FLN is a state but not settable (201).
STATES = frozenset({"NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN"})


def is_visible(status: str | None) -> bool:
    return status is not None and status != "HDN"


def presence_line(conn: "NotificationProtocol") -> bytes:
    """What watchers are told of ``conn``'s user right now: NLN when visible, else FLN."""
    assert conn.state is not None
    if is_visible(conn.status):
        return format_line("NLN", None, conn.status, conn.state.handle, encode_name(conn.state.name))
    return format_line("FLN", None, conn.state.handle)


def online_watchers(conn: "NotificationProtocol") -> Iterable["NotificationProtocol"]:
    """Online sessions that have this user on their FL and whom this user's privacy allows."""
    state = conn.state
    assert state is not None
    for watcher in list(state.lists["RL"]):
        other = conn.realm.sessions.get(watcher)
        if other is not None and other.state is not None and state.allows(watcher):
            yield other


def tell_watchers(conn: "NotificationProtocol") -> None:
    line = presence_line(conn)
    for other in online_watchers(conn):
        other.deliver(line)


def sees(viewer: str, contact: "NotificationProtocol | None") -> bool:
    """``sees(viewer, contact)``: the contact is online, not hidden, and allows the viewer."""
    return (
        contact is not None
        and contact.state is not None
        and is_visible(contact.status)
        and contact.state.allows(viewer)
    )


def tell_one(conn: "NotificationProtocol", watcher: str, allowed_before: bool) -> None:
    """After a privacy change: tell one watcher if what they may see of ``conn`` flipped."""
    assert conn.state is not None
    other = conn.realm.sessions.get(watcher)
    if other is None or other.state is None or watcher not in conn.state.lists["RL"]:
        return
    if not is_visible(conn.status) or allowed_before == conn.state.allows(watcher):
        return
    other.deliver(presence_line(conn) if not allowed_before else format_line("FLN", None, conn.state.handle))


def iln_line(trid: int, contact: "NotificationProtocol") -> bytes:
    assert contact.state is not None
    return format_line("ILN", trid, contact.status, contact.state.handle, encode_name(contact.state.name))


def handle_chg(conn: "NotificationProtocol", command: Command) -> None:
    if command.trid is None or not command.args:
        raise Disconnect("malformed CHG")
    state = command.args[0]
    if state not in STATES:
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    assert conn.state is not None
    first = conn.status is None
    before = conn.status
    conn.status = state
    conn.send("CHG", command.trid, state)
    if first:
        sessions = conn.realm.sessions
        me = conn.state.handle
        burst = [
            iln_line(command.trid, contact)
            for contact in (sessions.get(h) for h in conn.state.lists["FL"])
            if sees(me, contact)
        ]
        if burst:
            conn.write(b"".join(burst))
        conn.challenges.schedule()
    if is_visible(before) or is_visible(state):
        if before != state:
            tell_watchers(conn)


def go_offline(conn: "NotificationProtocol") -> None:
    """OUT, OUT OTH, OUT SSD or a dropped connection: FLN to watchers, once."""
    if conn.state is None or not is_visible(conn.status):
        conn.status = None
        return
    conn.status = None
    tell_watchers(conn)
