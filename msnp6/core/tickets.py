"""Switchboard cookies: unguessable, single use, bound to one account and one session, short-lived."""
from __future__ import annotations

import secrets
from typing import Any

import attrs


@attrs.frozen(slots=True)
class Ticket:
    cookie: str
    handle: str
    #: None for an XFR SB ticket (the caller opens a new session); the session id for RNG.
    session_id: int | None
    dialect: str
    expires: float
    #: The holder's friendly name when the ticket was issued (shown until they rename).
    name: str = ""


class TicketBook:
    def __init__(self, clock: Any, lifetime: float = 120.0) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._tickets: dict[str, Ticket] = {}

    def issue(self, handle: str, dialect: str, session_id: int | None = None, name: str = "") -> Ticket:
        self._prune()
        # Shaped like the real ones (digits.unixtime.digits) but with 64 random bits.
        cookie = f"{secrets.randbelow(10**10)}.{int(self._clock.seconds())}.{secrets.randbelow(10**10)}"
        ticket = Ticket(cookie, handle, session_id, dialect, self._clock.seconds() + self._lifetime, name)
        self._tickets[cookie] = ticket
        return ticket

    def redeem(self, cookie: str, handle: str, session_id: int | None = None) -> Ticket | None:
        """Use a cookie up: it must exist, be unexpired and match the handle and session."""
        ticket = self._tickets.pop(cookie, None)
        if ticket is None or ticket.expires < self._clock.seconds():
            return None
        if ticket.handle != handle or ticket.session_id != session_id:
            return None
        return ticket

    def live(self, cookie: str) -> bool:
        ticket = self._tickets.get(cookie)
        return ticket is not None and ticket.expires >= self._clock.seconds()

    def revoke(self, cookie: str) -> None:
        self._tickets.pop(cookie, None)

    def _prune(self) -> None:
        now = self._clock.seconds()
        if len(self._tickets) > 1024:
            for cookie in [c for c, t in self._tickets.items() if t.expires < now]:
                del self._tickets[cookie]

    def __len__(self) -> int:
        return len(self._tickets)
