"""MSNP7 contact groups: ADG, RMG, REG (notification.md 4.18). Each is one store transaction that
bumps the list version; the reply echoes it. Older dialects do not have these commands at all."""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from ..store.store import GroupRemoval
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.groups import ABSURD_GROUP_NAME_BYTES, MAX_GROUP_NAME_BYTES, in_range, parse_group_id
from ..wire.lines import Command
from ..wire.names import InvalidText, decode_name, encode_name
from .lists import answer_refused, forget_contact
from .state import SessionState

if TYPE_CHECKING:
    from .protocol import NotificationProtocol


def _group_name(wire_name: str) -> str:
    """A group name from the wire: 229 over 61 encoded bytes, a disconnect when absurdly long,
    201 for one no name can hold (``%00``)."""
    try:
        name = decode_name(wire_name)
    except InvalidText:
        raise ProtocolError(ErrorCode.INVALID_PARAMETER) from None
    size = len(encode_name(name))
    if size > ABSURD_GROUP_NAME_BYTES:
        raise Disconnect("group name far too long")
    if size > MAX_GROUP_NAME_BYTES:
        raise ProtocolError(ErrorCode.GROUP_NAME_TOO_LONG)
    return name


def _group_id(text: str) -> int:
    """The group id of RMG/REG: not a number or out of 0..29 is a disconnect (notification.md 4.18)."""
    group = parse_group_id(text)
    if group is None or not in_range(group):
        raise Disconnect("group id out of range")
    return group


def _trid(command: Command, counts: tuple[int, ...]) -> int:
    if command.trid is None or len(command.args) not in counts:
        raise Disconnect(f"malformed {command.name}")
    return command.trid


def handle_adg(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``ADG t name 0`` -> ``ADG t ver name id 0`` (223 when all 30 ids are taken)."""
    trid = _trid(command, (1, 2))
    name = _group_name(command.args[0])

    def added(result: tuple[int, int]) -> None:
        version, group = result

        def remember(s: SessionState) -> None:
            s.set_group(group, name)

        conn.stream.apply(version, remember, own=True)
        conn.send("ADG", trid, version, encode_name(name), group, 0)

    return conn.realm.services.lists.add_group(conn.actor, name).addCallbacks(added, answer_refused)


def handle_reg(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``REG t id name 0`` -> ``REG t ver id name 0`` (224: no such group; group 0 may be renamed)."""
    trid = _trid(command, (2, 3))
    group = _group_id(command.args[0])
    name = _group_name(command.args[1])

    def renamed(version: int) -> None:
        def remember(s: SessionState) -> None:
            s.set_group(group, name)

        conn.stream.apply(version, remember, own=True)
        conn.send("REG", trid, version, group, encode_name(name), 0)

    return conn.realm.services.lists.rename_group(conn.actor, group, name).addCallbacks(renamed, answer_refused)


def handle_rmg(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``RMG t id`` -> ``RMG t ver id`` (230 for group 0, 224 for none). The contacts that were
    only in that group leave the FL: the client is told with ``REM 0 FL ver handle`` each (and the
    contacts with ``REM 0 RL``, through the list service)."""
    trid = _trid(command, (1,))
    group = _group_id(command.args[0])

    def removed(removal: GroupRemoval) -> None:
        version = removal.version
        forgets = [forget_contact(conn, "FL", contact) for contact in removal.left]

        def remember(s: SessionState) -> None:
            s.drop_group(group)
            for forget in forgets:
                forget(s)

        conn.stream.apply(version, remember, own=True)
        conn.send("RMG", trid, version, group)
        for contact in removal.left:
            conn.send("REM", 0, "FL", version, contact)

    return conn.realm.services.lists.remove_group(conn.actor, group).addCallbacks(removed, answer_refused)
