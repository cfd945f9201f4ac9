"""The presence directory of a cluster, in Redis: every node sees who is online on every node.

Keys (``prefix`` defaults to ``msnp6:``):

- ``<prefix>presence``: a hash, handle -> the record as JSON (``record.to_json``). One hash, so
  ``HLEN`` is the online count and ``HMGET`` answers ``get_many`` in one round trip.
- ``<prefix>node:<name>:handles``: a set, the handles whose record names node ``<name>``, so a
  dead node's records can be dropped without scanning everything.

Every write is one Lua script (atomic in Redis): ``remove`` compares the stored session before
deleting, so a newer login (on any node) is never removed by an older session's logout, and the
node sets follow the records. The scripts name the node set of a record they read, a key not
passed in KEYS: fine on a single Redis, not on Redis Cluster (which this does not target).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from twisted.application import service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .record import PresenceRecord, from_json, to_json

log = Logger()

T = TypeVar("T")

# A stored record that does not decode leaves its node set alone (pcall) rather than failing the write.
_NODE_OF = """
local function node_of(text)
  local ok, record = pcall(cjson.decode, text)
  if ok and type(record) == 'table' then return record['node'] end
  return nil
end
"""

#: KEYS: presence hash, new node's set. ARGV: prefix, handle, record JSON, node. -> HLEN.
PUT = _NODE_OF + """
local old = redis.call('HGET', KEYS[1], ARGV[2])
if old then
  local node = node_of(old)
  if node and node ~= ARGV[4] then
    redis.call('SREM', ARGV[1] .. 'node:' .. node .. ':handles', ARGV[2])
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
return redis.call('HLEN', KEYS[1])
"""

#: KEYS: presence hash. ARGV: prefix, handle, session. -> HLEN.
REMOVE = """
local current = redis.call('HGET', KEYS[1], ARGV[2])
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' and record['session'] == ARGV[3] then
    redis.call('HDEL', KEYS[1], ARGV[2])
    redis.call('SREM', ARGV[1] .. 'node:' .. record['node'] .. ':handles', ARGV[2])
  end
end
return redis.call('HLEN', KEYS[1])
"""

#: KEYS: presence hash, the node's set. ARGV: node. -> {HLEN, {handles removed}}.
REMOVE_NODE = _NODE_OF + """
local removed = {}
for _, handle in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local current = redis.call('HGET', KEYS[1], handle)
  if current and node_of(current) == ARGV[1] then
    redis.call('HDEL', KEYS[1], handle)
    table.insert(removed, handle)
  end
end
redis.call('DEL', KEYS[2])
return {redis.call('HLEN', KEYS[1]), removed}
"""


class DirectoryUnavailable(Exception):
    """The directory could not answer: Redis is unreachable, too slow, or returned a record
    that does not decode."""


class RedisDirectory(service.Service):
    """A ``Directory`` over one txredisapi connection (``msnp6.cluster.connection.connect``: a
    single connection, so this node's writes reach Redis in the order they were made).

    ``count()`` must be synchronous (metrics), so it returns a cached value: every write's
    script returns ``HLEN`` (no extra round trip), and while the service runs a LoopingCall
    re-reads ``HLEN`` every ``count_interval`` seconds, so other nodes' logins show up too.

    Lookups fail with ``DirectoryUnavailable`` after ``timeout`` seconds at most (a lazy
    txredisapi connection would otherwise wait for Redis to come back); writes are
    fire-and-forget and a failed one is logged in one line."""

    def __init__(self, redis: Any, clock: IReactorTime, prefix: str = "msnp6:", timeout: float = 5.0,
                 count_interval: float = 5.0) -> None:
        self.redis = redis
        self.clock = clock
        self.prefix = prefix
        self.timeout = timeout
        self.count_interval = count_interval
        self._hash = prefix + "presence"
        self._count = 0
        self._refresh: LoopingCall | None = None

    def node_key(self, node: str) -> str:
        return f"{self.prefix}node:{node}:handles"

    # -- lookups

    def get(self, handle: str) -> "Deferred[PresenceRecord | None]":
        d = self._guard(self.redis.hget(self._hash, handle))
        return d.addCallback(lambda text: None if text is None else from_json(text)).addErrback(self._unavailable)

    def get_many(self, handles: Iterable[str]) -> "Deferred[dict[str, PresenceRecord]]":
        wanted = list(dict.fromkeys(handles))
        if not wanted:
            return succeed({})

        def decode(texts: list[str | None]) -> dict[str, PresenceRecord]:
            return {h: from_json(t) for h, t in zip(wanted, texts, strict=True) if t is not None}

        d = self._guard(self.redis.hmget(self._hash, wanted))
        return d.addCallback(decode).addErrback(self._unavailable)

    def count(self) -> int:
        return self._count

    def refresh_count(self) -> "Deferred[int]":
        """Re-read the count; never fails (a failure keeps the last value and is logged)."""
        d = self._guard(self.redis.hlen(self._hash))
        d.addCallback(self._counted)
        return d.addErrback(self._write_failed, "count", "-").addCallback(lambda _: self._count)

    # -- writes (fire-and-forget)

    def put(self, record: PresenceRecord) -> None:
        d = self._guard(self.redis.eval(PUT, [self._hash, self.node_key(record.node)],
                                        [self.prefix, record.handle, to_json(record), record.node]))
        d.addCallbacks(self._counted, self._write_failed, errbackArgs=("put", record.handle))

    def remove(self, handle: str, session: str) -> None:
        d = self._guard(self.redis.eval(REMOVE, [self._hash], [self.prefix, handle, session]))
        d.addCallbacks(self._counted, self._write_failed, errbackArgs=("remove", handle))

    def remove_node(self, node: str) -> "Deferred[list[str]]":
        """Drop every record that still names ``node`` (a dead node); the handles dropped, for
        FLN to their watchers. Records of handles that logged in elsewhere since stay."""

        def done(reply: list[Any]) -> list[str]:
            self._counted(reply[0])
            return sorted(str(h) for h in reply[1])

        d = self._guard(self.redis.eval(REMOVE_NODE, [self._hash, self.node_key(node)], [node]))
        return d.addCallback(done).addErrback(self._unavailable)

    # -- service: the count refresh

    def startService(self) -> None:
        super().startService()
        self._refresh = LoopingCall(self.refresh_count)
        self._refresh.clock = self.clock
        self._refresh.start(self.count_interval, now=True)

    def stopService(self) -> "Deferred[None] | None":
        if self._refresh is not None and self._refresh.running:
            self._refresh.stop()
        self._refresh = None
        return super().stopService()

    # -- helpers

    def _guard(self, d: "Deferred[T]") -> "Deferred[T]":
        return d.addTimeout(self.timeout, self.clock)

    def _counted(self, hlen: Any) -> None:
        self._count = int(hlen)

    def _unavailable(self, failure: Failure) -> Failure:
        if failure.check(DirectoryUnavailable):
            return failure
        raise DirectoryUnavailable(f"presence directory: {failure.getErrorMessage()}") from failure.value

    def _write_failed(self, failure: Failure, what: str, handle: str) -> None:
        log.warn("Presence directory: {what} of {handle!r} failed: {error}",
                 what=what, handle=handle, error=failure.getErrorMessage())
