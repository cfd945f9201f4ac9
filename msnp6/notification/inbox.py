"""Events for an online session, turned into its protocol lines and its memory's changes."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .. import events as ev
from ..wire import mobile
from ..wire.hotmail import MailNotice, new_mail_payload
from ..wire.lines import format_line
from ..wire.names import encode_name
from . import presence
from .state import SessionState

if TYPE_CHECKING:
    from .protocol import NotificationProtocol


def handle_event(conn: "NotificationProtocol", event: ev.Event, loading: bool = False) -> None:
    """``loading``: the event arrived while the lists were loading; a list change the load already
    includes is skipped whole (the SYN dump will carry it)."""
    if loading:
        version = getattr(event, "version", None)
        assert conn.state is not None
        if version is not None and version <= conn.state.loaded_version:
            return
    _HANDLERS[type(event)](conn, event)


#: The last presence event and its line: a fan-out hands the same event to every watcher on this
#: node, so the line is formatted once, not once per watcher.
_last_presence: tuple[ev.PresenceChanged | None, bytes] = (None, b"")


def _presence(conn: "NotificationProtocol", e: ev.PresenceChanged) -> None:
    global _last_presence
    if conn.status is None:
        # Offline until its first CHG (notification.md 1.4, 3): that CHG's ILN burst shows
        # what is online then; nothing before it.
        return
    if not presence.note_shown(conn, e.handle, e.status, e.name):
        return  # the client shows this already
    event, line = _last_presence
    if event is not e:
        if e.status == "FLN":
            line = format_line("FLN", None, e.handle)
        else:
            line = format_line("NLN", None, e.status, e.handle, encode_name(e.name))
        _last_presence = (e, line)
    conn.write(line)


def _reverse_list(conn: "NotificationProtocol", e: ev.ReverseListChanged) -> None:
    contact, name = e.contact, e.name
    if e.added:
        conn.write(format_line("ADD", 0, "RL", e.version, contact, encode_name(name)))
        conn.stream.apply(e.version, lambda s: s.lists["RL"].__setitem__(contact, name))
    else:
        conn.write(format_line("REM", 0, "RL", e.version, contact))
        def forget(s: SessionState) -> None:
            s.lists["RL"].pop(contact, None)

        conn.stream.apply(e.version, forget)


def _contact_phone(conn: "NotificationProtocol", e: ev.ContactPhoneChanged) -> None:
    assert conn.dialect is not None
    shown = (e.value,) if e.value else ()
    if conn.dialect.phone_properties:
        conn.write(format_line("BPR", None, e.version, e.contact, e.key, *shown))
    field = {"PHH": "phone_home", "PHW": "phone_work", "PHM": "phone_mobile", "MOB": "mobile_allowed"}[e.key]
    value: Any = e.value == "Y" if e.key == "MOB" else e.value

    def remember(s: SessionState) -> None:
        # Kept for the next SYN dump, once this contact is offline.
        if e.contact in s.contacts:
            s.contacts[e.contact] = attrs.evolve(s.contacts[e.contact], **{field: value})

    conn.stream.apply(e.version, remember)


def _own_property(conn: "NotificationProtocol", e: ev.OwnPropertyChanged) -> None:
    # Changed on the web side. The protocol has no line for the owner's own property changed
    # elsewhere (as for an operator's MBE change): the session's memory and its directory record
    # follow, so new watchers' BPR lines and the next SYN show the new value.
    key, value = e.key, e.value
    conn.stream.apply(e.version, lambda s: s.set_property(key, value))
    conn.publish_record()


def _contact_deleted(conn: "NotificationProtocol", e: ev.ContactDeleted) -> None:
    state = conn.state
    assert state is not None
    contact = e.contact
    # Gone from the network before gone from the lists, whichever node's event comes first (the
    # deleted user's own FLN, from its node, may still be on its way; it adds no line then).
    if presence.note_shown(conn, contact, "FLN", ""):
        conn.write(format_line("FLN", None, contact))
    # The protocol has server-side REM 0 only for RL; clients apply REM by list name, so the
    # entry leaves each list the client shows it on.
    for list_name, entries in state.lists.items():
        if contact in entries:
            conn.write(format_line("REM", 0, list_name, e.version, contact))

    def forget(s: SessionState) -> None:
        for entries in s.lists.values():
            entries.pop(contact, None)
        s.contacts.pop(contact, None)
        s.set_fl_groups(contact, ())

    conn.stream.apply(e.version, forget)
    conn.publish_record()


def _name(conn: "NotificationProtocol", e: ev.NameChanged) -> None:
    pass  # for the user's switchboard connections; the session itself made the change


def _ring(conn: "NotificationProtocol", e: ev.Ring) -> None:
    conn.write(format_line("RNG", None, e.session_id, e.sb_address, "CKI", e.cookie, e.caller,
                           encode_name(e.caller_name)))


def _signed_in_elsewhere(conn: "NotificationProtocol", e: ev.SignedInElsewhere) -> None:
    if e.session != conn.session_id:
        conn.sign_out("OTH", "other_login")


def _account_changed(conn: "NotificationProtocol", e: ev.AccountChanged) -> None:
    field, value = e.field, e.value
    if field not in ("verified", "email_enabled", "mobile_enabled"):
        return

    def change(s: SessionState) -> None:
        setattr(s, field, value)

    if e.version is not None:
        conn.stream.apply(e.version, change)
    else:
        assert conn.state is not None
        change(conn.state)
    conn.publish_record()


def _account_deleted(conn: "NotificationProtocol", e: ev.AccountDeleted) -> None:
    conn.sign_out(None, "deleted")


def _account_disabled(conn: "NotificationProtocol", e: ev.AccountDisabled) -> None:
    # A plain OUT: OTH would tell the user they signed in elsewhere, SSD would make the client
    # reconnect (notification.md 4.27).
    conn.sign_out(None, "disabled")


def _kicked(conn: "NotificationProtocol", e: ev.SessionKicked) -> None:
    conn.sign_out(None, "kicked")


def _mail(conn: "NotificationProtocol", e: ev.MailArrived) -> None:
    state = conn.state
    assert state is not None
    if not state.email_enabled:
        return
    state.inbox_unread = e.unread
    dialect = conn.dialect
    assert dialect is not None
    conn.send_payload("MSG", ("Hotmail", "Hotmail"), new_mail_payload(MailNotice(
        from_name=e.from_name or e.from_addr, from_addr=e.from_addr, subject=e.subject,
        message_url=f"/cgi-bin/getmsg?msg={e.unread}", post_url=conn.realm.config.web_url("")),
        dialect.mail_notice_type, dialect.mail_notice_id))


def _page(conn: "NotificationProtocol", e: ev.PageArrived) -> None:
    state = conn.state
    assert state is not None
    conn.send_payload("IPG", (), mobile.ipg_payload(
        to_handle=state.handle, to_id=conn.account_id, from_handle=e.sender, from_id=e.sender_id,
        text=e.text, site_url=conn.realm.config.web_url("mobile/")))


_HANDLERS: dict[type[Any], Callable[[Any, Any], None]] = {
    ev.PresenceChanged: _presence,
    ev.ReverseListChanged: _reverse_list,
    ev.ContactPhoneChanged: _contact_phone,
    ev.OwnPropertyChanged: _own_property,
    ev.ContactDeleted: _contact_deleted,
    ev.NameChanged: _name,
    ev.Ring: _ring,
    ev.SignedInElsewhere: _signed_in_elsewhere,
    ev.AccountChanged: _account_changed,
    ev.AccountDeleted: _account_deleted,
    ev.AccountDisabled: _account_disabled,
    ev.SessionKicked: _kicked,
    ev.MailArrived: _mail,
    ev.PageArrived: _page,
}
