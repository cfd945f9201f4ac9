"""Presence: CHG, and the ILN/NLN/FLN fan-out through the one visibility rule.

Watchers of U are the people on U's RL (they have U on their FL); U's own privacy, in U's own
session, decides which of them are told, through the bus. What U sees of others (ILN) comes from
the presence directory's records, never from another connection.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed

from ..core.visibility import allowed
from ..directory.interface import Directory
from ..directory.record import PresenceRecord
from ..events import PresenceChanged
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.lines import Command, format_line
from ..wire.names import encode_name

if TYPE_CHECKING:
    from .protocol import NotificationProtocol

#: Settable states; HDN shows as offline to others. FLN is a state but not settable (201).
STATES = frozenset({"NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN"})


def is_visible(status: str | None) -> bool:
    return status is not None and status != "HDN"


def shown(conn: "NotificationProtocol") -> PresenceChanged:
    """What allowed watchers are told of ``conn``'s user right now: its state, or FLN."""
    assert conn.state is not None
    status = conn.status if is_visible(conn.status) else "FLN"
    return PresenceChanged(conn.state.handle, status or "FLN", conn.state.name)


def tell_watchers(conn: "NotificationProtocol") -> None:
    """Everyone who has this user on their FL and whom this user's privacy allows."""
    state = conn.state
    assert state is not None
    lists = state.lists
    conn.realm.bus.publish(allowed(lists["RL"], state.blp, lists["AL"], lists["BL"]), shown(conn))


def tell_one(conn: "NotificationProtocol", watcher: str, allowed_before: bool) -> None:
    """After a privacy change: tell one watcher if what they may see of ``conn`` flipped."""
    state = conn.state
    assert state is not None
    if watcher not in state.lists["RL"] or not is_visible(conn.status):
        return
    allowed = state.allows(watcher)
    if allowed != allowed_before:
        event = shown(conn) if allowed else PresenceChanged(state.handle, "FLN", state.name)
        conn.realm.bus.publish([watcher], event)


def note_shown(conn: "NotificationProtocol", handle: str, status: str, name: str) -> bool:
    """The client is about to be shown ``handle`` as ``status`` (FLN: offline) with ``name``:
    False if that is what it shows already (nothing to send)."""
    shown = conn.shown
    if status == "FLN":
        return shown is not None and shown.pop(handle, None) is not None
    if shown is None:
        conn.shown = shown = {}
    elif shown.get(handle) == (status, name):
        return False
    shown[handle] = (status, name)
    return True


def iln_line(conn: "NotificationProtocol", trid: int, contact: PresenceRecord) -> bytes:
    assert contact.status is not None
    note_shown(conn, contact.handle, contact.status, contact.name)
    return format_line("ILN", trid, contact.status, contact.handle, encode_name(contact.name))


def handle_chg(conn: "NotificationProtocol", command: Command) -> "Deferred[None] | None":
    if command.trid is None or not command.args:
        raise Disconnect("malformed CHG")
    status = command.args[0]
    if status not in STATES:
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    assert conn.state is not None
    trid = command.trid
    before = conn.status
    conn.status = status
    # The echo and the watchers' NLN wait for the directory write: whoever is told of the new
    # state (the client itself, a watcher on another node) and then CALs finds it stored.
    stored = conn.publish_record()
    if before is None:
        # The first CHG: who of my FL is online and lets me see them (ILN), then the challenge.
        me = conn.state.handle
        contacts = list(conn.state.lists["FL"])

        def burst(records: dict[str, PresenceRecord]) -> None:
            if conn.closing:
                return
            lines = [iln_line(conn, trid, r) for r in records.values() if r.seen_by(me)]
            conn.write(b"".join([format_line("CHG", trid, status), *lines]))
            conn.challenges.schedule()
            if is_visible(status):
                tell_watchers(conn)

        return stored.addCallback(lambda _: conn.realm.directory.get_many(contacts)).addCallback(burst)

    def echo(_: None) -> None:
        if conn.closing:
            return
        conn.send("CHG", trid, status)
        if before != status and (is_visible(before) or is_visible(status)):
            tell_watchers(conn)

    return stored.addCallback(echo)


def go_offline(conn: "NotificationProtocol") -> None:
    """OUT, OUT OTH, OUT SSD or a dropped connection: FLN to watchers, once."""
    was_visible = conn.state is not None and is_visible(conn.status)
    conn.status = None
    if was_visible:
        tell_watchers(conn)


def repair(conn: "NotificationProtocol", directory: Directory) -> "Deferred[None]":
    """After a bus outage (events lost): show the client what ``directory`` now says of each FL
    contact, where that differs from what it was shown (NLN, or FLN). ``directory`` must fail
    when it cannot be read (not answer "offline"): a repair on a guess would be a new error."""
    state = conn.state
    if state is None or conn.status is None or conn.closing:
        return succeed(None)
    me = state.handle
    contacts = list(state.lists["FL"])

    def fix(records: dict[str, PresenceRecord]) -> None:
        if conn.closing:
            return
        lines = []
        for contact in contacts:
            record = records.get(contact)
            if record is not None and record.seen_by(me):
                assert record.status is not None
                if note_shown(conn, contact, record.status, record.name):
                    lines.append(format_line("NLN", None, record.status, contact, encode_name(record.name)))
            elif note_shown(conn, contact, "FLN", ""):
                lines.append(format_line("FLN", None, contact))
        if lines:
            conn.write(b"".join(lines))

    return directory.get_many(contacts).addCallback(fix)
