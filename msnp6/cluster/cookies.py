"""``XFR SB`` cookies in Redis: issued on one node, redeemed on whichever switchboard node it names.

Keys (``prefix`` defaults to ``msnp6:``):

- ``<prefix>cookie:<cookie>``: the ticket as JSON, expiring with the ticket (``PX``).
- ``<prefix>cookies:<handle>``: a sorted set of the account's live cookies, scored by their expiry
  in Redis's own milliseconds (``TIME``), so the ``cookies-user`` cap holds across nodes whatever
  the nodes' clocks say.

Issuing (cap check, ticket, set) and redeeming (``GETDEL``, so a cookie is used once however
many nodes race for it) are each one Lua script. ``RNG`` cookies stay in the switchboard node's
own book: the callee answers on the node that rang.
"""
from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..core.tickets import Ticket, new_cookie
from .connection import redis_error

log = Logger()

#: KEYS: the account's cookie set, the cookie's key. ARGV: lifetime ms, cap, cookie, ticket JSON.
#: -> 1 issued, 0 the account holds ``cap`` live cookies already.
ISSUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

#: KEYS: the cookie's key. ARGV: prefix, cookie. -> the ticket JSON (now used up), or nil.
REDEEM = """
local text = redis.call('GETDEL', KEYS[1])
if not text then return nil end
local ok, ticket = pcall(cjson.decode, text)
if ok and type(ticket) == 'table' and ticket['handle'] then
  redis.call('ZREM', ARGV[1] .. 'cookies:' .. ticket['handle'], ARGV[2])
end
return text
"""


class RedisSessionTickets:
    """``SessionTickets`` shared by every node (msnp6.core.tickets). Calls fail after ``timeout``
    seconds (the handlers answer 500 then)."""

    def __init__(self, redis: Any, clock: IReactorTime, cap: int, lifetime: float = 120.0,
                 prefix: str = "msnp6:", timeout: float = 5.0) -> None:
        self.redis = redis
        self.clock = clock
        self.cap = cap
        self.lifetime = lifetime
        self.prefix = prefix
        self.timeout = timeout

    def issue(self, handle: str, dialect: str, name: str) -> "Deferred[Ticket | None]":
        now = self.clock.seconds()
        ticket = Ticket(new_cookie(now), handle, None, dialect, now + self.lifetime, name)
        text = json.dumps({"handle": handle, "dialect": dialect, "name": name}, ensure_ascii=False)
        d = self.redis.eval(ISSUE, [self._held(handle), self._key(ticket.cookie)],
                            [str(round(self.lifetime * 1000)), str(self.cap), ticket.cookie, text])
        d.addTimeout(self.timeout, self.clock)
        return d.addCallback(lambda issued: ticket if int(issued) == 1 else None)

    def redeem(self, cookie: str, handle: str) -> "Deferred[Ticket | None]":
        d = self.redis.eval(REDEEM, [self._key(cookie)], [self.prefix, cookie])
        d.addTimeout(self.timeout, self.clock)

        def check(text: str | None) -> Ticket | None:
            if text is None:
                return None
            fields = json.loads(text)
            if fields.get("handle") != handle:
                return None  # used up all the same: a cookie shown by the wrong account is burnt
            return Ticket(cookie, handle, None, str(fields["dialect"]),
                          self.clock.seconds() + self.lifetime, str(fields["name"]))

        return d.addCallback(check)

    def revoke(self, cookie: str, handle: str) -> None:
        d = self.redis.eval(REDEEM, [self._key(cookie)], [self.prefix, cookie])
        d.addTimeout(self.timeout, self.clock)
        d.addErrback(lambda f: log.warn("XFR SB cookies: revoking one of {handle!r} failed: {error}",
                                        handle=handle, error=redis_error(f)))

    def _key(self, cookie: str) -> str:
        return f"{self.prefix}cookie:{cookie}"

    def _held(self, handle: str) -> str:
        return f"{self.prefix}cookies:{handle}"
