"""The rate limits and login lockouts of a cluster, counted in Redis: every node's events count
against the same windows.

Keys (``prefix`` defaults to ``msnp6:``): ``<prefix>rate:<limit>:<key>``, a sorted set per limit
and key (an account, or a client address for ``login-address``) whose members are events, scored
by the time they happened (milliseconds) and unique (this instance's random tag and a sequence
number). Each key expires one window after its last event, so idle keys leave nothing behind.

The time is Redis's own (``TIME`` inside the scripts), not the node's: every node then reads and
writes the windows on one clock, and a node whose clock runs late or early cannot stretch or
shorten anyone's window. It costs nothing extra: the scripts run in Redis anyway.

- ``allow``: one script checks and records (drop what left the window, count, add, expire), so
  N nodes together allow exactly ``count`` per window per key.
- Login failures: when an answer arrives, one script reads both counts (account and address)
  while the account lookup is out, and this node notes how many failures it has itself counted
  for each key by then. When the answer is compared, it is blocked if Redis's count plus the
  failures this node counted since the read went out reaches the limit. This node sends its
  writes and reads on one connection, in order, so a failure it recorded before the read is in
  Redis's count and one recorded after is in the local difference, never in both: on one node,
  every failure is counted before the next answer is checked, as with ``MemoryWindows``, however
  many arrive pipelined. Across nodes the bound is looser: answers compared on several nodes at
  the same instant each see only the failures that reached Redis before their read, so together
  they can exceed the limit by at most what the other nodes had in flight then (the failures
  they recorded within one Redis round trip). At worst, every node's reads out before any
  node's writes, each node checks ``count`` answers: no worse than counting per node, and once
  the writes are in every node refuses for the rest of the window. Answers merely in flight
  still never count.

Redis unreachable, failing or slower than ``timeout``: the decision falls back to this node's
own counters (which record every event this node counted, Redis up or not), so an outage means
per-node counting, never every user locked out. One warning when that starts and one line when
Redis answers again; meanwhile Redis is not asked for each decision (that would make every one
wait ``timeout``) but probed with a ``PING`` at most every ``retry`` seconds, when a decision is
made. Failures counted during an outage stay local; a Redis restarted empty starts the windows
afresh.
"""
from __future__ import annotations

import itertools
import secrets
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..core.limits import Limits
from ..core.windows import ACCOUNT, ADDRESS, LoginCheck, MemoryWindows

log = Logger()

T = TypeVar("T")

# Redis >= 5 replicates a script's effects, so TIME may precede writes; older ones must be told.
_NOW = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: the window's set. ARGV: count, window (ms), member. -> 1 recorded, 0 at the limit.
ALLOW = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

#: KEYS: account set, address set. ARGV: their windows (ms). -> {account count, address count}.
COUNT_FAILURES = _NOW + """
return {redis.call('ZCOUNT', KEYS[1], '(' .. (now - tonumber(ARGV[1])), '+inf'),
        redis.call('ZCOUNT', KEYS[2], '(' .. (now - tonumber(ARGV[2])), '+inf')}
"""

#: KEYS: account set, address set. ARGV: their windows (ms), member. -> 1.
RECORD_FAILURE = _NOW + """
for i = 1, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - tonumber(ARGV[i]))
  redis.call('ZADD', KEYS[i], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[i], ARGV[i])
end
return 1
"""


def _milliseconds(window: float | None) -> int:
    assert window is not None
    return max(1, round(window * 1000))


class RemoteCheck:
    """Redis's failure counts when the answer arrived, and this node's own counts then."""

    def __init__(self, local: MemoryWindows, limits: Limits, remote: tuple[int, int], sent: tuple[int, int]) -> None:
        self._local, self._limits, self._remote, self._sent = local, limits, remote, sent

    def blocked(self, handle: str, address: str) -> str | None:
        # Failures this node counted since the read went out are not in Redis's answer; any of
        # its own that left the window meanwhile are, and come off again here.
        since = self._local.count(ACCOUNT, handle) - self._sent[0]
        if self._remote[0] + since >= self._limits[ACCOUNT].count:
            return ACCOUNT
        since = self._local.count(ADDRESS, address) - self._sent[1]
        if self._remote[1] + since >= self._limits[ADDRESS].count:
            return ADDRESS
        return None


class RedisWindows:
    """A ``Windows`` over one txredisapi connection (``msnp6.cluster.connection.connect``, the
    directory's: one connection keeps this node's reads and writes in order, which the login
    check relies on). ``clock`` is the reactor: deadlines and the local counters run on it."""

    def __init__(self, redis: Any, clock: IReactorTime, limits: Limits, prefix: str = "msnp6:",
                 timeout: float = 1.0, retry: float = 1.0) -> None:
        self.redis = redis
        self.clock = clock
        self.limits = limits
        self.prefix = prefix
        self.timeout = timeout
        self.retry = retry
        #: This node's own counts: the fallback, and the failures not yet in a Redis answer.
        self.local = MemoryWindows(clock, limits)
        self._tag = secrets.token_hex(6)
        self._sequence = itertools.count()
        self._windows = {name: str(_milliseconds(limits[name].window)) for name in self.local.counters}
        self._down = False
        self._next_probe = 0.0
        self._probing = False

    @property
    def available(self) -> bool:
        """False from a failed Redis call until Redis answers again."""
        return not self._down

    def key(self, name: str, key: str) -> str:
        return f"{self.prefix}rate:{name}:{key}"

    # -- Windows

    def allow(self, name: str, key: str) -> "Deferred[bool]":
        counter = self.local.counters[name]
        if self._down:
            self._probe()
            return self.local.allow(name, key)

        def answered(reply: Any) -> bool:
            self._answered()
            if int(reply) != 1:
                return False
            counter.record(key)  # for the fallback: what this node was allowed
            return True

        def failed(failure: Failure) -> bool:
            self._failed(failure, name)
            return counter.allow(key)

        limit = self.limits[name]
        d = self._guard(self.redis.eval(ALLOW, [self.key(name, key)],
                                        [str(limit.count), self._windows[name], self._member()]))
        return d.addCallbacks(answered, failed)

    def login_check(self, handle: str, address: str) -> "LoginCheck | Deferred[LoginCheck]":
        if self._down:
            self._probe()
            return self.local
        sent = (self.local.count(ACCOUNT, handle), self.local.count(ADDRESS, address))

        def answered(reply: Any) -> LoginCheck:
            self._answered()
            return RemoteCheck(self.local, self.limits, (int(reply[0]), int(reply[1])), sent)

        def failed(failure: Failure) -> LoginCheck:
            self._failed(failure, "login")
            return self.local

        d = self._guard(self.redis.eval(COUNT_FAILURES, [self.key(ACCOUNT, handle), self.key(ADDRESS, address)],
                                        [self._windows[ACCOUNT], self._windows[ADDRESS]]))
        return d.addCallbacks(answered, failed)

    def login_failed(self, handle: str, address: str) -> None:
        self.local.login_failed(handle, address)
        if self._down:
            self._probe()
            return
        d = self._guard(self.redis.eval(RECORD_FAILURE, [self.key(ACCOUNT, handle), self.key(ADDRESS, address)],
                                        [self._windows[ACCOUNT], self._windows[ADDRESS], self._member()]))
        d.addCallbacks(lambda _: self._answered(), self._failed, errbackArgs=("login",))

    # -- Redis up and down

    def _member(self) -> str:
        return f"{self._tag}:{next(self._sequence)}"

    def _guard(self, d: "Deferred[T]") -> "Deferred[T]":
        return d.addTimeout(self.timeout, self.clock)

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.info("Rate limits: Redis answers again; counting across the cluster again")

    def _failed(self, failure: Failure, what: str) -> None:
        if not self._down:
            self._down = True
            self._next_probe = self.clock.seconds() + self.retry
            log.warn("Rate limits: Redis failed ({what}: {error}); counting on this node only until it answers",
                     what=what, error=failure.getErrorMessage() or repr(failure.value))

    def _probe(self) -> None:
        """While Redis is down: one PING at a time, at most every ``retry`` seconds."""
        if self._probing or self.clock.seconds() < self._next_probe:
            return
        self._probing = True
        self._next_probe = self.clock.seconds() + self.retry

        def done(result: object) -> None:
            self._probing = False
            if not isinstance(result, Failure):
                self._answered()

        self._guard(self.redis.ping()).addBoth(done)
