"""The rate limits a realm counts, behind one interface: in this process (``MemoryWindows``) or
shared by every node through Redis (``msnp6.cluster.windows.RedisWindows``).

Two kinds of use:

- ``allow(name, key)``: check and record one event in one step (``rename``, ``cal``,
  ``invitation``, ``page``, ``xfr-sb``, ``signup-address``); a Deferred, as a shared counter has to be asked.
- Login failures (``login-account`` per handle, ``login-address`` per client address): only
  failures count, each before the next answer is checked. ``login_check`` is asked when the
  answer arrives and ``LoginCheck.blocked`` when it is about to be compared (the account lookup
  has come back); ``login_failed`` records a wrong one. In memory ``login_check`` is the plain
  counters, no Deferred: the login hot path pays nothing for the interface.
"""
from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed

from .limits import INFO, Limits
from .ratelimit import WindowCounter

#: The limits with a window: the ones counted here (caps are counted where the things are held).
RATE_NAMES: tuple[str, ...] = tuple(info.name for info in INFO if info.default.window is not None)
ACCOUNT, ADDRESS = "login-account", "login-address"


class LoginCheck(Protocol):
    def blocked(self, handle: str, address: str) -> str | None:
        """The login limit an answer for ``handle`` from ``address`` is over right now
        (``login-account`` first), or None: it may be compared."""


class Windows(Protocol):
    def allow(self, name: str, key: str) -> "Deferred[bool]":
        """Record one event of rate limit ``name`` for ``key`` unless ``key`` is at its limit."""

    def login_check(self, handle: str, address: str) -> "LoginCheck | Deferred[LoginCheck]":
        """Start checking the login limits for an answer that just arrived."""

    def login_failed(self, handle: str, address: str) -> None:
        """Count a wrong answer against the account and the address, before anything else runs."""


class MemoryWindows:
    """Every rate limit counted in this process: one ``WindowCounter`` per limit. It is its own
    ``LoginCheck``: the counters are read when the answer is compared."""

    def __init__(self, clock: Any, limits: Limits) -> None:
        self.counters: dict[str, WindowCounter] = {}
        for name in RATE_NAMES:
            limit = limits[name]
            assert limit.window is not None
            self.counters[name] = WindowCounter(clock, limit.count, limit.window)
        self._account = self.counters[ACCOUNT]
        self._address = self.counters[ADDRESS]

    def allow(self, name: str, key: str) -> "Deferred[bool]":
        return succeed(self.counters[name].allow(key))

    def count(self, name: str, key: str) -> int:
        return self.counters[name].count(key)

    def login_check(self, handle: str, address: str) -> "MemoryWindows":
        return self

    def blocked(self, handle: str, address: str) -> str | None:
        if self._account.blocked(handle):
            return ACCOUNT
        if self._address.blocked(address):
            return ADDRESS
        return None

    def login_failed(self, handle: str, address: str) -> None:
        self._account.record(handle)
        self._address.record(address)
