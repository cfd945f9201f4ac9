"""The notification-server connection: its state and its handler tables."""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from .. import audit
from ..directory.record import PresenceRecord
from ..events import Event, SignedInElsewhere
from ..framing import Handler, MsnpConnection
from ..negotiation import handle_cvr_before_login, handle_inf, handle_ver
from ..services import Actor
from ..wire.dialects import SUPPORTED, Dialect
from ..wire.directory import Hit
from ..wire.errors import ErrorCode, ProtocolError
from ..wire.lines import Command
from ..wire.payload import NS_CLIENT_PAYLOAD
from . import challenges, chat, extras, groups, inbox, lists, login, presence, services
from .state import SessionState
from .stream import ChangeStream

_EMPTY: frozenset[str] = frozenset()

#: What only the server sends: a client sending one is disconnected.
SERVER_ONLY = frozenset({"MSG", "RNG", "NLN", "ILN", "FLN", "BPR", "NOT", "IPG", "CHL", "QNG"})


def _frozen(entries: dict[str, str]) -> frozenset[str]:
    # Most AL/BL are empty: share one empty set rather than keep two per online session.
    return frozenset(entries) if entries else _EMPTY


class NotificationProtocol(MsnpConnection):
    service = "ns"
    payload_commands = NS_CLIENT_PAYLOAD

    def __init__(self, realm: Any) -> None:
        super().__init__(realm)
        self.dialect: Dialect | None = None
        # Login stage.
        self.login_handle: str | None = None
        self.salt: str | None = None
        #: The account lookup started at USR I (an account, None, or a store-failure marker).
        self.account_lookup: Deferred[Any] | None = None
        # From the successful USR S on (the session is registered before its lists are loaded).
        self.handle: str | None = None
        self.session_id = ""
        #: When the session was registered (its record's ``since``).
        self.since = 0.0
        self.account_id = 0
        #: In-memory lists and settings; None until loaded (then USR OK goes out).
        self.state: SessionState | None = None
        #: Events that arrived while the lists were loading.
        self._queued: list[Event] = []
        #: Made on the first list change (an idle session never needs one).
        self._stream: ChangeStream | None = None
        self.mspauth = ""
        self.login_time = 0
        self.synced = False
        #: None until the first CHG: the user counts as offline until then.
        self.status: str | None = None
        #: What this client was last shown of each contact online: handle -> (status, name). A
        #: presence line that would repeat it is not sent, so a repair after a Redis outage (and
        #: the presence other nodes announce again then) says only what changed. None until the
        #: first contact shows online (an idle session never needs one).
        self.shown: dict[str, tuple[str, str]] | None = None
        self.challenges = challenges.ChallengeState(self)
        #: The last FND results: SDC may name a hit by its index.
        self.directory_hits: list[Hit] = []
        #: The client's version from its CVR (shown by ``msnp6-admin who``).
        self.client_version: str | None = None
        #: Why the session is ending, once the server or the client said (the audit's logout
        #: reason; a connection lost without it is a hangup).
        self.ending: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.state is not None

    def handlers(self) -> dict[str, Handler]:
        if self.state is None:
            return LOGIN_STAGE
        assert self.dialect is not None
        return BY_DIALECT[self.dialect.name]

    def unknown_command(self, command: Command) -> None:
        if not self.authenticated or command.name in SERVER_ONLY:
            # Before login the real servers dropped the connection without an answer; so they
            # did for a server-only command at any time (notification.md 1.1, 4.10, 4.19). The
            # close comes before anything after the line is read: a MSG's body is never taken
            # for commands.
            super().unknown_command(command)
        self.log_bad_input(f"unknown command {command.name[:16]!r}")
        raise ProtocolError(ErrorCode.SYNTAX_ERROR)

    @property
    def stream(self) -> ChangeStream:
        """Keeps the in-memory lists in step with SQL by list version (see stream.py)."""
        if self._stream is None:
            self._stream = ChangeStream(self)
        return self._stream

    def settled(self) -> "Deferred[None]":
        """Fires once the in-memory lists agree with SQL at their version."""
        return self._stream.settled() if self._stream is not None else succeed(None)

    @property
    def actor(self) -> Actor:
        assert self.state is not None
        return Actor(self.account_id, self.state.handle, self.state.name)

    # -- the session in the network ------------------------------------------------------------

    def register(self, handle: str) -> None:
        """Hold ``handle`` on this node (events for it reach this connection from now on) and end
        its other sessions anywhere (OUT OTH)."""
        realm = self.realm
        self.handle = handle
        self.session_id = realm.node.new_session_id()
        self.since = realm.clock.seconds()
        realm.node.attach(handle, self)
        realm.bus.publish([handle], SignedInElsewhere(self.session_id))

    def unregister(self) -> None:
        handle = self.handle
        if handle is None:
            return
        self.realm.node.detach(handle, self)
        self.realm.directory.remove(handle, self.session_id)
        self.handle = None

    def logged_in(self, account_id: int, state: SessionState) -> None:
        self.account_id = account_id
        self.state = state
        self.publish_record()
        queued, self._queued = self._queued, []
        for event in queued:
            inbox.handle_event(self, event, loading=True)

    def record(self) -> PresenceRecord:
        s = self.state
        assert s is not None and self.dialect is not None
        return PresenceRecord(
            handle=s.handle, node=self.realm.node.name, session=self.session_id, account_id=self.account_id,
            dialect=self.dialect.name, status=self.status, name=s.name, blp=s.blp,
            allow=_frozen(s.lists["AL"]), block=_frozen(s.lists["BL"]),
            phone_home=s.phones["PHH"], phone_work=s.phones["PHW"], phone_mobile=s.phones["PHM"],
            mobile_allowed=s.mobile_allowed,
            email_enabled=s.email_enabled, since=self.since, client_version=self.client_version,
            address=self.peer, mspauth=self.mspauth, login_time=self.login_time,
        )

    def publish_record(self) -> "Deferred[None]":
        """Tell the directory what the network may know of this session now; fires once every
        node's lookups see it."""
        if self.state is not None and not self.closing:
            return self.realm.directory.put(self.record())
        return succeed(None)

    def on_event(self, event: Event) -> None:
        """An event for this account from the bus (someone else's change, or an operator's)."""
        if self.closing:
            return
        if self.state is None:
            self._queued.append(event)  # registered, lists still loading
            return
        inbox.handle_event(self, event)

    def drop(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def sign_out(self, reason: str | None, why: str | None = None) -> None:
        """Server-initiated end: ``OUT OTH`` (logged in elsewhere), ``OUT SSD`` (shutdown), or a
        bare ``OUT`` (the account was deleted or disabled, or an operator kicked the session).
        ``why``: the audit's logout reason (by default read from ``reason``)."""
        self.ending = why or _ENDINGS.get(reason or "", "deleted")
        presence.go_offline(self)
        self.unregister()
        if reason:
            self.send("OUT", None, reason)
        else:
            self.send("OUT", None)
        self.close()

    def on_connection_lost(self) -> None:
        self.challenges.stop()
        if self._stream is not None:
            self._stream.stop()
        presence.go_offline(self)
        self.unregister()
        if self.state is not None:
            audit.logout(self.state.handle, self.peer, self.realm.node.name, self.ending or "hangup")


#: The audit's logout reason for each OUT reason the server sends.
_ENDINGS = {"OTH": "other_login", "SSD": "shutdown"}


LOGIN_STAGE: dict[str, Handler] = {
    "VER": handle_ver,
    "INF": handle_inf,
    "CVR": handle_cvr_before_login,
    "USR": login.handle_usr,
    "OUT": lambda conn, command: conn.close(),
}

AUTHENTICATED: dict[str, Handler] = {
    "SYN": lists.handle_syn,
    "LST": lists.handle_lst,
    "ADD": lists.handle_add,
    "REM": lists.handle_rem,
    "BLP": lists.handle_blp,
    "GTC": lists.handle_gtc,
    "REA": lists.handle_rea,
    "PRP": lists.handle_prp,
    "ADG": groups.handle_adg,
    "RMG": groups.handle_rmg,
    "REG": groups.handle_reg,
    "CHG": presence.handle_chg,
    "XFR": chat.handle_xfr,
    "URL": services.handle_url,
    "SND": services.handle_snd,
    "SDC": services.handle_sdc,
    "FND": services.handle_fnd,
    "PAG": services.handle_pag,
    "QRY": challenges.handle_qry,
    "PNG": extras.handle_png,
    "OUT": extras.handle_out,
    "CVR": extras.handle_cvr,
    "USR": extras.handle_usr_again,
    "VER": extras.handle_ver_again,
    "INF": extras.handle_inf_again,
}


#: After login, each dialect's table holds the commands its clients have (wire/dialects.py); any
#: other, e.g. ADG from an MSNP6 client or PRP from an MSNP4 one, is an unknown command.
BY_DIALECT: dict[str, dict[str, Handler]] = {
    dialect.name: {name: handler for name, handler in AUTHENTICATED.items() if name in dialect.commands}
    for dialect in SUPPORTED.values()
}
