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
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..cluster.connection import redis_error
from .record import PresenceRecord, from_json, to_json

log = Logger()

T = TypeVar("T")

#: Records per HSCAN round trip in ``list_all``.
SCAN_BATCH = 500

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

#: KEYS: presence hash, the node's set. ARGV: prefix, handle, record JSON, node, session, since.
#: -> 0: a later session of the account is stored (left alone); 1: written; 2: written over an
#: earlier session of another node or login (which must end: the caller says OUT OTH to it).
RESTORE = _NODE_OF + """
local old = redis.call('HGET', KEYS[1], ARGV[2])
local replaced = 1
if old then
  local ok, record = pcall(cjson.decode, old)
  if ok and type(record) == 'table' and record['session'] ~= ARGV[5] then
    if tonumber(record['since'] or 0) > tonumber(ARGV[6]) then return 0 end
    replaced = 2
    local node = node_of(old)
    if node and node ~= ARGV[4] then
      redis.call('SREM', ARGV[1] .. 'node:' .. node .. ':handles', ARGV[2])
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
return replaced
"""

#: KEYS: presence hash, the node's set. ARGV: node, then the sessions the node holds.
#: -> {records removed, as JSON}: those naming the node with a session it no longer holds.
PRUNE = """
local keep = {}
for i = 2, #ARGV do keep[ARGV[i]] = true end
local removed = {}
for _, handle in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local current = redis.call('HGET', KEYS[1], handle)
  local ok, record = false, nil
  if current then ok, record = pcall(cjson.decode, current) end
  if ok and type(record) == 'table' and record['node'] == ARGV[1] then
    if not keep[record['session']] then
      redis.call('HDEL', KEYS[1], handle)
      redis.call('SREM', KEYS[2], handle)
      table.insert(removed, current)
    end
  else
    redis.call('SREM', KEYS[2], handle)
  end
end
return removed
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

#: KEYS: presence hash, the node's set. ARGV: node. -> {HLEN, {records removed, as JSON}}.
REMOVE_NODE = _NODE_OF + """
local removed = {}
for _, handle in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local current = redis.call('HGET', KEYS[1], handle)
  if current and node_of(current) == ARGV[1] then
    redis.call('HDEL', KEYS[1], handle)
    table.insert(removed, current)
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

    def list_all(self) -> "Deferred[list[PresenceRecord]]":
        """HSCAN in batches of ``SCAN_BATCH``, not one HGETALL: a large hash does not block
        Redis for one long reply. A record written or removed meanwhile may be missed or seen
        (HSCAN's guarantee: every record present throughout is returned, possibly twice, so the
        result is keyed by handle). A record that does not decode is left out."""
        found: dict[str, PresenceRecord] = {}
        done: Deferred[list[PresenceRecord]] = Deferred()

        def batch(reply: list[Any]) -> None:
            cursor, flat = reply
            for handle, text in zip(flat[::2], flat[1::2], strict=True):
                try:
                    found[handle] = from_json(text)
                except (ValueError, TypeError):
                    log.warn("Presence directory: the record of {handle!r} does not decode", handle=handle)
            if int(cursor) == 0:
                done.callback(sorted(found.values(), key=lambda r: r.handle))
            else:
                scan(int(cursor))

        def scan(cursor: int) -> None:
            d = self._guard(self.redis.hscan(self._hash, cursor, count=SCAN_BATCH))
            d.addCallback(batch).addErrback(self._unavailable).addErrback(done.errback)

        scan(0)
        return done

    def count(self) -> int:
        return self._count

    def refresh_count(self) -> "Deferred[int]":
        """Re-read the count; never fails (a failure keeps the last value and is logged)."""
        d = self._guard(self.redis.hlen(self._hash))
        d.addCallback(self._counted)
        return d.addErrback(self._write_failed, "count", "-").addCallback(lambda _: self._count)

    # -- writes (never fail: a failed write is logged; put fires once it is done)

    def put(self, record: PresenceRecord) -> "Deferred[None]":
        d = self._guard(self.redis.eval(PUT, [self._hash, self.node_key(record.node)],
                                        [self.prefix, record.handle, to_json(record), record.node]))
        return d.addCallbacks(self._counted, self._write_failed, errbackArgs=("put", record.handle))

    def remove(self, handle: str, session: str) -> None:
        d = self._guard(self.redis.eval(REMOVE, [self._hash], [self.prefix, handle, session]))
        d.addCallbacks(self._counted, self._write_failed, errbackArgs=("remove", handle))

    def restore(self, records: Iterable[PresenceRecord]) -> "Deferred[list[int]]":
        """Write this node's ``records`` again after Redis lost or missed them, unless a later
        session of the same account is stored (see ``RESTORE``): one outcome per record. Fails if
        any write failed, so the caller can try again."""
        writes = [self._guard(self.redis.eval(
            RESTORE, [self._hash, self.node_key(r.node)],
            [self.prefix, r.handle, to_json(r), r.node, r.session, repr(r.since)])).addCallback(int)
            for r in records]
        return gatherResults(writes, consumeErrors=True)

    def prune(self, node: str, sessions: Iterable[str]) -> "Deferred[list[PresenceRecord]]":
        """Drop the records naming ``node`` whose session is not among ``sessions`` (logouts whose
        removal was lost in a Redis outage); the records dropped."""
        d = self._guard(self.redis.eval(PRUNE, [self._hash, self.node_key(node)], [node, *sessions]))
        return d.addCallback(lambda texts: _decoded(texts, node)).addErrback(self._unavailable)

    def remove_node(self, node: str) -> "Deferred[list[PresenceRecord]]":
        """Drop every record that still names ``node`` (a dead node); the records dropped, for
        FLN to their watchers. Records of handles that logged in elsewhere since stay; a stored
        record that does not decode is dropped without being returned."""

        def done(reply: list[Any]) -> list[PresenceRecord]:
            self._counted(reply[0])
            return _decoded(reply[1], node)

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
        raise DirectoryUnavailable(f"presence directory: {redis_error(failure)}") from failure.value

    def _write_failed(self, failure: Failure, what: str, handle: str) -> None:
        log.warn("Presence directory: {what} of {handle!r} failed: {error}",
                 what=what, handle=handle, error=redis_error(failure))


def _decoded(texts: Iterable[str], node: str) -> list[PresenceRecord]:
    """Records removed by a script, by handle; one that does not decode is logged and left out."""
    records = []
    for text in texts:
        try:
            records.append(from_json(text))
        except (ValueError, TypeError):
            log.warn("Presence directory: a record of node {node!r} does not decode", node=node)
    return sorted(records, key=lambda r: r.handle)
