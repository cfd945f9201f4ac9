"""Which node a client is sent to: a picture of the live nodes, refreshed after every heartbeat.

The dispatch server answers every ``USR`` and the notification server every ``XFR SB`` from this
picture, without a Redis round trip. Between refreshes each pick adds one to the picked node's
load, so a burst of logins spreads over the nodes instead of all going to the one that was
least loaded a second ago. A node whose last heartbeat is older than ``stale_after`` is only
picked when no fresher node serves the same thing: a node killed a moment ago stops getting
clients within seconds, not only once its entry expires.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .registry import NodeInfo


class NodeView:
    def __init__(self, clock: Callable[[], float], stale_after: float) -> None:
        self._clock = clock
        self.stale_after = stale_after
        self._nodes: list[NodeInfo] = []
        #: Clients sent to each node since the last refresh.
        self._sent: dict[str, int] = {}

    def update(self, nodes: Iterable[NodeInfo]) -> None:
        self._nodes = sorted(nodes, key=lambda n: n.name)
        self._sent = {}

    def forget(self, name: str) -> None:
        """A node found dead: never picked again (until it heartbeats anew)."""
        self._nodes = [n for n in self._nodes if n.name != name]

    @property
    def nodes(self) -> list[NodeInfo]:
        return list(self._nodes)

    def pick(self, service: str) -> str | None:
        """The ``host:port`` of the least-loaded live node serving ``service``, or None."""
        serving = [n for n in self._nodes if n.serves(service)]
        if not serving:
            return None
        now = self._clock()
        fresh = [n for n in serving if now - n.heartbeat <= self.stale_after]
        node = min(fresh or serving, key=lambda n: (n.load + self._sent.get(n.name, 0), n.name))
        self._sent[node.name] = self._sent.get(node.name, 0) + 1
        return node.addresses[service]
