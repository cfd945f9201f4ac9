"""Redis memory per online session in the cluster's presence directory (docs/cluster.md, sizing).

Starts a private redis-server, writes N presence records with the directory's own PUT script
(msnp6/directory/redis.py: the hash field and the node's handle set), pipelined, and prints one
JSON line per allow-list size with Redis's ``used_memory`` growth per session. The record carries
the user's allow and block lists, so their length is what moves the figure.

    python benchmarks/redis_directory_memory.py [--sessions 10000] [--allow 0,30]
"""
from __future__ import annotations

import argparse
import json
import socket
import tempfile
from pathlib import Path

from msnp6.directory.record import PresenceRecord, to_json
from msnp6.directory.redis import PUT
from msnp6.testing import RedisServerProcess

PREFIX = "msnp6:"
NODE = "node-a"


def command(*args: object) -> bytes:
    """One command in RESP, for pipelining many at once."""
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class Connection:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def replies(self, data: bytes, count: int) -> bytes:
        """Send ``data`` and read ``count`` replies (simple, integer or bulk strings)."""
        self.sock.sendall(data)
        out = b""
        for _ in range(count):
            line = self._line()
            out += line
            if line.startswith(b"$") and int(line[1:-2]) >= 0:
                out += self._exactly(int(line[1:-2]) + 2)
            elif line.startswith(b"-"):
                raise RuntimeError(line.decode())
        return out

    def used_memory(self) -> int:
        self.replies(command("MEMORY", "PURGE"), 1)
        info = self.replies(command("INFO", "memory"), 1).decode()
        return next(int(line.split(":")[1]) for line in info.splitlines() if line.startswith("used_memory:"))

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _more(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise RuntimeError("redis-server closed the connection")
        self.buf += data


def record(i: int, allow: int) -> PresenceRecord:
    handle = f"user{i:06d}-{i * 7919 % 10**6:06d}@example.com"
    return PresenceRecord(
        handle=handle, node=NODE, session=f"{i:016x}", account_id=i, dialect="MSNP6", status="NLN",
        name=handle, blp="AL", allow=frozenset(f"friend{j:03d}-{i % 977:03d}@example.com" for j in range(allow)),
        block=frozenset(), phone_home=None, phone_work=None, phone_mobile=None, mobile_allowed=False,
        email_enabled=True)


def measure(redis: Connection, sessions: int, allow: int) -> dict[str, object]:
    redis.replies(command("FLUSHALL"), 1)
    before = redis.used_memory()
    sha = redis.replies(command("SCRIPT", "LOAD", PUT), 1).split(b"\r\n")[1].decode()
    batch = 1000
    sample = ""
    for start in range(0, sessions, batch):
        data = b""
        for i in range(start, min(start + batch, sessions)):
            rec = record(i, allow)
            sample = to_json(rec)
            data += command("EVALSHA", sha, 2, PREFIX + "presence", f"{PREFIX}node:{NODE}:handles",
                            PREFIX, rec.handle, sample, NODE)
        redis.replies(data, min(batch, sessions - start))
    after = redis.used_memory()
    return {"scenario": "redis-directory-memory", "sessions": sessions, "allow_entries": allow,
            "record_bytes": len(sample.encode()), "bytes_per_session": round((after - before) / sessions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--allow", default="0,30", help="allow-list sizes to measure, comma-separated")
    args = parser.parse_args()
    server = RedisServerProcess(Path(tempfile.mkdtemp(prefix="msnp6-redis-mem-")))
    server.start()
    try:
        redis = Connection(server.port)
        for allow in (int(a) for a in args.allow.split(",")):
            print(json.dumps(measure(redis, args.sessions, allow)), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
