"""Switchboard: chat sessions joined with cookies the notification server hands out.

Caller path: ``XFR SB`` on the NS -> ``USR handle cookie`` here -> ``CAL``; callee path: ``RNG``
on the NS -> ``ANS handle cookie session``. Payloads are relayed byte for byte.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from .core.chats import ChatSession
from .core.tickets import Ticket
from .directory.record import PresenceRecord
from .events import Event, NameChanged, Ring
from .framing import Handler, MsnpConnection
from .wire import trace
from .wire.errors import Disconnect, ErrorCode, ProtocolError
from .wire.lines import Command, format_line, format_payload
from .wire.names import MAX_HANDLE_BYTES, encode_name, is_valid_handle, normalize_handle
from .wire.numbers import parse_number
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
        #: The participant's friendly name: from the ticket, then from NameChanged events.
        self.name = ""
        self.chat: ChatSession["SwitchboardProtocol"] | None = None
        # The last name seen and its wire form: encoded again only after a rename.
        self._name_seen = ""
        self._wire_name = ""

    def handlers(self) -> dict[str, Handler]:
        return IN_SESSION if self.chat is not None else LOGIN

    @property
    def authenticated(self) -> bool:
        return self.handle is not None

    @property
    def wire_name(self) -> str:
        """The participant's current friendly name, encoded once per rename."""
        if self.name != self._name_seen or not self._wire_name:
            self._name_seen, self._wire_name = self.name, encode_name(self.name)
        return self._wire_name

    # -- events for this participant's account ---------------------------------------------------

    def on_event(self, event: Event) -> None:
        if isinstance(event, NameChanged):
            self.name = event.name  # a rename on the NS shows in later messages

    def drop(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- joining -------------------------------------------------------------------------------

    def _authenticate(self, handle: str, cookie: str, session_id: int | None) -> "Deferred[Ticket]":
        """The ticket behind ``cookie``, if it is this user's and their notification session is
        still online; else 911 and close."""
        who = normalize_handle(handle)
        if session_id is None:  # XFR SB's cookie: it may have been issued on another node
            redeemed = self.realm.session_tickets.redeem(cookie, who)
        else:  # RNG's cookie: this node rang
            redeemed = succeed(self.realm.tickets.redeem(cookie, who, session_id))

        def refuse() -> ProtocolError:
            log.info("conn {conn} sb: bad or expired cookie for {handle}", conn=self.conn_id,
                     handle=trace.escape(handle, MAX_HANDLE_BYTES))
            return ProtocolError(ErrorCode.AUTHENTICATION_FAILED, close=True)

        def check(ticket: Ticket | None) -> "Deferred[Ticket]":
            if ticket is None:
                raise refuse()

            def online(record: PresenceRecord | None) -> Ticket:
                if record is None:
                    raise refuse()
                return ticket

            return self.realm.directory.get(ticket.handle).addCallback(online)

        return redeemed.addCallback(check)

    def _joined(self, ticket: Ticket) -> bool:
        if self.closing:
            return False
        self.cancel_login_deadline()
        self.handle = ticket.handle
        self.name = ticket.name
        self.realm.node.attach(ticket.handle, self)
        return True

    def handle_usr(self, command: Command) -> "Deferred[None]":
        """``USR t handle cookie`` (caller path): a new session with this user in it."""
        if command.trid is None or len(command.args) != 2:
            raise Disconnect("malformed USR")
        trid = command.trid

        def start(ticket: Ticket) -> None:
            if not self._joined(ticket):
                return
            self._enter(self.realm.chats.create())
            self.send("USR", trid, "OK", self.handle, self.wire_name)

        return self._authenticate(command.args[0], command.args[1], None).addCallback(start)

    def handle_ans(self, command: Command) -> "Deferred[None]":
        """``ANS t handle cookie session-id`` (callee path): IRO per member, ANS OK, JOI to them."""
        session_id = parse_number(command.args[2]) if len(command.args) == 3 else None
        if command.trid is None or session_id is None:
            raise Disconnect("malformed ANS")
        trid = command.trid

        def join(ticket: Ticket) -> None:
            chat = self.realm.chats.get(session_id)
            if chat is None or ticket.handle not in chat.invited:
                raise Disconnect("ANS for a session that is gone")
            if not self._joined(ticket):
                return
            del chat.invited[ticket.handle]
            members = list(chat.members.values())
            lines = [
                format_line("IRO", trid, i, len(members), m.handle, m.wire_name)
                for i, m in enumerate(members, 1)
            ]
            lines.append(format_line("ANS", trid, "OK"))
            self.write(b"".join(lines))
            joi = format_line("JOI", None, self.handle, self.wire_name)
            for member in members:
                member.write(joi)
            self._enter(chat)

        return self._authenticate(command.args[0], command.args[1], session_id).addCallback(join)

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

    def handle_cal(self, command: Command) -> "Deferred[None]":
        """``CAL t handle``: ring someone through their notification server."""
        if command.trid is None or len(command.args) != 1:
            raise Disconnect("malformed CAL")
        chat, me = self.chat, self.handle
        assert chat is not None and me is not None
        trid = command.trid
        callee = normalize_handle(command.args[0])
        if not is_valid_handle(callee):
            raise ProtocolError(ErrorCode.INVALID_USERNAME)
        # Rings whose cookie expired went unanswered: they may be rung again and no longer hold a
        # place toward sb-participants. At most that many entries, so a scan per CAL is cheap.
        for invited, cookie in list(chat.invited.items()):
            if not self.realm.tickets.live(cookie):
                del chat.invited[invited]
        if callee in chat.members or callee in chat.invited:
            raise ProtocolError(ErrorCode.ALREADY_THERE)

        def ring(target: PresenceRecord | None) -> None:
            # Offline, hidden and blocking look the same (217): a CAL cannot reveal who hides.
            if target is None or not target.seen_by(me):
                raise ProtocolError(ErrorCode.PRINCIPAL_NOT_ONLINE)
            if self.chat is not chat:
                return  # left the session meanwhile
            if callee in chat.members or callee in chat.invited:
                raise ProtocolError(ErrorCode.ALREADY_THERE)
            if len(chat.members) + len(chat.invited) >= self.realm.config.limits["sb-participants"].count:
                self.realm.limited("sb-participants", me)
                raise ProtocolError(ErrorCode.SWITCHBOARD_FAILED)
            ticket = self.realm.tickets.issue(callee, target.dialect, chat.id, target.name)
            chat.invited[callee] = ticket.cookie
            self.send("CAL", trid, "RINGING", chat.id)
            self.realm.bus.publish([callee], Ring(chat.id, self.realm.address("sb"), ticket.cookie, me, self.name))

        def allowed(ok: bool) -> "Deferred[None]":
            if not ok:
                self.realm.limited("cal", me)
                raise ProtocolError(ErrorCode.CALLING_TOO_RAPIDLY)
            return self.realm.directory.get(callee).addCallback(ring)

        return self.realm.windows.allow("cal", me).addCallback(allowed)

    def handle_msg(self, command: Command) -> None:
        """``MSG t U|N|A length`` + payload, relayed as ``MSG handle name length`` + payload."""
        if command.trid is None or len(command.args) != 2 or command.args[0] not in ACK_TYPES:
            raise Disconnect("bad MSG acknowledgement type")
        chat, me = self.chat, self.handle
        assert chat is not None and me is not None and command.payload is not None
        relay = format_payload("MSG", (me, self.wire_name), command.payload)
        delivered = 0
        for other in chat.others(me):
            try:
                other.write(relay)
            except Exception:  # one broken participant must not cost the others the message
                log.failure("conn {conn} sb: relaying to conn {other} failed", conn=self.conn_id, other=other.conn_id)
                other.drop()
                continue
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
        if me is not None:
            self.realm.node.detach(me, self)
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
