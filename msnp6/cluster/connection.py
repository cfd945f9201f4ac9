"""One Redis connection from a ``redis://HOST:PORT/DB`` URL, over txredisapi (never blocks the reactor)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs
import txredisapi
from twisted.internet import defer
from twisted.internet.defer import FirstError
from twisted.python.failure import Failure

#: Longest wait between two attempts to reach Redis again (seconds).
MAX_RECONNECT_DELAY = 2.0


@attrs.frozen
class RedisAddress:
    host: str
    port: int
    db: int


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://HOST[:PORT][/DB]``; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"not a redis://HOST:PORT/DB URL: {url!r}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database of a Redis URL is a number: {url!r}")
    return RedisAddress(parts.hostname, parts.port or 6379, int(path or 0))


def connect(url: str, connect_timeout: float = 5.0) -> Any:
    """A lazy, self-reconnecting single connection (backing off from 1 s up to ``MAX_RECONNECT_DELAY``).

    One connection, not a pool: commands then reach Redis in the order they were issued, which
    the fire-and-forget writes of the directory rely on (a ``put`` then ``remove`` must not swap).
    Replies are left as strings (``convertNumbers=False``): a handle or node name like ``"12"``
    stays a string."""
    address = parse_redis_url(url)
    # A node must find Redis again within seconds of its return: the repair after an outage
    # (msnp6.cluster.member) is bounded by this. txredisapi's own cap is 10 s; its factories are
    # made inside lazyConnection, so the cap is set on the class (every Redis connection here is
    # a cluster node's).
    txredisapi.RedisFactory.maxDelay = MAX_RECONNECT_DELAY
    return txredisapi.lazyConnection(address.host, address.port, dbid=address.db, reconnect=True,
                                     connectTimeout=connect_timeout, convertNumbers=False)


def redis_error(failure: Failure) -> str:
    """One short line saying why a Redis call failed (for logs: never a traceback, never the
    ``FirstError`` wrapping of a batch, nor the arguments a timed-out Deferred carries)."""
    while failure.check(FirstError):
        failure = failure.value.subFailure  # type: ignore[union-attr]
    if failure.check(defer.TimeoutError, defer.CancelledError):
        return "no answer from Redis in time"
    if failure.check(txredisapi.ConnectionError):
        return "not connected to Redis"
    lines = (failure.getErrorMessage() or failure.type.__name__).strip().splitlines()  # type: ignore[union-attr]
    return (lines[0] if lines else "")[:200]
