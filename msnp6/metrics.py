"""Prometheus metrics: realm counters read at scrape time, plus a store latency histogram.

The realm already keeps plain counters (connections, ``events``, ``errors_sent``); the collector
reads them only when ``/metrics`` is scraped, so the protocol's hot paths pay nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector

from .core.limits import NAMES as LIMIT_NAMES

#: Store calls take from well under a millisecond (SQLite, warm cache) to seconds (a stuck
#: PostgreSQL); the buckets cover both ends.
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RealmCollector:
    """Turns the realm's counters into metric families on each scrape (on the reactor thread,
    where the counters are written, so no locks are needed)."""

    def __init__(self, realm: Any) -> None:
        self.realm = realm

    def collect(self) -> Iterator[Metric]:
        realm = self.realm
        connections = GaugeMetricFamily("msnp6_connections", "Open client connections, by service.", labels=["service"])
        for service, conns in sorted(realm.connections.items()):
            connections.add_metric([service], len(conns))
        yield connections
        yield GaugeMetricFamily("msnp6_sessions", "Accounts logged in on the notification server.", value=sum(1 for c in realm.connections["ns"] if c.authenticated))
        logins = CounterMetricFamily("msnp6_logins", "Finished MD5 logins, by result.", labels=["result"])
        logins.add_metric(["ok"], realm.events["login_ok"])
        logins.add_metric(["failed"], realm.events["login_failed"])
        yield logins
        yield CounterMetricFamily(
            "msnp6_messages_relayed", "Switchboard messages relayed to a recipient.",
            value=realm.events["messages_relayed"],
        )
        errors = CounterMetricFamily("msnp6_errors_sent", "Protocol error replies sent, by code.", labels=["code"])
        for code, n in sorted(realm.errors_sent.items()):
            errors.add_metric([str(int(code))], n)
        yield errors
        limited = CounterMetricFamily("msnp6_limited", "Requests and connections refused by a limit, by limit name.",
                                      labels=["limit"])
        counts = realm.refusals.counts
        for name in LIMIT_NAMES:
            limited.add_metric([name], counts[name])
        yield limited


class Metrics:
    """One registry per server (not the global one: tests build several in one process)."""

    def __init__(self, realm: Any) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(RealmCollector(realm))
        ProcessCollector(registry=self.registry)  # memory, CPU, open files: what sizing needs
        self.store_seconds = Histogram(
            "msnp6_store_seconds", "Time from queueing a store call to its result, by operation.",
            ["operation"], registry=self.registry, buckets=STORE_BUCKETS,
        )

    def observe_store(self, operation: str, seconds: float) -> None:
        self.store_seconds.labels(operation).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
