"""The four lists and the settings under the list version: SYN, LST, ADD, REM, BLP, GTC, REA, PRP.

Each change is one store transaction that bumps the version; the reply echoes it, memory follows,
then the people it concerns are told (RL notices, BPR, presence flips).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ..directory.record import PresenceRecord
from ..services.lists import SETTABLE_PROPERTIES, valid_property
from ..store.records import ContactInfo
from ..store.store import ListChange, ListRefused
from ..wire import sync
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.groups import DEFAULT_GROUP, MAX_GROUPS, in_range, parse_group_id
from ..wire.lines import Command
from ..wire.names import (
    InvalidText,
    decode_name,
    encode_name,
    encoded_name_fits,
    is_valid_handle,
    normalize_handle,
)
from ..wire.numbers import parse_number
from . import presence
from .state import SessionState

if TYPE_CHECKING:
    from .protocol import NotificationProtocol
    from .stream import Mutation

EDITABLE_LISTS = frozenset({"FL", "AL", "BL"})


def answer_refused(failure: Failure) -> None:
    """A change the store refused: its error code to the client."""
    failure.trap(ListRefused)
    assert isinstance(failure.value, ListRefused)
    raise ProtocolError(failure.value.code)


def _state(conn: "NotificationProtocol") -> SessionState:
    assert conn.state is not None
    return conn.state


def _need_trid(command: Command, min_args: int) -> int:
    if command.trid is None or len(command.args) < min_args:
        raise Disconnect(f"malformed {command.name}")
    return command.trid


def _contacts(conn: "NotificationProtocol", records: dict[str, PresenceRecord]) -> dict[str, ContactInfo]:
    """BPR data of the FL contacts: live for the online ones (from the directory), else what was
    loaded (or learnt from ADD/BPR since)."""
    s = _state(conn)
    me = s.handle
    contacts = {}
    for h in s.lists["FL"]:
        record = records.get(h)
        info = _live_info(record, me) if record is not None else s.contacts.get(h)
        if info is not None:
            contacts[h] = info
    return contacts


def _live_info(record: PresenceRecord, viewer: str) -> ContactInfo:
    return ContactInfo(record.handle, record.phone_home, record.phone_work, record.phone_mobile,
                       record.mobile_allowed, record.allows(viewer))


def listing(conn: "NotificationProtocol") -> "Deferred[sync.Listing]":
    """The lists as SQL holds them at ``state.version`` (waiting out a version gap first)."""

    def build(records: dict[str, PresenceRecord]) -> sync.Listing:
        s = _state(conn)
        return sync.Listing(
            version=s.version, gtc=s.gtc, blp=s.blp, phones=s.phones, mobile_allowed=s.mobile_allowed,
            mobile_enabled=s.mobile_enabled, lists=s.lists, contacts=_contacts(conn, records),
            groups=s.all_groups(), fl_groups=s.fl_groups,
        )

    return conn.settled().addCallback(
        lambda _: conn.realm.directory.get_many(list(_state(conn).lists["FL"]))).addCallback(build)


def handle_syn(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    trid = _need_trid(command, 1)
    cached = parse_number(command.args[0])
    if cached is None:
        raise Disconnect("malformed SYN")
    conn.synced = True

    def answer(listing: sync.Listing) -> None:
        # 0 means "no cache": always dump, even for a new account still at version 0.
        if cached and cached == listing.version:
            conn.send("SYN", trid, cached)
            return
        assert conn.dialect is not None
        conn.write(b"".join(sync.dump(trid, listing, conn.dialect)))

    return listing(conn).addCallback(answer)


def handle_lst(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    trid = _need_trid(command, 1)
    name = command.args[0]
    if name not in ("FL", "AL", "BL", "RL"):
        raise Disconnect(f"LST of {name!r}")
    assert conn.dialect is not None
    dialect = conn.dialect
    return listing(conn).addCallback(
        lambda listing: conn.write(b"".join(sync.list_lines(trid, name, listing, dialect, with_bpr=False))))


def _list_and_contact(command: Command) -> tuple[str, str]:
    list_name = command.args[0]
    if list_name not in EDITABLE_LISTS:
        raise Disconnect(f"{command.name} on list {list_name!r}")  # RL is the server's
    contact = normalize_handle(command.args[1])
    if not is_valid_handle(contact):
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    return list_name, contact


def _privacy_changed(conn: "NotificationProtocol", watchers: dict[str, bool]) -> None:
    """AL, BL or BLP moved: the directory learns the new summary, and each watcher whose view of
    this user flipped is told."""
    conn.publish_record()
    for watcher, allowed_before in watchers.items():
        presence.tell_one(conn, watcher, allowed_before)


def _name(wire_name: str, what: str) -> str:
    """A friendly name from the wire: 209 for a ``%00`` (no name holds one), a disconnect when
    over-long (as the real server did, notification.md 4.13)."""
    try:
        name = decode_name(wire_name)
    except InvalidText:
        raise ProtocolError(ErrorCode.INVALID_FRIENDLY_NAME) from None
    if not encoded_name_fits(name):
        raise Disconnect(f"{what} with an over-long name")
    return name


def _group_arg(conn: "NotificationProtocol", command: Command, list_name: str, index: int) -> int | None:
    """The MSNP7 group of an ``ADD``/``REM FL`` (``index``: where it stands). None for a dialect
    without groups, and for REM FL without one (the whole entry goes); ADD FL without one means
    group 0. Not a number: a disconnect. An id out of 0..29 goes to the store as MAX_GROUPS, an id
    no group has, so its 224 comes after the 205 of an unknown contact (notification.md 4.11)."""
    assert conn.dialect is not None
    if list_name != "FL" or not conn.dialect.groups:
        return None  # a trailing group id from an older client is ignored, as before
    if len(command.args) <= index:
        return DEFAULT_GROUP if command.name == "ADD" else None
    group = parse_group_id(command.args[index])
    if group is None:
        raise Disconnect(f"{command.name} FL with a malformed group id")
    return group if in_range(group) else MAX_GROUPS


def handle_add(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``ADD t FL|AL|BL handle name`` (MSNP7 FL: ``... name group``; a contact already on the FL
    joins the group)."""
    trid = _need_trid(command, 2)
    list_name, contact = _list_and_contact(command)
    name = _name(command.args[2] if len(command.args) > 2 else contact, "ADD")
    group = _group_arg(conn, command, list_name, 3)
    state = _state(conn)
    me = state.handle
    allowed_before = state.allows(contact)
    shown_group = () if group is None else (group,)

    def added(change: ListChange) -> "Deferred[None] | None":
        info = change.contact_info
        if not change.entry_moved:  # on the FL already: only its groups changed
            groups = change.groups
            conn.stream.apply(change.version, lambda s: s.set_fl_groups(contact, groups), own=True)
            conn.send("ADD", trid, list_name, change.version, contact, encode_name(name), *shown_group)
            return None

        def remember(s: SessionState) -> None:
            s.lists[list_name][contact] = name
            if list_name == "FL":
                s.set_fl_groups(contact, change.groups)
            if info is not None:
                s.contacts[contact] = info

        conn.stream.apply(change.version, remember, own=True)
        conn.send("ADD", trid, list_name, change.version, contact, encode_name(name), *shown_group)
        if list_name != "FL":
            _privacy_changed(conn, {contact: allowed_before})
            return None
        assert conn.dialect is not None
        dialect = conn.dialect

        def show(record: PresenceRecord | None) -> None:
            if conn.synced and dialect.phone_properties:
                live = _live_info(record, me) if record is not None else info
                conn.write(b"".join(sync.bpr_lines(change.version, contact, live)))
            if record is not None and record.seen_by(me):
                conn.write(presence.iln_line(conn, trid, record))

        return conn.realm.directory.get(contact).addCallback(show)

    def refused(failure: Failure) -> None:
        if isinstance(failure.value, ListRefused) and failure.value.code == ErrorCode.LIST_FULL:
            conn.realm.limited(list_name.lower(), me)
        answer_refused(failure)

    return conn.realm.services.lists.add(conn.actor, list_name, contact, name, group).addCallbacks(added, refused)


def forget_contact(conn: "NotificationProtocol", list_name: str, contact: str) -> "Mutation":
    """The session's memory without ``contact`` on ``list_name`` (and, for FL, its groups and
    phone data); the client forgets what it was shown of them."""
    if list_name == "FL" and conn.shown is not None:
        conn.shown.pop(contact, None)

    def forget(s: SessionState) -> None:
        s.lists[list_name].pop(contact, None)
        if list_name == "FL":
            s.contacts.pop(contact, None)
            s.set_fl_groups(contact, ())

    return forget


def handle_rem(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``REM t FL|AL|BL handle`` (MSNP7 FL: ``... handle group`` takes the contact out of that
    group; it stays on the FL while it is in another)."""
    trid = _need_trid(command, 2)
    list_name, contact = _list_and_contact(command)
    group = _group_arg(conn, command, list_name, 2)
    state = _state(conn)
    allowed_before = state.allows(contact)
    shown_group = () if group is None else (group,)

    def removed(change: ListChange) -> None:
        if not change.entry_moved:
            groups = change.groups
            conn.stream.apply(change.version, lambda s: s.set_fl_groups(contact, groups), own=True)
        else:
            conn.stream.apply(change.version, forget_contact(conn, list_name, contact), own=True)
        conn.send("REM", trid, list_name, change.version, contact, *shown_group)
        if list_name != "FL":
            _privacy_changed(conn, {contact: allowed_before})

    return conn.realm.services.lists.remove(conn.actor, list_name, contact, group).addCallbacks(removed, answer_refused)


def handle_blp(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    trid = _need_trid(command, 1)
    value = command.args[0]
    if value not in ("AL", "BL"):
        raise ProtocolError(ErrorCode.INVALID_PARAMETER)
    state = _state(conn)
    before = {w: state.allows(w) for w in state.lists["RL"]}

    def changed(version: int) -> None:
        conn.stream.apply(version, lambda s: setattr(s, "blp", value), own=True)
        conn.send("BLP", trid, version, value)
        _privacy_changed(conn, before)

    return conn.realm.services.lists.set_setting(conn.actor, "blp", value).addCallbacks(changed, answer_refused)


def handle_gtc(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    trid = _need_trid(command, 1)
    value = command.args[0]
    if value not in ("A", "N"):
        raise Disconnect(f"GTC {value!r}")

    def changed(version: int) -> None:
        conn.stream.apply(version, lambda s: setattr(s, "gtc", value), own=True)
        conn.send("GTC", trid, version, value)

    return conn.realm.services.lists.set_setting(conn.actor, "gtc", value).addCallbacks(changed, answer_refused)


def handle_rea(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``REA t handle name``: the own friendly name, or the stored name of a list entry."""
    trid = _need_trid(command, 2)
    target = normalize_handle(command.args[0])
    name = _name(command.args[1], "REA")
    state = _state(conn)
    lists = conn.realm.services.lists
    if target != state.handle:
        def rename_entries(s: SessionState) -> None:
            for entries in s.lists.values():
                if target in entries:
                    entries[target] = name

        def renamed_entry(version: int) -> None:
            conn.stream.apply(version, rename_entries, own=True)
            conn.send("REA", trid, version, target, encode_name(name))

        return lists.rename_contact(conn.actor, target, name).addCallbacks(renamed_entry, answer_refused)
    if not state.verified:
        raise ProtocolError(ErrorCode.INVALID_FRIENDLY_NAME)  # the client locks the name anyway

    def renamed(version: int) -> None:
        conn.stream.apply(version, lambda s: setattr(s, "name", name), own=True)
        conn.send("REA", trid, version, state.handle, encode_name(name))
        conn.publish_record()
        if presence.is_visible(conn.status):
            presence.tell_watchers(conn)

    def allowed(ok: bool) -> "Deferred[None]":
        if not ok:
            conn.realm.limited("rename", state.handle)
            raise ProtocolError(ErrorCode.CHANGING_TOO_RAPIDLY)  # about five quick renames, then 800
        return lists.rename_self(conn.actor, name).addCallback(renamed)

    return conn.realm.windows.allow("rename", state.handle).addCallback(allowed)


def handle_prp(conn: "NotificationProtocol", command: Command) -> "Deferred[None]":
    """``PRP t PHH|PHW|PHM|MOB [value]`` (value left out: clear it)."""
    trid = _need_trid(command, 1)
    key = command.args[0]
    if len(key) > 3:
        raise Disconnect(f"PRP key {key[:16]!r}")
    if key not in SETTABLE_PROPERTIES:
        raise ProtocolError(ErrorCode.NOT_EXPECTED)
    value: str | None = command.args[1] if len(command.args) > 1 else None
    if not valid_property(key, value):
        if key == "MOB":
            raise ProtocolError(ErrorCode.INVALID_PARAMETER)
        raise Disconnect("PRP value too long")
    state = _state(conn)
    watchers = [w for w in state.lists["RL"] if state.allows(w)]
    shown = (value,) if value else ()

    def changed(version: int) -> None:
        conn.stream.apply(version, lambda s: s.set_property(key, value), own=True)
        conn.send("PRP", trid, version, key, *shown)
        conn.publish_record()

    return conn.realm.services.lists.set_property(conn.actor, key, value, watchers).addCallback(changed)
