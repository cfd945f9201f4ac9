"""Switchboard sessions: who is in each chat room and who has been invited."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

P = TypeVar("P")


class ChatSession(Generic[P]):
    """One room. ``members`` keeps join order (IRO lists them in that order)."""

    def __init__(self, session_id: int) -> None:
        self.id = session_id
        self.members: dict[str, P] = {}
        #: Invited handle -> its RNG cookie, until they answer.
        self.invited: dict[str, str] = {}
        self.idle_call: Any = None
        self.last_activity = 0.0

    def others(self, handle: str) -> Iterator[P]:
        return (conn for h, conn in self.members.items() if h != handle)


class ChatRegistry(Generic[P]):
    def __init__(self) -> None:
        self._sessions: dict[int, ChatSession[P]] = {}

    def create(self) -> ChatSession[P]:
        # Eight-digit decimal ids, as the real service used; clients parse them as numbers.
        while True:
            session_id = 10_000_000 + secrets.randbelow(90_000_000)
            if session_id not in self._sessions:
                session: ChatSession[P] = ChatSession(session_id)
                self._sessions[session_id] = session
                return session

    def get(self, session_id: int) -> ChatSession[P] | None:
        return self._sessions.get(session_id)

    def discard(self, session: ChatSession[P]) -> None:
        self._sessions.pop(session.id, None)

    def __len__(self) -> int:
        return len(self._sessions)
