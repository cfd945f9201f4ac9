"""Web sessions and the md5auth.srf replay guard, held in this process.

A browser keeps talking to the web listener that signed it in, so a session needs no sharing
between nodes; a replay sent to another node's listener is still bounded by the ``sl`` skew.
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

import attrs

#: How long a web session lasts after sign-in (seconds); the client signs in again per menu item.
SESSION_TTL = 3600.0


@attrs.define
class WebSession:
    handle: str
    #: The MSPAuth of the Messenger session that signed it in: the web session lasts only while
    #: that one does (signing out, a kick or a disable ends both).
    mspauth: str
    #: The token every form of this session carries (CSRF).
    csrf: str
    expires: float


class WebSessions:
    def __init__(self, clock: Any, ttl: float = SESSION_TTL) -> None:
        self.clock = clock
        self.ttl = ttl
        self._sessions: dict[str, WebSession] = {}

    def create(self, handle: str, mspauth: str) -> tuple[str, WebSession]:
        """A new session for ``handle``: its random id (the cookie) and its state."""
        self._prune()
        session_id = secrets.token_urlsafe(32)
        session = WebSession(handle, mspauth, secrets.token_urlsafe(32), self.clock.seconds() + self.ttl)
        self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> WebSession | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None or session.expires <= self.clock.seconds():
            self._sessions.pop(session_id, None)
            return None
        return session

    def _prune(self) -> None:
        now = self.clock.seconds()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]


class ReplayGuard:
    """The md5auth.srf posts already used, kept as long as their ``sl`` could still pass."""

    def __init__(self, clock: Any, keep: float) -> None:
        self.clock = clock
        self.keep = keep
        self._used: dict[bytes, float] = {}

    @staticmethod
    def _key(*parts: str) -> bytes:
        return hashlib.sha256("\0".join(parts).encode("utf-8")).digest()

    def seen(self, *parts: str) -> bool:
        return self._key(*parts) in self._used

    def use(self, *parts: str) -> None:
        now = self.clock.seconds()
        for key in [k for k, until in self._used.items() if until <= now]:
            del self._used[key]
        self._used[self._key(*parts)] = now + self.keep
