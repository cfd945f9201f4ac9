"""The node registry: which NS/SB nodes are alive, where clients reach them and how loaded they are.

Keys (``prefix`` defaults to ``msnp6:``):

- ``<prefix>node:<name>:info``: the node's ``NodeInfo`` as JSON, written with ``SET .. EX ttl``
  on every heartbeat, so a node that stops heartbeating vanishes by itself after ``ttl``.
- ``<prefix>nodes``: a set of the names of every node that heartbeated and was not yet found
  dead. An expired key leaves no trace, so this set is what tells a dead node (a member
  whose info key is gone) from one that never existed; listing the live nodes is one SMEMBERS
  and one MGET, where a SCAN for the prefix would walk the whole keyspace (every presence
  record included) on each pick.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.application import service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .connection import redis_error

log = Logger()

SERVICES = ("ns", "sb")

#: KEYS: the nodes set, the node's info key. ARGV: name. 1 if this caller removed a dead node
#: from the set (so exactly one caller in the cluster handles each death), else 0.
CLAIM_DEAD = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return redis.call('SREM', KEYS[1], ARGV[1])
"""


@attrs.frozen
class NodeInfo:
    name: str
    #: Some of ``ds``, ``ns``, ``sb``.
    roles: tuple[str, ...] = attrs.field(converter=lambda roles: tuple(sorted(roles)))
    #: Where clients reach the node, per service (``ns``/``sb`` -> ``host:port``): what XFR names.
    addresses: dict[str, str] = attrs.field(factory=dict)
    #: Online sessions (ns) and connections (sb) on the node: what "least loaded" compares.
    load: int = 0
    #: When it was written (seconds since the epoch, the writer's clock).
    heartbeat: float = 0.0

    def serves(self, service_name: str) -> bool:
        return service_name in self.roles and service_name in self.addresses

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NodeInfo:
        """ValueError if ``text`` is not a node's info."""
        try:
            fields = json.loads(text)
            return cls(name=str(fields["name"]), roles=[str(r) for r in fields["roles"]],
                       addresses={str(k): str(v) for k, v in fields["addresses"].items()},
                       load=int(fields["load"]), heartbeat=float(fields["heartbeat"]))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a node's info: {e}") from None


class Registry:
    """The registry over one txredisapi connection (``msnp6.cluster.connection.connect``)."""

    def __init__(self, redis: Any, ttl: float, prefix: str = "msnp6:") -> None:
        self.redis = redis
        self.ttl = ttl
        self.prefix = prefix
        self._nodes = prefix + "nodes"

    def info_key(self, name: str) -> str:
        return f"{self.prefix}node:{name}:info"

    def heartbeat(self, info: NodeInfo) -> "Deferred[Any]":
        """Write ``info`` to expire after ``ttl`` (whole seconds, at least 1) and list the node."""
        ttl = max(1, round(self.ttl))
        return gatherResults([
            self.redis.set(self.info_key(info.name), info.to_json(), expire=ttl),
            self.redis.sadd(self._nodes, info.name),
        ], consumeErrors=True)

    def leave(self, name: str) -> "Deferred[Any]":
        """A node stopping cleanly: gone from the registry at once, not after ``ttl``."""
        return gatherResults([self.redis.delete(self.info_key(name)), self.redis.srem(self._nodes, name)],
                             consumeErrors=True)

    def members(self) -> "Deferred[list[str]]":
        """Every listed node, alive or not yet found dead."""
        return self.redis.smembers(self._nodes).addCallback(lambda names: sorted(str(n) for n in names))

    def live_nodes(self) -> "Deferred[list[NodeInfo]]":
        """The nodes whose info has not expired, by name."""

        def fetch(names: list[str]) -> "Deferred[list[NodeInfo]]":
            if not names:
                return succeed([])
            d = self.redis.mget([self.info_key(n) for n in names])
            return d.addCallback(lambda texts: _decode(names, texts))

        return self.members().addCallback(fetch)

    def pick(self, service_name: str) -> "Deferred[NodeInfo | None]":
        """The least-loaded live node serving ``service_name`` (``ns`` or ``sb``); a tie goes to
        the first name in sort order. None if no live node serves it."""
        if service_name not in SERVICES:
            raise ValueError(f"nodes serve ns or sb, not {service_name!r}")

        def least(nodes: list[NodeInfo]) -> NodeInfo | None:
            serving = [n for n in nodes if n.serves(service_name)]
            return min(serving, key=lambda n: (n.load, n.name)) if serving else None

        return self.live_nodes().addCallback(least)

    def claim_dead(self, name: str) -> "Deferred[bool]":
        """Whether ``name``'s info has expired and this caller is the one taking it off the list
        (atomic: two nodes finding the same death, only one gets True)."""
        d = self.redis.eval(CLAIM_DEAD, [self._nodes, self.info_key(name)], [name])
        return d.addCallback(lambda removed: int(removed) == 1)

    def reap(self) -> "Deferred[list[str]]":
        """Take every dead node off the list; the names this caller took."""

        def claim_all(names: list[str]) -> "Deferred[list[str]]":
            claims = gatherResults([self.claim_dead(n) for n in names], consumeErrors=True)
            return claims.addCallback(lambda won: [n for n, w in zip(names, won, strict=True) if w])

        return self.members().addCallback(claim_all)


def _decode(names: Iterable[str], texts: Iterable[str | None]) -> list[NodeInfo]:
    nodes = []
    for name, text in zip(names, texts, strict=True):
        if text is None:
            continue  # expired: the next reap takes it off the list
        try:
            nodes.append(NodeInfo.from_json(text))
        except ValueError as e:
            log.warn("Node registry: the info of {node!r} does not decode: {error}", node=name, error=str(e))
    return nodes


def _death_failed(failure: Failure, name: str) -> None:
    log.failure("on_node_dead({node!r}) failed", failure, node=name)


class HeartbeatService(service.Service):
    """Heartbeats this node every ``interval`` seconds (default ``ttl / 3``: two beats may be lost
    before it counts as dead) and, after each beat, takes dead nodes off the list, calling
    ``on_node_dead(name)`` once per dead node (so their users can be dropped from the directory
    and shown FLN), then hands the live nodes to ``on_live`` (the pickers' picture). A failed beat
    (Redis down) is logged once per outage and the next one tries again. ``info()`` gives the
    node's current state; the heartbeat time is set here from ``clock``. On stop, the node leaves
    the registry.

    A death is found at the first beat after the dead node's entry expired, so within ``ttl +
    interval``: a short interval (a beat is two Redis commands) keeps that close to ``ttl``."""

    def __init__(self, registry: Registry, info: Callable[[], NodeInfo], clock: IReactorTime,
                 on_node_dead: Callable[[str], object] | None = None, interval: float | None = None,
                 on_live: Callable[[list[NodeInfo]], None] | None = None) -> None:
        self.registry = registry
        self.info = info
        self.clock = clock
        self.on_node_dead = on_node_dead
        self.on_live = on_live
        self.interval = interval if interval is not None else registry.ttl / 3
        self._loop: LoopingCall | None = None
        self._name: str | None = None
        #: The last beat failed (Redis down or too slow).
        self.failing = False

    def beat(self) -> "Deferred[None]":
        """One heartbeat and one reap; never fails (nor takes longer than ``ttl``)."""
        info = attrs.evolve(self.info(), heartbeat=self.clock.seconds())
        self._name = info.name
        d = self.registry.heartbeat(info)
        d.addCallback(lambda _: self.registry.reap())
        d.addCallback(self._dead)
        if self.on_live is not None:
            d.addCallback(lambda _: self.registry.live_nodes()).addCallback(self.on_live)
        d.addCallback(self._succeeded)
        # A lazy connection waits for Redis to come back: give up and let the next beat try.
        d.addTimeout(self.registry.ttl, self.clock)
        return d.addErrback(self._failed)

    def _dead(self, names: list[str]) -> None:
        for name in names:
            log.info("Node {node!r} stopped heartbeating: it is dead", node=name)
            if self.on_node_dead is not None:
                try:
                    result = self.on_node_dead(name)
                except Exception:
                    log.failure("on_node_dead({node!r}) failed", node=name)
                    continue
                if isinstance(result, Deferred):
                    result.addErrback(_death_failed, name)

    def _failed(self, failure: Failure) -> None:
        # Once per outage, not once per beat: a Redis restart would otherwise flood the log.
        if not self.failing:
            log.warn("Node registry: heartbeat failed (logged once until one succeeds): {error}",
                     error=redis_error(failure))
        self.failing = True

    def _succeeded(self, result: None) -> None:
        if self.failing:
            log.info("Node registry: heartbeats succeed again")
        self.failing = False

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.beat)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stopService(self) -> "Deferred[None] | None":
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        super().stopService()
        if self._name is None:
            return None
        # Redis may be away: the entry then expires by itself, and the stop must not wait for it.
        return self.registry.leave(self._name).addTimeout(min(2.0, self.registry.ttl), self.clock).addErrback(
            lambda f: log.warn("Node registry: leaving failed: {error}", error=redis_error(f)))
