"""One Redis connection from a ``redis://HOST:PORT/DB`` URL, over txredisapi (never blocks the reactor)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs
import txredisapi


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
    """A lazy, self-reconnecting single connection (txredisapi backs off from 1 s up to 10 s).

    One connection, not a pool: commands then reach Redis in the order they were issued, which
    the fire-and-forget writes of the directory rely on (a ``put`` then ``remove`` must not swap).
    Replies are left as strings (``convertNumbers=False``): a handle or node name like ``"12"``
    stays a string."""
    address = parse_redis_url(url)
    return txredisapi.lazyConnection(address.host, address.port, dbid=address.db, reconnect=True,
                                     connectTimeout=connect_timeout, convertNumbers=False)
