"""The four lists and the settings under the list version: SYN, LST, ADD, REM, BLP, GTC, REA, PRP.

Each change is one store transaction that bumps the version; the reply echoes it, memory follows,
then the people it concerns are told (RL notices, BPR, presence flips).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ..store.records import ContactInfo
from ..store.store import PROPERTY_COLUMNS, ListChange, ListRefused
from ..wire import sync
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.lines import Command, format_line
from ..wire.names import decode_name, encode_name, encoded_name_fits, is_valid_handle, normalize_handle
from . import presence
from .state import SessionState

if TYPE_CHECKING:
    from .protocol import NotificationProtocol

EDITABLE_LISTS = frozenset({"FL", "AL", "BL"})
SETTABLE_PROPERTIES = frozenset({"PHH", "PHW", "PHM", "MOB"})
MAX_PHONE_BYTES = 95


def _refused(failure: Failure) -> None:
    failure.trap(ListRefused)
    raise ProtocolError(failure.value.code)


def _state(conn: "NotificationProtocol") -> SessionState:
    assert conn.state is not None
    return conn.state


def _need_trid(command: Command, min_args: int) -> int:
    if command.trid is None or len(command.args) < min_args:
        raise Disconnect(f"malformed {command.name}")
    return command.trid


def contact_info(conn: "NotificationProtocol", handle: str) -> ContactInfo | None:
    """Live data for an online contact, else what was loaded (or learnt from ADD/BPR)."""
    other = conn.realm.sessions.get(handle)
    if other is not None and other.state is not None:
        s = other.state
        return ContactInfo(handle, s.phones["PHH"], s.phones["PHW"], s.phones["PHM"], s.mobile_allowed,
                           s.allows(_state(conn).handle))
    return _state(conn).contacts.get(handle)


def listing(conn: "NotificationProtocol") -> sync.Listing:
    s = _state(conn)
    return sync.Listing(
        version=s.version, gtc=s.gtc, blp=s.blp, phones=s.phones, mobile_allowed=s.mobile_allowed,
        mobile_enabled=s.mobile_enabled, lists=s.lists,
        contacts={h: info for h in s.lists["FL"] if (info := contact_info(conn, h)) is not None},
    )


def handle_syn(conn: "NotificationProtocol", command: Command) -> None:
    trid = _need_trid(command, 1)
    if not command.args[0].isdigit():
        raise Disconnect("malformed SYN")
    cached = int(command.args[0])
    conn.synced = True
    state = _state(conn)
    # 0 means "no cache": always dump, even for a new account still at version 0.
    if cached and cached == state.version:
        conn.send("SYN", trid, cached)
        return
    assert conn.dialect is not None
    conn.write(b"".join(sync.dump(trid, listing(conn), conn.dialect)))


def handle_lst(conn: "NotificationProtocol", command: Command) -> None:
    trid = _need_trid(command, 1)
    name = command.args[0]
    if name not in ("FL", "AL", "BL", "RL"):
        raise Disconnect(f"LST of {name!r}")
    assert conn.dialect is not None
    conn.write(b"".join(sync.list_lines(trid, name, listing(conn), conn.dialect, with_bpr=False)))


def _list_and_contact(command: Command) -> tuple[str, str]:
    list_name = command.args[0]
    if list_name not in EDITABLE_LISTS:
        raise Disconnect(f"{command.name} on list {list_name!r}")  # RL is the server's
    contact = normalize_handle(command.args[1])
    if not is_valid_handle(contact):
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    return list_name, contact


def handle_add(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``ADD t FL|AL|BL handle name`` (a trailing MSNP7 group id is accepted and ignored)."""
    trid = _need_trid(command, 2)
    list_name, contact = _list_and_contact(command)
    wire_name = command.args[2] if len(command.args) > 2 else contact
    if not encoded_name_fits(wire_name):
        raise Disconnect("ADD with an over-long name")
    name = decode_name(wire_name)
    state = _state(conn)
    me = state.handle
    allowed_before = state.allows(contact)
    limit = conn.realm.config.list_limits[list_name]

    def added(change: ListChange) -> None:
        state.lists[list_name][contact] = name
        state.saw(change.version)
        conn.send("ADD", trid, list_name, change.version, contact, encode_name(name))
        if list_name != "FL":
            presence.tell_one(conn, contact, allowed_before)
            return
        if change.contact_info is not None:
            state.contacts[contact] = change.contact_info
        assert conn.dialect is not None
        if conn.synced and conn.dialect.phone_properties:
            conn.write(b"".join(sync.bpr_lines(change.version, contact, contact_info(conn, contact))))
        target = conn.realm.sessions.get(contact)
        if presence.sees(me, target):
            conn.write(presence.iln_line(trid, target))
        if target is not None and change.contact_version is not None:
            my_name = state.name
            target.deliver(
                format_line("ADD", 0, "RL", change.contact_version, me, encode_name(my_name)),
                change.contact_version,
                lambda s: s.lists["RL"].__setitem__(me, my_name),
            )

    return conn.realm.store.add_entry(conn.account_id, state.name, list_name, contact, name, limit).addCallbacks(
        added, _refused)


def handle_rem(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``REM t FL|AL|BL handle`` (a trailing MSNP7 group id is accepted and ignored)."""
    trid = _need_trid(command, 2)
    list_name, contact = _list_and_contact(command)
    state = _state(conn)
    me = state.handle
    allowed_before = state.allows(contact)

    def removed(change: ListChange) -> None:
        state.lists[list_name].pop(contact, None)
        state.saw(change.version)
        conn.send("REM", trid, list_name, change.version, contact)
        if list_name != "FL":
            presence.tell_one(conn, contact, allowed_before)
            return
        state.contacts.pop(contact, None)
        target = conn.realm.sessions.get(contact)
        if target is not None and change.contact_version is not None:
            target.deliver(
                format_line("REM", 0, "RL", change.contact_version, me),
                change.contact_version,
                lambda s: s.lists["RL"].pop(me, None),
            )

    return conn.realm.store.remove_entry(conn.account_id, list_name, contact).addCallbacks(removed, _refused)


def handle_blp(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    trid = _need_trid(command, 1)
    value = command.args[0]
    if value not in ("AL", "BL"):
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    state = _state(conn)
    watchers = list(state.lists["RL"])
    before = {w: state.allows(w) for w in watchers}

    def changed(version: int) -> None:
        state.blp = value
        state.saw(version)
        conn.send("BLP", trid, version, value)
        for watcher in watchers:
            presence.tell_one(conn, watcher, before[watcher])

    return conn.realm.store.set_setting(conn.account_id, "blp", value).addCallbacks(changed, _refused)


def handle_gtc(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    trid = _need_trid(command, 1)
    value = command.args[0]
    if value not in ("A", "N"):
        raise Disconnect(f"GTC {value!r}")
    state = _state(conn)

    def changed(version: int) -> None:
        state.gtc = value
        state.saw(version)
        conn.send("GTC", trid, version, value)

    return conn.realm.store.set_setting(conn.account_id, "gtc", value).addCallbacks(changed, _refused)


def handle_rea(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``REA t handle name``: the own friendly name, or the stored name of a list entry."""
    trid = _need_trid(command, 2)
    target = normalize_handle(command.args[0])
    wire_name = command.args[1]
    if not encoded_name_fits(wire_name):
        raise Disconnect("REA with an over-long name")
    name = decode_name(wire_name)
    state = _state(conn)
    if target != state.handle:
        def renamed_entry(version: int) -> None:
            state.saw(version)
            for entries in state.lists.values():
                if target in entries:
                    entries[target] = name
            conn.send("REA", trid, version, target, encode_name(name))

        return conn.realm.store.rename_contact(conn.account_id, target, name).addCallbacks(renamed_entry, _refused)
    if not state.verified:
        raise ProtocolError(ErrorCode.INVALID_FRIENDLY_NAME)  # the client locks the name anyway
    if not conn.realm.renames.allow(state.handle):
        raise ProtocolError(ErrorCode.CHANGING_TOO_RAPIDLY)  # about five quick renames, then 800

    def renamed(version: int) -> None:
        state.name = name
        state.saw(version)
        conn.send("REA", trid, version, state.handle, encode_name(name))
        if presence.is_visible(conn.status):
            presence.tell_watchers(conn)

    return conn.realm.store.rename_self(conn.account_id, name).addCallback(renamed)


def handle_prp(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``PRP t PHH|PHW|PHM|MOB [value]`` (value left out: clear it)."""
    trid = _need_trid(command, 1)
    key = command.args[0]
    if len(key) > 3:
        raise Disconnect(f"PRP key {key[:16]!r}")
    if key not in SETTABLE_PROPERTIES:
        raise ProtocolError(ErrorCode.NOT_EXPECTED)
    value: str | None = command.args[1] if len(command.args) > 1 else None
    if key == "MOB":
        if value not in ("Y", "N"):
            raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    elif value is not None and len(value.encode()) > MAX_PHONE_BYTES:
        raise Disconnect("PRP value too long")
    state = _state(conn)
    me = state.handle
    watchers = [w for w in state.lists["RL"] if state.allows(w)]
    shown = (value,) if value else ()
    field: dict[str, Any] = {PROPERTY_COLUMNS[key]: value == "Y" if key == "MOB" else value}

    def remember(s: SessionState) -> None:
        # Keep the watcher's copy for its next SYN dump, once this user is offline.
        if me in s.contacts:
            s.contacts[me] = attrs.evolve(s.contacts[me], **field)

    def changed(result: tuple[int, dict[str, int]]) -> None:
        version, bumped = result
        state.saw(version)
        if key == "MOB":
            state.mobile_allowed = value == "Y"
        else:
            state.phones[key] = value
        conn.send("PRP", trid, version, key, *shown)
        for watcher, watcher_version in bumped.items():
            other = conn.realm.sessions.get(watcher)
            if other is not None:
                other.deliver(format_line("BPR", None, watcher_version, me, key, *shown), watcher_version, remember)

    return conn.realm.store.set_property(conn.account_id, key, value, watchers).addCallback(changed)

