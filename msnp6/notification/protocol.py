"""The notification-server connection: its state and its handler tables."""
from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..framing import Handler, MsnpConnection
from ..negotiation import handle_cvr_before_login, handle_inf, handle_ver
from .state import SessionState
from ..wire.dialects import Dialect
from ..wire.directory import Hit
from ..wire.errors import ErrorCode, ProtocolError
from ..wire.lines import Command
from ..wire.payload import NS_CLIENT_PAYLOAD
from . import challenges, chat, extras, lists, login, presence, services

log = Logger()


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
        self.account_id = 0
        #: In-memory lists and settings; None until loaded (then USR OK goes out).
        self.state: SessionState | None = None
        self._queued: list[tuple[bytes, int | None, Callable[[SessionState], None] | None]] = []
        self.mspauth = ""
        self.login_time = 0
        self.synced = False
        #: None until the first CHG: the user counts as offline until then.
        self.status: str | None = None
        self.challenges = challenges.ChallengeState(self)
        #: The last FND results: SDC may name a hit by its index.
        self.directory_hits: list[Hit] = []

    @property
    def authenticated(self) -> bool:
        return self.state is not None

    def handlers(self) -> dict[str, Handler]:
        return AUTHENTICATED if self.state is not None else LOGIN_STAGE

    def unknown_command(self, command: Command) -> None:
        if not self.authenticated:
            # Before login the real servers dropped the connection without an answer.
            super().unknown_command(command)
        log.info("conn {conn}: unknown command {cmd!r}", conn=self.conn_id, cmd=command.name[:16])
        raise ProtocolError(ErrorCode.SYNTAX_ERROR)

    def redact(self, command: Command) -> str:
        if command.name == "USR" and command.arg(1) == "S":
            return f"USR {command.trid} MD5 S <answer hidden>"
        if command.name == "QRY":
            return f"QRY {command.trid} {command.arg(0)} <answer hidden>"
        return super().redact(command)

    def logged_in(self, account_id: int, state: SessionState) -> None:
        self.account_id = account_id
        self.state = state
        queued, self._queued = self._queued, []
        for line, version, apply in queued:
            self.deliver(line, version, apply)

    def deliver(
        self, line: bytes, version: int | None = None, apply: Callable[[SessionState], None] | None = None
    ) -> None:
        """A push caused by someone else. ``version``: the list version the change gave this
        account (skipped when the loaded lists already include it); ``apply`` updates memory."""
        state = self.state
        if state is None:
            if self.handle is not None:  # registered, lists still loading
                self._queued.append((line, version, apply))
            return
        if version is not None:
            if version <= state.loaded_version:
                return  # the lists were loaded after this change: it is in them already
            state.saw(version)
        if apply is not None:
            apply(state)
        self.write(line)

    def sign_out(self, reason: str) -> None:
        """Server-initiated end: ``OUT OTH`` (logged in elsewhere) or ``OUT SSD`` (shutdown)."""
        presence.go_offline(self)
        self.send("OUT", None, reason)
        self.close()

    def on_connection_lost(self) -> None:
        self.challenges.stop()
        presence.go_offline(self)
        if self.handle is not None:
            self.realm.sessions.remove(self.handle, self)


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

