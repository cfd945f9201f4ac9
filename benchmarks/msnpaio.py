"""A small asyncio MSNP client for load generation: one Protocol per TCP connection.

Self-contained on purpose (no msnp6 import): the load generator is a separate program that only
speaks the wire protocol, the way a real client would. Every wait has a timeout.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable

#: Server-to-client commands followed by a byte-counted payload.
PAYLOAD_COMMANDS = frozenset({"MSG", "NOT", "IPG"})
CHALLENGE_ID = "msmsgs@msnmsgr.com"
CHALLENGE_KEY = "Q1P7W2E4J9R8U3S5"
VERSIONS = "MSNP6 MSNP5 MSNP4 CVR0"
LOOPBACK = "127.0.0.1"

Listener = Callable[[str, "bytes | None"], None]


class ProtocolFailure(Exception):
    """The server answered something the flow did not expect (an error code, a closed socket)."""


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def is_error(line: str) -> bool:
    """Errors are a bare three-digit code and a TrID: ``911 3``."""
    return len(line) >= 3 and line[:3].isdigit() and (len(line) == 3 or line[3] == " ")


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` from an XFR/RNG; refuse anything but loopback (benchmarks stay local)."""
    host, _, port = address.rpartition(":")
    if host != LOOPBACK:
        raise ProtocolFailure(f"server referred us to {address!r}, not to {LOOPBACK}")
    return host, int(port)


class MsnpConnection(asyncio.Protocol):
    """Frames lines and payloads; answers CHL by itself.

    Two ways to consume what arrives: ``recv()`` (for scripted flows), or a ``listener``
    callback (for hot loops, where a queue and a future per line would cost too much).
    ``counts``, when given (one Counter may serve many connections), tallies every line that
    arrives by its command word, the CHL/QRY exchange included.
    """

    def __init__(self, counts: Counter[str] | None = None) -> None:
        self.counts = counts
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.inbox: deque[tuple[str, bytes | None]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.listener: Listener | None = None
        self.trid = 0
        self._challenge_trids: set[str] = set()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while True:
            end = buf.find(b"\n", pos)
            if end < 0:
                break
            line = buf[pos:end].rstrip(b"\r").decode("utf-8", "replace")
            payload = None
            if line[:3] in PAYLOAD_COMMANDS:
                length = int(line.rsplit(" ", 1)[1])
                if len(buf) < end + 1 + length:
                    break  # wait for the rest of the payload
                payload = bytes(buf[end + 1 : end + 1 + length])
                pos = end + 1 + length
            else:
                pos = end + 1
            self._dispatch(line, payload)
        if pos:
            del buf[:pos]

    # -- receiving ---------------------------------------------------------------------------

    def _dispatch(self, line: str, payload: bytes | None) -> None:
        if self.counts is not None:
            self.counts[line[:3]] += 1
        if line.startswith("CHL "):
            self._answer_challenge(line.split(" ")[2])
            return
        if line.startswith("QRY ") and line[4:] in self._challenge_trids:
            self._challenge_trids.discard(line[4:])
            return
        if self.listener is not None:
            self.listener(line, payload)
            return
        self.inbox.append((line, payload))
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _answer_challenge(self, challenge: str) -> None:
        # Answer at once: the server drops MSNP6 clients that do not (540).
        t = self.next_trid()
        self._challenge_trids.add(str(t))
        self.send(f"QRY {t} {CHALLENGE_ID} 32", md5_hex(challenge + CHALLENGE_KEY).encode())

    async def recv(self, timeout: float) -> tuple[str, bytes | None]:
        deadline = time.monotonic() + timeout
        while not self.inbox:
            if self.closed:
                raise ProtocolFailure("connection closed by the server")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            self.waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.waiter, left)
        return self.inbox.popleft()

    async def expect(self, prefix: str, timeout: float, skip_others: bool = False) -> str:
        """The next line starting with ``prefix``; an error code fails, others fail unless skipped."""
        while True:
            line, _ = await self.recv(timeout)
            if line.startswith(prefix):
                return line
            if is_error(line) or not skip_others:
                raise ProtocolFailure(f"expected {prefix!r}, got {line!r}")

    async def wait_closed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, deadline - time.monotonic())
            except TimeoutError:
                break

    # -- sending -----------------------------------------------------------------------------

    def next_trid(self) -> int:
        self.trid += 1
        return self.trid

    def send(self, line: str, payload: bytes | None = None) -> None:
        if self.transport is None or self.closed:
            raise ProtocolFailure("send on a closed connection")
        data = line.encode("utf-8") + b"\r\n"
        self.transport.write(data + payload if payload else data)

    async def call(self, template: str, expect: str, timeout: float, skip_others: bool = False) -> tuple[int, str]:
        """Send ``template`` with a fresh TrID in ``{t}``; return it and the reply ``expect`` names."""
        t = self.next_trid()
        self.send(template.format(t=t))
        return t, await self.expect(expect.format(t=t), timeout, skip_others)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


async def connect(port: int, timeout: float, counts: Counter[str] | None = None) -> MsnpConnection:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: MsnpConnection(counts), LOOPBACK, port), timeout)
    return conn


# -- flows ---------------------------------------------------------------------------------------


async def negotiate(conn: MsnpConnection, timeout: float) -> None:
    await conn.call(f"VER {{t}} {VERSIONS}", f"VER {{t}} {VERSIONS}", timeout)
    await conn.call("INF {t}", "INF {t} MD5", timeout)


async def ds_redirect(ds_port: int, handle: str, timeout: float) -> int:
    """VER/INF/USR MD5 I on the dispatch server; returns the NS port of the ``XFR t NS`` reply."""
    conn = await connect(ds_port, timeout)
    try:
        await negotiate(conn, timeout)
        _, xfr = await conn.call(f"USR {{t}} MD5 I {handle}", "XFR {t} NS ", timeout)
        return split_address(xfr.split(" ")[3])[1]
    finally:
        conn.close()


async def ns_login(ns_port: int, handle: str, password: str, timeout: float,
                   counts: Counter[str] | None = None) -> MsnpConnection:
    """VER/INF/USR I/USR S on the notification server, up to and including the profile MSG."""
    conn = await connect(ns_port, timeout, counts)
    try:
        await negotiate(conn, timeout)
        _, usr = await conn.call(f"USR {{t}} MD5 I {handle}", "USR {t} MD5 S ", timeout)
        salt = usr.split(" ")[4]
        await conn.call(f"USR {{t}} MD5 S {md5_hex(salt + password)}", f"USR {{t}} OK {handle} ", timeout)
        await conn.expect("MSG Hotmail Hotmail ", timeout)
        return conn
    except BaseException:
        conn.close()
        raise


async def sync(conn: MsnpConnection, timeout: float) -> dict[str, int]:
    """``SYN t 0``; reads the dump up to its last RL line. Returns each list's size (FL, AL,
    BL, RL: the total its ``LST`` lines carry)."""
    t, _ = await conn.call("SYN {t} 0", "SYN {t} ", timeout)
    sizes: dict[str, int] = {}
    while True:
        line, _ = await conn.recv(timeout)
        if is_error(line):
            raise ProtocolFailure(f"SYN dump interrupted by {line!r}")
        words = line.split(" ")
        if words[0] == "LST" and words[1] == str(t):  # LST t list version index total [handle name]
            sizes[words[2]] = int(words[5])
            if words[2] == "RL" and words[4] == words[5]:
                return sizes


async def set_status(conn: MsnpConnection, status: str, timeout: float) -> None:
    """``CHG t status`` and its echo (ILN lines may come around it: skipped)."""
    await conn.call(f"CHG {{t}} {status}", f"CHG {{t}} {status}", timeout, skip_others=True)


async def online_session(ns_port: int, handle: str, password: str, timeout: float,
                         counts: Counter[str] | None = None,
                         lists: dict[str, int] | None = None) -> MsnpConnection:
    """What a client does to appear online: login, SYN, CHG NLN. The CHL that follows the CHG
    (about a second later) is answered by the connection as long as it stays open. ``lists``,
    when given, gets the list sizes the SYN dump announced."""
    conn = await ns_login(ns_port, handle, password, timeout, counts)
    try:
        sizes = await sync(conn, timeout)
        if lists is not None:
            lists.update(sizes)
        await set_status(conn, "NLN", timeout)
        return conn
    except BaseException:
        conn.close()
        raise
