"""MsnpConnection's framing, command loop and output, on a StringTransport (no reactor)."""
from __future__ import annotations

import socket
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import ISystemHandle
from twisted.internet.testing import StringTransport
from twisted.logger import Logger
from zope.interface import implementer

from msnp6.framing import MAX_UNSENT_BYTES, MsnpConnection
from msnp6.testing import connect, take_lines, unit_realm
from msnp6.wire.errors import ProtocolError
from msnp6.wire.lines import Command, format_line

MAX_PAYLOAD = 1024


class Recorder(MsnpConnection):
    """Records every command; ``SLW`` waits for a Deferred the test fires, ``BAD`` fails."""

    service = "sb"
    payload_commands = frozenset({"MSG", "QRY"})
    max_payload = MAX_PAYLOAD

    def __init__(self, realm: Any) -> None:
        super().__init__(realm)
        self.seen: list[Command] = []
        self.waiting: list[Deferred[None]] = []
        self.events: list[dict[str, Any]] = []
        self.log = Logger(observer=self.events.append)  # type: ignore[arg-type]

    def handlers(self) -> dict[str, Any]:
        return {"SLW": Recorder.slow, "BAD": Recorder.bad, "NOW": Recorder.now}

    def unknown_command(self, command: Command) -> None:
        self.seen.append(command)

    def slow(self, command: Command) -> Deferred[None]:
        self.seen.append(command)
        d: Deferred[None] = Deferred()
        self.waiting.append(d)
        return d

    def bad(self, command: Command) -> Deferred[None]:
        self.seen.append(command)
        return fail(ProtocolError(500))

    def now(self, command: Command) -> Deferred[None]:
        self.seen.append(command)
        return succeed(None)

    def fire(self) -> None:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    return unit_realm(tmp_path_factory.mktemp("framing"), {})


def open_conn(realm: Any) -> tuple[Recorder, StringTransport]:
    conn = Recorder(realm)
    return conn, connect(conn)


Seen = tuple[str, int | None, tuple[str, ...], bytes | None]


def seen(conn: Recorder) -> list[Seen]:
    return [(c.name, c.trid, c.args, c.payload) for c in conn.seen]


# -- line framing ------------------------------------------------------------------------------

def test_crlf_and_bare_lf(realm):
    conn, t = open_conn(realm)
    conn.dataReceived(b"PNG\r\nCHG 1 NLN\nSYN 2 0 \r\n\r\n\nOUT\n")
    assert seen(conn) == [("PNG", None, (), None), ("CHG", 1, ("NLN",), None), ("SYN", 2, ("0",), None),
                          ("OUT", None, (), None)]
    assert not t.disconnecting


STREAM = (b"PNG\r\nMSG 1 N 12\r\nhello\r\nworld\nQRY 2 id 0\r\nCHG 3 NLN\n"
          b"MSG 4 U 3\r\n\r\n\nSLW 5\r\nMSG 6 A 4\nabcdOUT\r\n")
STREAM_COMMANDS: list[Seen] = [
    ("PNG", None, (), None), ("MSG", 1, ("N", "12"), b"hello\r\nworld"), ("QRY", 2, ("id", "0"), b""),
    ("CHG", 3, ("NLN",), None), ("MSG", 4, ("U", "3"), b"\r\n\n"), ("SLW", 5, (), None),
    ("MSG", 6, ("A", "4"), b"abcd"), ("OUT", None, (), None),
]


def feed(conn: Recorder, chunks: list[bytes]) -> None:
    for chunk in chunks:
        conn.dataReceived(chunk)
        conn.fire()


def test_split_at_every_byte_boundary(realm):
    for i in range(len(STREAM) + 1):
        conn, _ = open_conn(realm)
        feed(conn, [STREAM[:i], STREAM[i:]])
        assert seen(conn) == STREAM_COMMANDS, i
    conn, _ = open_conn(realm)
    feed(conn, [STREAM[i : i + 1] for i in range(len(STREAM))])
    assert seen(conn) == STREAM_COMMANDS


@st.composite
def pipelined(draw: Any) -> tuple[bytes, list[Seen]]:
    """A byte stream of plain, payload and Deferred commands, and what it must be handled as."""
    data = b""
    expected: list[Seen] = []
    for trid in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["PNG", "CHG", "MSG", "QRY", "SLW", "NOW"]))
        end = draw(st.sampled_from([b"\r\n", b"\n"]))
        if kind in ("MSG", "QRY"):
            payload = draw(st.binary(max_size=40) | st.sampled_from([b"\r\n", b"MSG 1 N 3\r\n", b""]))
            data += format_line(kind, trid, "N", len(payload))[:-2] + end + payload
            expected.append((kind, trid, ("N", str(len(payload))), payload))
        else:
            args = tuple(draw(st.lists(st.text("ABCxyz09@.%", min_size=1, max_size=8), max_size=3)))
            data += format_line(kind, trid, *args)[:-2] + end
            expected.append((kind, trid, args, None))
    return data, expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pipelined(), st.lists(st.integers(0, 400), max_size=12), st.lists(st.booleans(), max_size=12))
def test_any_chunking_handles_the_same_commands_in_order(realm, stream, cuts, fire_after):
    data, expected = stream
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in pairwise(points)]
    conn, t = open_conn(realm)
    for n, chunk in enumerate(chunks):
        conn.dataReceived(chunk)
        assert len(conn.waiting) <= 1  # one command at a time
        assert conn.paused == bool(conn.waiting)  # later commands wait meanwhile
        if n < len(fire_after) and fire_after[n]:
            conn.fire()
    while conn.waiting:
        conn.fire()
    assert seen(conn) == expected
    assert not t.disconnecting and t.producerState == "producing"


def test_no_instance_attribute_appears_after_connect(realm):
    """CPython shares dict keys only for names instances get early: a later one would give every
    connection its own dict (see MsnpConnection.__slots__)."""
    conn, t = open_conn(realm)
    names = set(vars(conn))
    conn.dataReceived(b"SLW 1\r\nMSG 2 N 3\r\nab")
    conn.fire()
    conn.dataReceived(b"cPNG\r\n" + b"X" * 5000)
    assert t.disconnecting and set(vars(conn)) == names


# -- caps ----------------------------------------------------------------------------------------

def closings(conn: Recorder) -> list[str]:
    return [e["why"] for e in conn.events if "why" in e]


def test_line_at_the_cap_is_accepted(realm):
    conn, t = open_conn(realm)
    line = b"PNG " + b"a" * (4096 - 4)
    conn.dataReceived(line + b"\n")
    assert len(conn.seen) == 1 and not t.disconnecting


@pytest.mark.parametrize("data", [b"X" * 4097, b"PNG " + b"a" * 4092 + b"\r\n", b"PNG\r\n" + b"Y" * 5000 + b"\r\nPNG\r\n"])
def test_over_long_line_closes_once(realm, data):
    conn, t = open_conn(realm)
    conn.dataReceived(data)
    conn.dataReceived(b"Z" * 10000)
    assert t.disconnecting
    assert closings(conn) == ["line too long"]
    assert [c.name for c in conn.seen] == (["PNG"] if data.startswith(b"PNG\r\n") else [])


def test_payload_at_the_cap_is_accepted(realm):
    conn, t = open_conn(realm)
    conn.dataReceived(b"MSG 1 N 1024\r\n" + b"p" * 1024 + b"PNG\r\n")
    assert [c.name for c in conn.seen] == ["MSG", "PNG"] and not t.disconnecting


@pytest.mark.parametrize("header,why", [
    (b"MSG 1 N 1025", "MSG payload of 1025 bytes is over the cap"),
    (b"MSG 1 N 99999999999999999999", "MSG without a byte length"),  # over 32 bits: not a length
    (b"MSG 1 N +12", "MSG without a byte length"),
    (b"MSG 1 N 1_0", "MSG without a byte length"),
    ("MSG 1 N \u00b2".encode(), "MSG without a byte length"),
    (b"QRY 1 id x", "QRY without a byte length"),
    (b"MSG 1", "MSG without a byte length"),
    ("MSG 1 N \u0661\u0662".encode(), "MSG without a byte length"),
])
def test_bad_payload_length_closes(realm, header, why):
    conn, t = open_conn(realm)
    conn.dataReceived(b"PNG\r\n" + header + b"\r\n" + b"p" * 2000 + b"PNG\r\n")
    assert t.disconnecting and closings(conn) == [why]
    assert [c.name for c in conn.seen] == ["PNG"]


# -- one command at a time -----------------------------------------------------------------------

def test_deferred_handler_holds_back_later_commands(realm):
    conn, t = open_conn(realm)
    conn.dataReceived(b"SLW 1\r\nPNG 2\r\nMSG 3 N 3\r\nab")
    assert [c.trid for c in conn.seen] == [1] and conn.paused
    assert t.producerState == "producing"  # a little input is still read (no epoll calls)
    conn.dataReceived(b"cPNG 4\r\n")
    assert [c.trid for c in conn.seen] == [1]
    conn.fire()
    assert [c.trid for c in conn.seen] == [1, 2, 3, 4] and conn.seen[2].payload == b"abc"
    assert t.producerState == "producing"


def test_reading_stops_when_input_piles_up_behind_a_waiting_command(realm):
    from msnp6.framing import READ_PAUSE_BYTES

    conn, t = open_conn(realm)
    conn.dataReceived(b"SLW 1\r\n")
    conn.dataReceived(b"PNG 2\r\n" * (READ_PAUSE_BYTES // 7))
    assert t.producerState == "producing"
    conn.dataReceived(b"PNG 3\r\n" * 2)
    assert t.producerState == "paused" and [c.trid for c in conn.seen] == [1]
    conn.fire()
    assert t.producerState == "producing" and len(conn.seen) == READ_PAUSE_BYTES // 7 + 3


def test_already_fired_and_failed_deferreds_go_on_at_once(realm):
    conn, t = open_conn(realm)
    conn.dataReceived(b"NOW 1\r\nBAD 2\r\nPNG 3\r\n")
    assert [c.trid for c in conn.seen] == [1, 2, 3] and t.producerState == "producing"
    assert take_lines(t) == ["500 2"]


def test_no_resume_after_close(realm):
    conn, t = open_conn(realm)
    conn.dataReceived(b"SLW 1\r\nPNG 2\r\n")
    conn.close()
    conn.fire()  # StringTransport raises if resumed after loseConnection
    assert [c.trid for c in conn.seen] == [1] and t.disconnecting


def test_lost_connection_drops_pending_input(realm):
    conn, _ = open_conn(realm)
    conn.dataReceived(b"SLW 1\r\nPNG 2\r\n")
    conn.connectionLost()
    conn.fire()
    assert [c.trid for c in conn.seen] == [1] and conn not in realm.connections["sb"]


# -- output --------------------------------------------------------------------------------------

@implementer(ISystemHandle)
class SocketTransport(StringTransport):
    """A StringTransport with a real socket handle that reports drains like a FileDescriptor
    (``drained``); what it buffers is ``value()``."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def getHandle(self) -> socket.socket:
        return self.sock

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        super().registerProducer(producer, streaming)
        producer.resumeProducing()

    def drained(self) -> None:
        self.clear()
        producer: Any = self.producer
        producer.resumeProducing()


@pytest.fixture
def sockets():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    yield ours, theirs
    ours.close()
    theirs.close()


def socket_conn(realm: Any, sock: socket.socket) -> tuple[Recorder, SocketTransport]:
    conn = Recorder(realm)
    t = SocketTransport(sock)
    conn.makeConnection(t)
    return conn, t


def test_direct_send_only_while_twisted_holds_nothing(realm, sockets):
    ours, theirs = sockets
    conn, t = socket_conn(realm, ours)
    assert t.producer is not None and t.streaming is False
    conn.send("PNG", 1)
    assert theirs.recv(100) == b"PNG 1\r\n" and t.value() == b""  # straight to the socket
    big = b"b" * 1_000_000
    conn.write(big)  # more than the kernel takes: the rest goes to the transport
    kernel = len(big) - len(t.value())
    assert 0 < len(t.value()) < len(big)
    received = theirs.recv(8192)  # the kernel has room again, but Twisted still holds bytes:
    conn.send("QNG", 2)  # so this must queue behind them
    assert t.value() == big[kernel:] + b"QNG 2\r\n"
    t.drained()  # Twisted wrote it all out
    while len(received) < kernel:
        received += theirs.recv(1 << 20)
    assert received == big[:kernel]
    conn.send("PNG", 3)
    assert theirs.recv(100) == b"PNG 3\r\n" and t.value() == b""


def test_a_peer_that_reads_nothing_is_dropped_at_the_cap(realm, sockets):
    ours, _ = sockets
    conn, t = socket_conn(realm, ours)
    conn.write(b"x" * MAX_UNSENT_BYTES)  # the kernel takes some, the transport holds the rest
    assert not t.disconnected
    t.drained()  # the counter starts again at 0 once Twisted has written everything out
    conn.write(b"y" * MAX_UNSENT_BYTES)
    assert not t.disconnected
    conn.write(b"z")
    assert t.disconnected and conn.closing  # aborted
    conn.write(b"more")
    assert t.value() == b"y" * MAX_UNSENT_BYTES + b"z"


def test_no_cap_and_no_producer_without_a_socket(realm):
    conn, t = open_conn(realm)
    assert t.producer is None
    conn.write(b"x" * (MAX_UNSENT_BYTES + 1))
    assert not t.disconnecting and len(t.value()) == MAX_UNSENT_BYTES + 1


def test_close_flushes_and_unregisters_the_drain_watch(realm, sockets):
    ours, theirs = sockets
    conn, t = socket_conn(realm, ours)
    conn.send("PNG", None)
    conn.close()
    assert theirs.recv(100) == b"PNG\r\n" and t.disconnecting and t.producer is None


def test_lose_connection_without_close_still_completes(realm, sockets):
    ours, _ = sockets
    _, t = socket_conn(realm, ours)
    t.loseConnection()  # not through conn.close(): the drain watch is still registered
    t.drained()  # FileDescriptor asks the producer for more instead of closing ...
    assert t.producer is None  # ... so it steps aside, and the next doWrite completes the close


@pytest.mark.parametrize("how", ["close", "loseConnection"])
def test_real_tcp_output_arrives_whole_then_the_close(realm, how):
    """On a real Twisted TCP transport (a private reactor, pumped here): a reply bigger than the
    kernel takes goes out partly directly, partly through Twisted, then the connection closes."""
    from twisted.internet.epollreactor import EPollReactor
    from twisted.internet.protocol import Factory

    reactor = EPollReactor()
    conns: list[Recorder] = []

    class Big(Recorder):
        def handlers(self) -> dict[str, Any]:
            return {"BIG": Big.big}

        def big(self, command: Command) -> None:
            self.write(b"a" * 100)
            self.write(b"b" * 300_000)
            self.flush()
            self.write(b"END\r\n")
            assert self._unsent  # Twisted holds part of it
            if how == "close":
                self.close()
            else:
                self.flush()
                transport: Any = self.transport
                transport.loseConnection()

    factory = Factory.forProtocol(lambda: conns.append(Big(realm)) or conns[-1])
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    try:
        while not conns:
            reactor.iterate(0.01)
        sock = conns[0]._sock
        assert sock is not None and conns[0]._unsent == 0
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # so that Twisted holds some
        client.sendall(b"BIG\r\n")
        client.setblocking(False)
        received = b""
        for _ in range(5000):
            reactor.iterate(0.001)
            try:
                data = client.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                break
            received += data
        else:
            raise AssertionError(f"no close after {len(received)} bytes")
        assert received == b"a" * 100 + b"b" * 300_000 + b"END\r\n"
    finally:
        client.close()
        port.stopListening()
        for _ in range(5):
            reactor.iterate(0)
