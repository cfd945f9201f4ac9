"""This process as a node of a cluster: the Redis bus, directory, registry and cookies behind its
realm, the pickers the DS and XFR SB use, what happens when another node dies, and the repair
after a Redis outage.

Node death: the node that claims it (msnp6.cluster.registry, once cluster-wide) drops the dead
node's presence records and tells each visible user's allowed watchers FLN, reading the user's
RL and privacy from SQL (the dead node's memory is gone).

Redis outage: the bus reconnects (backoff up to ``RECONNECT_DELAY``), and then, ``SETTLE``
seconds apart: every local session's record is written again (a later login elsewhere wins, an
earlier one is told OUT OTH) and its visible users' presence is announced to their watchers
again; then every local session is repaired: NLN/FLN where what its client shows differs from
the directory, and a reload of the lists where SQL holds a later version than the cache. Each
step is retried while Redis still fails. Presence announced twice adds no line (the sessions
remember what their clients show), so the order in which nodes come back does not matter.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..bus.redis import RedisBus
from ..core.visibility import allowed
from ..directory.record import PresenceRecord
from ..directory.redis import RedisDirectory
from ..directory.tolerant import TolerantDirectory
from ..events import PresenceChanged, SignedInElsewhere
from ..notification import presence
from ..store.records import SyncSnapshot
from .connection import connect, parse_redis_url, redis_error
from .cookies import RedisSessionTickets
from .registry import HeartbeatService, NodeInfo, Registry
from .view import NodeView

if TYPE_CHECKING:
    from ..core.realm import Realm
    from ..notification.protocol import NotificationProtocol

log = Logger()

#: What a process may serve; ``web`` is the web side (``--web``), which holds no sessions.
ROLES = ("ds", "ns", "sb", "web")
#: Longest wait between two attempts to reach Redis again.
RECONNECT_DELAY = 2.0
#: Seconds between the steps of the repair after an outage (the other nodes come back meanwhile).
SETTLE = 1.0
#: Longest time between heartbeats (and so between looks for dead nodes).
MAX_BEAT = 1.0


@attrs.frozen
class ClusterSettings:
    #: ``redis://HOST:PORT/DB``.
    bus: str
    #: Unique in the cluster: names the node in the registry and in presence records.
    node: str
    roles: tuple[str, ...]
    #: Seconds without a heartbeat after which a node counts as dead.
    node_ttl: float


class ClusterMember(service.Service):
    """Build it, make the realm with its ``bus`` and ``lookups`` (the directory), then ``join(realm)``."""

    name = "cluster"

    def __init__(self, settings: ClusterSettings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        address = parse_redis_url(settings.bus)
        self.redis = connect(settings.bus)
        self.bus = RedisBus(address.host, address.port, address.db, reactor=reactor,
                            on_reconnect=self._bus_connected, max_delay=RECONNECT_DELAY)
        self.directory = RedisDirectory(self.redis, reactor)
        #: What the realm reads: lookups that answer "offline" during a Redis outage.
        self.lookups = TolerantDirectory(self.directory, available=lambda: self.bus.connected)
        self.registry = Registry(self.redis, settings.node_ttl)
        beat = min(MAX_BEAT, settings.node_ttl / 3)
        self.view = NodeView(reactor.seconds, stale_after=3 * beat)
        self.heartbeat = HeartbeatService(self.registry, self._info, reactor, on_node_dead=self.node_dead,
                                          interval=beat, on_live=self.view.update)
        self._realm: Realm | None = None
        self._connected_before = False
        self._repair_call: IDelayedCall | None = None
        #: Repairs finished (for tests and logs).
        self.repairs = 0

    @property
    def realm(self) -> "Realm":
        assert self._realm is not None, "join(realm) first"
        return self._realm

    def join(self, realm: "Realm") -> None:
        self._realm = realm
        realm.ns_picker = lambda handle: self.view.pick("ns")
        realm.sb_picker = lambda: self.view.pick("sb")
        realm.session_tickets = RedisSessionTickets(self.redis, self.reactor,
                                                    realm.config.limits["cookies-user"].count)
        realm.cluster_problem = self.problem

    def problem(self) -> str | None:
        if not self.bus.connected:
            return f"bus: not connected to Redis at {self.bus.address}"
        if "ds" in self.settings.roles and not any(n.serves("ns") for n in self.view.nodes):
            return "no live notification node"
        return None

    # -- life -----------------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.bus.start()
        self.directory.startService()  # the heartbeats start once the bus is connected

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        if self._repair_call is not None and self._repair_call.active():
            self._repair_call.cancel()
        stops = [self.heartbeat.stopService() if self.heartbeat.running else None, self.directory.stopService()]
        d = gatherResults([s for s in stops if s is not None], consumeErrors=True)
        d.addBoth(lambda _: self.bus.stop())
        d.addBoth(lambda _: self.redis.disconnect())
        return d.addErrback(lambda f: log.warn("cluster: leaving Redis: {error}", error=redis_error(f)))

    def _info(self) -> NodeInfo:
        realm = self.realm
        serving = [r for r in ("ns", "sb") if r in self.settings.roles and r in realm.ports]
        load = len(realm.connections["ns"]) + len(realm.connections["sb"])
        return NodeInfo(self.settings.node, self.settings.roles,
                        {r: realm.address(r) for r in serving}, load)

    # -- node death -----------------------------------------------------------------------------

    def node_dead(self, name: str) -> "Deferred[Any]":
        """``name`` stopped heartbeating (or is this node's own earlier life): drop its users'
        records and tell their watchers FLN."""
        self.view.forget(name)
        d = self.directory.remove_node(name)
        d.addCallback(self._gone, name)
        return d

    def _gone(self, records: list[PresenceRecord], node: str, why: str = "it stopped heartbeating") -> "Deferred[Any]":
        visible = [r for r in records if r.visible]
        if not records and node == self.settings.node:
            return succeed(None)  # nothing of this node's was left behind
        log.info("cluster: {n} sessions of node {node!r} dropped ({why}), FLN for {v} visible users",
                 node=node, n=len(records), v=len(visible), why=why)
        store = self.realm.store
        return DeferredList([store.get_snapshot(r.account_id).addCallback(self._offline, r)
                             for r in visible], consumeErrors=True)

    def _offline(self, snapshot: SyncSnapshot | None, record: PresenceRecord) -> None:
        if snapshot is None:
            return  # deleted meanwhile: nobody has it on a list any more
        lists = {name: {e.contact for e in entries} for name, entries in snapshot.lists.items()}
        watchers = allowed(lists["RL"], snapshot.account.blp, lists["AL"], lists["BL"])
        self.bus.publish(watchers, PresenceChanged(record.handle, "FLN", record.name))

    # -- after a Redis outage -------------------------------------------------------------------

    def _bus_connected(self) -> None:
        if not self._connected_before:
            # First connection: records an earlier life of this node left (killed, then started
            # again under its name before the others found it dead) go now.
            self._connected_before = True
            self.heartbeat.startService()  # not before: a first beat would fail, and say so
            self.view.forget(self.settings.node)
            self.directory.remove_node(self.settings.node).addCallback(
                self._gone, self.settings.node, "left by an earlier run of this node").addErrback(
                lambda f: log.warn("cluster: clearing this node's earlier records failed: {error}",
                                   error=redis_error(f)))
            return
        log.info("cluster: Redis is back; restoring this node's sessions in {s:g} s", s=SETTLE)
        self._later(self._restore)

    def _later(self, step: Any) -> None:
        if self._repair_call is not None and self._repair_call.active():
            self._repair_call.cancel()
        self._repair_call = self.reactor.callLater(SETTLE, step)

    def sessions(self) -> Iterator["NotificationProtocol"]:
        for conn in list(self.realm.connections["ns"]):
            if conn.state is not None and not conn.closing:
                yield conn

    def _restore(self) -> None:
        conns = list(self.sessions())
        d = self.directory.restore([c.record() for c in conns])
        # Logouts whose removal was lost: their records would show them online for good.
        d.addCallback(lambda outcomes: self.directory.prune(self.settings.node, [c.session_id for c in conns])
                      .addCallback(self._gone, self.settings.node, "logged out during a Redis outage")
                      .addCallback(lambda _: outcomes))
        d.addCallbacks(self._restored, self._retry, callbackArgs=(conns,), errbackArgs=(self._restore,))

    def _restored(self, outcomes: Iterable[int], conns: list["NotificationProtocol"]) -> None:
        for conn, outcome in zip(conns, outcomes, strict=True):
            if conn.closing or conn.state is None:
                continue
            if outcome == 0:  # the account logged in again elsewhere while Redis was away
                conn.sign_out("OTH")
                continue
            if outcome == 2:  # an earlier session elsewhere must end, as OUT OTH would have
                self.bus.publish([conn.state.handle], SignedInElsewhere(conn.session_id))
            if presence.is_visible(conn.status):
                presence.tell_watchers(conn)
        self._later(self._repair)

    def _repair(self) -> None:
        conns = list(self.sessions())
        shown = gatherResults([presence.repair(c, self.directory) for c in conns], consumeErrors=True)
        versions = self.realm.store.list_versions([c.account_id for c in conns])
        versions.addCallback(self._catch_up, conns)
        current = self.directory.get_many([c.state.handle for c in conns if c.state is not None])
        current.addCallback(self._one_session_each, conns)
        d = gatherResults([shown, versions, current], consumeErrors=True)
        d.addCallbacks(self._repaired, self._retry, callbackArgs=(len(conns),), errbackArgs=(self._repair,))

    def _catch_up(self, versions: dict[int, int], conns: list["NotificationProtocol"]) -> "Deferred[Any]":
        behind = [c for c in conns if c.state is not None and not c.closing
                  and versions.get(c.account_id, 0) > c.state.version]
        # Watchers added while Redis was away (their ADD 0 RL lost) are on the reloaded RL: they
        # hear of this user now (those told before add no line).
        return gatherResults([c.stream.catch_up().addCallback(self._announce, c) for c in behind],
                             consumeErrors=True)

    def _announce(self, _: object, conn: "NotificationProtocol") -> None:
        if not conn.closing and conn.state is not None and presence.is_visible(conn.status):
            presence.tell_watchers(conn)

    def _one_session_each(self, records: dict[str, PresenceRecord], conns: list["NotificationProtocol"]) -> None:
        """Two logins of one account during the outage, whatever order the nodes wrote them in:
        the later one stays, the earlier one ends as OUT OTH would have ended it."""
        for conn in conns:
            state = conn.state
            if state is None or conn.closing:
                continue
            record = records.get(state.handle)
            if record is not None and record.session != conn.session_id and record.since > conn.since:
                conn.sign_out("OTH")
            elif record is None or record.session != conn.session_id:
                conn.publish_record()  # ours is the later one: the directory must say so
                self.bus.publish([state.handle], SignedInElsewhere(conn.session_id))

    def _repaired(self, _: object, n: int) -> None:
        self.repairs += 1
        log.info("cluster: {n} sessions repaired after the Redis outage", n=n)

    def _retry(self, failure: Failure, step: Any) -> None:
        log.warn("cluster: repair after the Redis outage failed ({error}); trying again in {s:g} s",
                 error=redis_error(failure), s=SETTLE)
        self._later(step)
