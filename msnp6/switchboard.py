"""Switchboard: chat sessions joined with cookies the notification server hands out.

Caller path: ``XFR SB`` on the NS -> ``USR handle cookie`` here -> ``CAL``; callee path: ``RNG``
on the NS -> ``ANS handle cookie session``. Payloads are relayed byte for byte.
"""
from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from .core.chats import ChatSession
from .framing import Handler, MsnpConnection
from .notification.presence import sees
from .wire.errors import Disconnect, ErrorCode, ProtocolError
from .wire.lines import Command, format_line, format_payload
from .wire.names import encode_name, is_valid_handle, normalize_handle
from .wire.payload import SB_CLIENT_PAYLOAD

log = Logger()

#: The real switchboard closed the sender's connection for a larger MSG (hypothetic.org).
MAX_MESSAGE_BYTES = 1664
#: Acknowledgement letters of MSNP2-MSNP8 (``D`` is MSNP9+ P2P data).
ACK_TYPES = frozenset({"U", "N", "A"})


class SwitchboardProtocol(MsnpConnection):
    service = "sb"
    payload_commands = SB_CLIENT_PAYLOAD
    max_payload = MAX_MESSAGE_BYTES

    def __init__(self, realm: Any) -> None:
        super().__init__(realm)
        self.handle: str | None = None
        self.joined_name = ""
        self.chat: ChatSession["SwitchboardProtocol"] | None = None
        # The last name seen and its wire form: encoded again only after a rename.
        self._name_seen = ""
        self._wire_name = ""

    def handlers(self) -> dict[str, Handler]:
        return IN_SESSION if self.chat is not None else LOGIN

    def redact(self, command: Command) -> str:
        if command.name in ("USR", "ANS"):
            return f"{command.name} {command.trid} {command.arg(0)} <cookie hidden>"
        return super().redact(command)

    @property
    def name(self) -> str:
        """The participant's current friendly name (a rename on the NS shows up here too)."""
        assert self.handle is not None
        ns = self.realm.sessions.get(self.handle)
        return ns.state.name if ns is not None and ns.state is not None else self.joined_name

    @property
    def wire_name(self) -> str:
        name = self.name
        if name != self._name_seen or not self._wire_name:
            self._name_seen, self._wire_name = name, encode_name(name)
        return self._wire_name

    # -- joining -------------------------------------------------------------------------------

    def _authenticate(self, command: Command, handle: str, cookie: str, session_id: int | None) -> None:
        ticket = self.realm.tickets.redeem(cookie, normalize_handle(handle), session_id)
        ns = self.realm.sessions.get(ticket.handle) if ticket is not None else None
        if ticket is None or ns is None or ns.state is None:
            log.info("conn {conn} sb: bad or expired cookie for {handle}", conn=self.conn_id, handle=handle[:129])
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, close=True)
        self.cancel_login_deadline()
        self.handle = ticket.handle
        self.joined_name = ns.state.name

    def handle_usr(self, command: Command) -> None:
        """``USR t handle cookie`` (caller path): a new session with this user in it."""
        if command.trid is None or len(command.args) != 2:
            raise Disconnect("malformed USR")
        self._authenticate(command, command.args[0], command.args[1], None)
        chat = self.realm.chats.create()
        self._enter(chat)
        self.send("USR", command.trid, "OK", self.handle, encode_name(self.joined_name))

    def handle_ans(self, command: Command) -> None:
        """``ANS t handle cookie session-id`` (callee path): IRO per member, ANS OK, JOI to them."""
        if command.trid is None or len(command.args) != 3 or not command.args[2].isdigit():
            raise Disconnect("malformed ANS")
        session_id = int(command.args[2])
        self._authenticate(command, command.args[0], command.args[1], session_id)
        chat = self.realm.chats.get(session_id)
        if chat is None or self.handle not in chat.invited:
            raise Disconnect("ANS for a session that is gone")
        del chat.invited[self.handle]
        members = list(chat.members.values())
        lines = [
            format_line("IRO", command.trid, i, len(members), m.handle, m.wire_name)
            for i, m in enumerate(members, 1)
        ]
        lines.append(format_line("ANS", command.trid, "OK"))
        self.write(b"".join(lines))
        joi = format_line("JOI", None, self.handle, self.wire_name)
        for member in members:
            member.write(joi)
        self._enter(chat)

    def _enter(self, chat: ChatSession["SwitchboardProtocol"]) -> None:
        assert self.handle is not None
        previous = chat.members.get(self.handle)
        chat.members[self.handle] = self
        self.chat = chat
        if previous is not None:  # the same user joined again from elsewhere: drop the old one
            previous.chat = None
            previous.close()
        self._touch()

    # -- in a session --------------------------------------------------------------------------

    def handle_cal(self, command: Command) -> None:
        """``CAL t handle``: ring someone through their notification server."""
        if command.trid is None or len(command.args) != 1:
            raise Disconnect("malformed CAL")
        chat, me = self.chat, self.handle
        assert chat is not None and me is not None
        callee = normalize_handle(command.args[0])
        if not is_valid_handle(callee):
            raise ProtocolError(ErrorCode.INVALID_USERNAME)
        if callee in chat.invited and not self.realm.tickets.live(chat.invited[callee]):
            del chat.invited[callee]  # the last ring went unanswered; ring again
        if callee in chat.members or callee in chat.invited:
            raise ProtocolError(ErrorCode.ALREADY_THERE)
        if not self.realm.calls.allow(me):
            raise ProtocolError(ErrorCode.CALLING_TOO_RAPIDLY)
        target = self.realm.sessions.get(callee)
        # Offline, hidden and blocking look the same (217): a CAL cannot reveal who hides.
        if not sees(me, target):
            raise ProtocolError(ErrorCode.PRINCIPAL_NOT_ONLINE)
        if len(chat.members) + len(chat.invited) >= self.realm.config.sb_max_participants:
            raise ProtocolError(ErrorCode.SWITCHBOARD_FAILED)
        assert target is not None and target.dialect is not None
        ticket = self.realm.tickets.issue(callee, target.dialect.name, chat.id)
        chat.invited[callee] = ticket.cookie
        self.send("CAL", command.trid, "RINGING", chat.id)
        target.deliver(format_line(
            "RNG", None, chat.id, self.realm.address("sb"), "CKI", ticket.cookie, me, self.wire_name))

    def handle_msg(self, command: Command) -> None:
        """``MSG t U|N|A length`` + payload, relayed as ``MSG handle name length`` + payload."""
        if command.trid is None or len(command.args) != 2 or command.args[0] not in ACK_TYPES:
            raise Disconnect("bad MSG acknowledgement type")
        chat, me = self.chat, self.handle
        assert chat is not None and me is not None and command.payload is not None
        relay = format_payload("MSG", (me, self.wire_name), command.payload)
        delivered = 0
        for other in chat.others(me):
            other.write(relay)
            delivered += 1
        self._touch()
        self.realm.count("messages_relayed", delivered)
        ack = command.args[0]
        if delivered and ack == "A":
            self.send("ACK", command.trid)
        elif not delivered and ack in ("A", "N"):
            self.send("NAK", command.trid)

    def handle_out(self, command: Command) -> None:
        self.close()

    # -- leaving -------------------------------------------------------------------------------

    def on_connection_lost(self) -> None:
        chat, me = self.chat, self.handle
        if chat is None or me is None:
            return
        self.chat = None
        if chat.members.get(me) is self:
            del chat.members[me]
            bye = format_line("BYE", None, me)
            for other in chat.members.values():
                other.write(bye)
        if not chat.members:
            self._end(chat)

    def _touch(self) -> None:
        """Note activity. The idle timer is not moved on every message (a heap operation each);
        when it fires it looks at the last activity and sleeps again for what is left."""
        chat = self.chat
        assert chat is not None
        chat.last_activity = self.realm.clock.seconds()
        if chat.idle_call is None:
            chat.idle_call = self.realm.clock.callLater(self.realm.config.sb_idle_timeout, self._idle, chat)

    def _idle(self, chat: ChatSession["SwitchboardProtocol"]) -> None:
        """The conversation went idle: everyone is told ``BYE handle 1`` for the others, then closed."""
        left = chat.last_activity + self.realm.config.sb_idle_timeout - self.realm.clock.seconds()
        if left > 0:
            chat.idle_call = self.realm.clock.callLater(left, self._idle, chat)
            return
        chat.idle_call = None
        members = list(chat.members.values())
        for member in members:
            for other in members:
                if other is not member:
                    member.write(format_line("BYE", None, other.handle, 1))
        for member in members:
            member.chat = None
            member.close()
        self._end(chat)

    def _end(self, chat: ChatSession["SwitchboardProtocol"]) -> None:
        if chat.idle_call is not None and chat.idle_call.active():
            chat.idle_call.cancel()
        for cookie in chat.invited.values():
            self.realm.tickets.revoke(cookie)
        self.realm.chats.discard(chat)


def _close(conn: SwitchboardProtocol, command: Command) -> None:
    conn.close()


LOGIN: dict[str, Handler] = {
    "USR": SwitchboardProtocol.handle_usr,
    "ANS": SwitchboardProtocol.handle_ans,
    "OUT": _close,
}

IN_SESSION: dict[str, Handler] = {
    "CAL": SwitchboardProtocol.handle_cal,
    "MSG": SwitchboardProtocol.handle_msg,
    "OUT": SwitchboardProtocol.handle_out,
}
