"""The bus between processes: Redis pub/sub, one channel per account and one for everyone.

A node SUBSCRIBEs (on a connection of its own) to the channel of each account it holds, and to
the broadcast channel; ``publish`` PUBLISHes on another connection. Events this process publishes
are delivered to its own subscribers at once, as the in-memory bus does (same-node delivery keeps
working while Redis is away, and costs no round trip); each message carries the publishing bus's
origin, so the echo Redis sends back is recognised and skipped: a local subscriber gets each event
exactly once.

Both connections reconnect with backoff. Pub/sub knows nothing of database numbers, so the channel
names carry the database (``msnp6:<db>:a:<handle>``, ``msnp6:<db>:all``): nodes on different
databases of one Redis stay apart.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IAddress, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..events import BadEvent, Event, decode, encode
from .interface import Subscriber

log = Logger()


class _Listener(txredisapi.SubscriberProtocol):
    """The subscriber connection: messages go to the bus; (un)subscribe confirmations are counted,
    one per channel, so the bus knows when Redis has taken its subscriptions."""

    def __init__(self, bus: RedisBus) -> None:
        super().__init__(convertNumbers=False)
        self.bus = bus
        self.acked = 0

    def replyReceived(self, reply: Any) -> None:
        if isinstance(reply, list) and len(reply) == 3 and reply[0] in ("subscribe", "unsubscribe"):
            self.acked += 1
            self.bus._acked(self)
        super().replyReceived(reply)

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.bus._message(channel, message)


class _Connector(Factory):
    """Builds a txredisapi protocol and tells the bus when it is ready and when it is gone."""

    noisy = False  # a reconnect every few seconds during an outage is not news each time

    def __init__(self, make: Callable[[], Any], up: Callable[[Any], None],
                 down: Callable[[Any], None]) -> None:
        self.make, self.up, self.down = make, up, down

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        proto = self.make()
        proto.factory = self
        proto.whenConnected().addCallback(self.up)
        proto.whenDisconnected().addCallback(self.down)
        built: Protocol = proto
        return built


def _endpoint(reactor: Any, host: str, port: int) -> IStreamClientEndpoint:
    """An address needs no resolver (whose thread pool only starts with ``reactor.run``)."""
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port)
    return HostnameEndpoint(reactor, host, port)


def _ignore(_: Failure) -> None:
    """A (un)subscribe answer lost with its connection: the resubscription on reconnect covers it."""


class RedisBus:
    """``on_reconnect`` is called each time the bus becomes connected (both connections up and every
    held channel subscribed again), the first time too: events published meanwhile by other nodes
    were missed, so the node re-announces what it holds."""

    def __init__(self, host: str, port: int, db: int = 0, *, reactor: Any = None,
                 on_reconnect: Callable[[], None] | None = None, max_delay: float = 5.0) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.address = f"{host}:{port}/{db}"
        self.on_reconnect = on_reconnect
        self._prefix = f"msnp6:{db}:a:"
        self._all = f"msnp6:{db}:all"
        # Tells our own messages apart when Redis echoes them to our subscriber connection.
        self._origin = secrets.token_hex(8).encode("ascii")
        self._holders: dict[str, tuple[Subscriber, ...]] = {}
        self._pub: Any = None
        self._sub: _Listener | None = None
        self._requested = 0  # channels (un)subscribed on the current subscriber connection
        self._synced = False
        self._stopping = False
        self._outage_told = False
        #: Both connections up and every held channel subscribed (for readiness).
        self.connected = False
        #: Events published; deliveries that failed; PUBLISHes Redis never took; messages
        #: received from Redis (our echoes included); messages that were not events.
        self.published = 0
        self.failed = 0
        self.dropped = 0
        self.received = 0
        self.bad = 0
        #: PUBLISHes sent and not answered yet.
        self.in_flight = 0
        policy = backoffPolicy(initialDelay=0.1, maxDelay=max_delay, factor=2.0)
        endpoint = _endpoint(reactor, host, port)
        self._services = (
            ClientService(endpoint, _Connector(lambda: txredisapi.RedisProtocol(convertNumbers=False),
                                               self._pub_up, self._pub_down),
                          retryPolicy=policy, clock=reactor),
            ClientService(endpoint, _Connector(lambda: _Listener(self), self._sub_up, self._sub_down),
                          retryPolicy=policy, clock=reactor),
        )

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        for service in self._services:
            service.startService()

    def stop(self) -> Deferred[Any]:
        """Close both connections; fires when they are closed."""
        self._stopping = True
        return gatherResults([service.stopService() for service in self._services])

    @property
    def subscriptions_settled(self) -> bool:
        """Redis has confirmed every (un)subscription sent so far."""
        return self._sub is not None and self._sub.acked >= self._requested

    # -- the Bus protocol ---------------------------------------------------------------------

    def subscribe(self, handle: str, subscriber: Subscriber) -> None:
        holders = self._holders.get(handle, ())
        if subscriber in holders:
            return
        self._holders[handle] = (*holders, subscriber)
        if not holders and self._sub is not None:
            self._requested += 1
            self._sub.subscribe(self._prefix + handle).addErrback(_ignore)

    def unsubscribe(self, handle: str, subscriber: Subscriber) -> None:
        holders = self._holders.get(handle, ())
        if subscriber not in holders:
            return
        rest = tuple(h for h in holders if h is not subscriber)
        if rest:
            self._holders[handle] = rest
            return
        del self._holders[handle]
        if self._sub is not None:
            self._requested += 1
            self._sub.unsubscribe(self._prefix + handle).addErrback(_ignore)

    def publish(self, handles: Iterable[str], event: Event) -> None:
        self.published += 1
        handles = list(handles)
        # Out to Redis before the local delivery: whatever a local subscriber publishes in turn
        # then reaches the other nodes after this event, not before it.
        message = self._origin + b" " + encode(event)
        for handle in handles:
            self._send(self._prefix + handle, message)
        for handle in handles:
            self._deliver(handle, event)

    def publish_all(self, event: Event) -> None:
        self.published += 1
        self._send(self._all, self._origin + b" " + encode(event))
        for handle in list(self._holders):
            self._deliver(handle, event)

    # -- sending and delivering ---------------------------------------------------------------

    def _send(self, channel: str, message: bytes) -> None:
        if self._pub is None:
            self._lost("not connected")
            return
        try:
            d = self._pub.publish(channel, message)
        except Exception:  # txredisapi raises at once on a connection that just went
            self._lost("not connected")
            return
        self.in_flight += 1
        d.addCallbacks(self._sent, self._not_sent)

    def _sent(self, _: object) -> None:
        self.in_flight -= 1

    def _not_sent(self, failure: Failure) -> None:
        self.in_flight -= 1
        self._lost(failure.getErrorMessage())

    def _lost(self, why: str) -> None:
        """One event Redis did not take: counted; said once per outage."""
        self.dropped += 1
        if not self._outage_told:
            self._outage_told = True
            log.warn("bus: Redis at {address} unreachable ({why}); events for other nodes are "
                     "dropped until it is back", address=self.address, why=why)

    def _deliver(self, handle: str, event: Event) -> None:
        for subscriber in self._holders.get(handle, ()):
            # One recipient's failure must not stop the fan-out, nor reach the publisher.
            try:
                subscriber.deliver(handle, event)
            except Exception:
                self.failed += 1
                log.failure("delivering {kind} to {handle} failed", kind=event.kind, handle=handle)

    def _message(self, channel: Any, message: Any) -> None:
        self.received += 1
        data = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        origin, _, body = data.partition(b" ")
        if origin == self._origin:
            return  # delivered when it was published
        try:
            event = decode(body)
        except BadEvent as e:
            self.bad += 1
            log.warn("bus: dropped a message on {channel!r} that is not an event: {error}",
                     channel=channel, error=str(e))
            return
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        if channel == self._all:
            for handle in list(self._holders):
                self._deliver(handle, event)
        elif channel.startswith(self._prefix):
            self._deliver(channel[len(self._prefix):], event)

    # -- connection state ---------------------------------------------------------------------

    def _pub_up(self, proto: Any) -> None:
        self._pub = proto
        self._update()

    def _pub_down(self, proto: Any) -> None:
        if proto is self._pub:
            self._pub = None
            self._update()

    def _sub_up(self, proto: _Listener) -> None:
        self._sub = proto
        self._synced = False
        # One command for all: Redis runs it whole, so its first confirmation means all are taken.
        channels = [self._all, *(self._prefix + h for h in self._holders)]
        self._requested = len(channels)
        proto.subscribe(channels).addErrback(_ignore)

    def _acked(self, proto: _Listener) -> None:
        if proto is self._sub and not self._synced and proto.acked >= 1:
            self._synced = True
            self._update()

    def _sub_down(self, proto: Any) -> None:
        if proto is self._sub:
            self._sub = None
            self._synced = False
            self._update()

    def _update(self) -> None:
        now = self._pub is not None and self._sub is not None and self._synced
        if now == self.connected:
            return
        self.connected = now
        if self._stopping:
            return
        if not now:
            if not self._outage_told:
                self._outage_told = True
                log.warn("bus: lost Redis at {address}; reconnecting, events for other nodes are "
                         "dropped meanwhile", address=self.address)
            return
        self._outage_told = False
        log.info("bus: connected to Redis at {address}, {n} accounts subscribed",
                 address=self.address, n=len(self._holders))
        if self.on_reconnect is not None:
            try:
                self.on_reconnect()
            except Exception:
                log.failure("bus: the reconnect callback failed")
