"""Switchboard cookies: unguessable, single use, bound to one account and one session, short-lived."""
from __future__ import annotations

import secrets
from collections import Counter, OrderedDict
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, succeed


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


def new_cookie(now: float) -> str:
    """Shaped like the real ones (digits.unixtime.digits) but with 64 random bits."""
    return f"{secrets.randbelow(10**10)}.{int(now)}.{secrets.randbelow(10**10)}"


class TicketBook:
    """Live cookies in issue order. Every ticket lives ``lifetime`` seconds, so they expire in that
    order too: each operation drops expired tickets from the front, O(1) amortized however many
    are live. ``held_by`` counts an account's own (XFR SB) tickets for the per-user cap."""

    def __init__(self, clock: Any, lifetime: float = 120.0) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()
        self._held: Counter[str] = Counter()

    def issue(self, handle: str, dialect: str, session_id: int | None = None, name: str = "") -> Ticket:
        self._expire()
        cookie = new_cookie(self._clock.seconds())
        ticket = Ticket(cookie, handle, session_id, dialect, self._clock.seconds() + self._lifetime, name)
        self._tickets[cookie] = ticket
        if session_id is None:
            self._held[handle] += 1
        return ticket

    def redeem(self, cookie: str, handle: str, session_id: int | None = None) -> Ticket | None:
        """Use a cookie up: it must exist, be unexpired and match the handle and session."""
        self._expire()
        ticket = self._take(cookie)
        if ticket is None or ticket.expires < self._clock.seconds():
            return None
        if ticket.handle != handle or ticket.session_id != session_id:
            return None
        return ticket

    def live(self, cookie: str) -> bool:
        ticket = self._tickets.get(cookie)
        return ticket is not None and ticket.expires >= self._clock.seconds()

    def revoke(self, cookie: str) -> None:
        self._take(cookie)

    def held_by(self, handle: str) -> int:
        """Live XFR SB tickets of ``handle`` (issued to it for a session of its own)."""
        self._expire()
        return self._held.get(handle, 0)

    def _take(self, cookie: str) -> Ticket | None:
        ticket = self._tickets.pop(cookie, None)
        if ticket is not None and ticket.session_id is None:
            left = self._held[ticket.handle] - 1
            if left > 0:
                self._held[ticket.handle] = left
            else:
                del self._held[ticket.handle]
        return ticket

    def _expire(self) -> None:
        now = self._clock.seconds()
        tickets = self._tickets
        while tickets:
            cookie = next(iter(tickets))  # O(1): OrderedDict keeps a linked list, no holes to skip
            if tickets[cookie].expires >= now:
                break
            self._take(cookie)

    def __len__(self) -> int:
        return len(self._tickets)


class SessionTickets(Protocol):
    """The cookies of ``XFR SB`` (a new switchboard session): issued on the caller's notification
    node, redeemed on whichever switchboard node it names. In one process a ``TicketBook``; in a
    cluster, Redis (``msnp6.cluster.cookies``)."""

    def issue(self, handle: str, dialect: str, name: str) -> "Deferred[Ticket | None]":
        """A new ticket, or None when ``handle`` holds ``cookies-user`` unused ones already."""

    def redeem(self, cookie: str, handle: str) -> "Deferred[Ticket | None]":
        """Use ``cookie`` up: its ticket if it is live and ``handle``'s, else None."""

    def revoke(self, cookie: str, handle: str) -> None:
        """Forget ``cookie`` (issued to ``handle``, never handed out)."""


class LocalSessionTickets:
    """``SessionTickets`` in this node's own book (one process: the switchboard is here too)."""

    def __init__(self, book: TicketBook, cap: int) -> None:
        self.book = book
        self.cap = cap

    def issue(self, handle: str, dialect: str, name: str) -> "Deferred[Ticket | None]":
        if self.book.held_by(handle) >= self.cap:
            return succeed(None)
        return succeed(self.book.issue(handle, dialect, name=name))

    def redeem(self, cookie: str, handle: str) -> "Deferred[Ticket | None]":
        return succeed(self.book.redeem(cookie, handle, None))

    def revoke(self, cookie: str, handle: str) -> None:
        self.book.revoke(cookie)
