"""CHL/QRY (MSNP6+): challenge the client after its first CHG; a wrong or late answer -> 540."""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from ..auth import challenge_answer_ok, new_challenge
from ..wire.errors import Disconnect, ErrorCode, ProtocolError
from ..wire.lines import Command

if TYPE_CHECKING:
    from .protocol import NotificationProtocol

log = Logger()


class ChallengeState:
    """The outstanding challenge and the last one answered (the wiki says both are accepted)."""

    def __init__(self, conn: "NotificationProtocol") -> None:
        self._conn = conn
        self.outstanding: str | None = None
        self.answered: str | None = None
        self._send_call = None
        self._deadline = None

    def schedule(self) -> None:
        conn = self._conn
        if conn.dialect is None or not conn.dialect.challenges or self._send_call is not None:
            return
        self._send_call = conn.realm.clock.callLater(conn.realm.config.challenge_delay, self.send)

    def send(self) -> None:
        conn = self._conn
        if conn.closing:
            return
        self.outstanding = new_challenge()
        conn.send("CHL", 0, self.outstanding)
        if self._deadline is None or not self._deadline.active():
            self._deadline = conn.realm.clock.callLater(conn.realm.config.challenge_timeout, self._expired)

    def _expired(self) -> None:
        conn = self._conn
        log.info("conn {conn}: no answer to CHL in time", conn=conn.conn_id)
        conn.send_error(ErrorCode.CHALLENGE_FAILED, 0)
        conn.close()

    def check(self, client_id: str, answer: bytes) -> bool:
        candidates = tuple(c for c in (self.outstanding, self.answered) if c is not None)
        if not candidates or not challenge_answer_ok(client_id, candidates, answer):
            return False
        if self.outstanding is not None:
            self.answered, self.outstanding = self.outstanding, None
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        return True

    def stop(self) -> None:
        for call in (self._send_call, self._deadline):
            if call is not None and call.active():
                call.cancel()


def handle_qry(conn: "NotificationProtocol", command: Command) -> None:
    if command.trid is None or len(command.args) != 2:
        raise Disconnect("malformed QRY")
    if not conn.challenges.check(command.args[0], command.payload or b""):
        raise ProtocolError(ErrorCode.CHALLENGE_FAILED, close=True)
    conn.send("QRY", command.trid)
