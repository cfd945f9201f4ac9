"""Test and benchmark helpers: a blocking MSNP client, a server process, an immediate store.

Public so that tests, benchmarks and operators' own scripts can drive a real server.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from .store.store import DirectStore, Store

#: Server-to-client commands that carry a byte-counted payload.
SERVER_PAYLOAD = frozenset({"MSG", "NOT", "IPG"})

CHALLENGE_KEY = "Q1P7W2E4J9R8U3S5"
CHALLENGE_ID = "msmsgs@msnmsgr.com"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


@attrs.frozen
class Reply:
    line: str
    payload: bytes | None = None

    @property
    def words(self) -> list[str]:
        return self.line.split(" ")

    @property
    def name(self) -> str:
        return self.words[0]


class ConnectionClosed(AssertionError):
    pass


class MsnpClient:
    """A blocking line client that speaks to a real server over TCP."""

    def __init__(self, host: str, port: int, timeout: float = 5.0, source: str | None = None) -> None:
        """``source``: the local address to connect from (e.g. another loopback address, 127.0.0.2)."""
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self._buf = b""
        self.trid = 0
        #: Answer CHL by itself and hide the CHL/QRY exchange from ``recv`` (for presence tests).
        self.auto_challenge = False
        self._challenge_trids: set[str] = set()
        #: Seconds ``fence`` waits first: in a cluster, events from other nodes come through Redis
        #: and may still be on their way when this node answers the PNG.
        self.settle = 0.0

    def next_trid(self) -> int:
        self.trid += 1
        return self.trid

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "MsnpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, line: str, payload: bytes | None = None) -> None:
        self.sock.sendall(line.encode("utf-8") + b"\r\n" + (payload or b""))

    # -- receiving ----------------------------------------------------------------------------

    def _fill(self, timeout: float | None) -> None:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed(f"server closed the connection (unread: {self._buf!r})")
        self._buf += data

    def recv(self, timeout: float | None = None) -> Reply:
        while True:
            reply = self._recv_one(timeout)
            if self.auto_challenge and reply.name == "CHL":
                t = self.next_trid()
                self._challenge_trids.add(str(t))
                self.send(f"QRY {t} {CHALLENGE_ID} 32", md5_hex(reply.words[2] + CHALLENGE_KEY).encode())
            elif self.auto_challenge and reply.name == "QRY" and reply.words[1] in self._challenge_trids:
                self._challenge_trids.discard(reply.words[1])
            else:
                return reply

    def _recv_one(self, timeout: float | None) -> Reply:
        while b"\r\n" not in self._buf:
            self._fill(timeout)
        raw, self._buf = self._buf.split(b"\r\n", 1)
        line = raw.decode("utf-8")
        words = line.split(" ")
        if words[0] in SERVER_PAYLOAD:
            length = int(words[-1])
            while len(self._buf) < length:
                self._fill(timeout)
            payload, self._buf = self._buf[:length], self._buf[length:]
            return Reply(line, payload)
        return Reply(line)

    def expect(self, line: str, timeout: float | None = None) -> Reply:
        reply = self.recv(timeout)
        assert reply.line == line, f"expected {line!r}, got {reply.line!r}"
        return reply

    def expect_lines(self, lines: Sequence[str]) -> None:
        got = [self.recv().line for _ in lines]
        assert got == list(lines), f"expected {list(lines)!r}, got {got!r}"

    def recv_until(self, predicate: Callable[[Reply], bool], timeout: float | None = None) -> list[Reply]:
        """Replies up to and including the first one that matches."""
        seen = []
        while True:
            reply = self.recv(timeout)
            seen.append(reply)
            if predicate(reply):
                return seen

    def expect_silence(self, seconds: float = 0.3) -> None:
        """Nothing arrives (and the connection stays open) for ``seconds``."""
        assert not self._buf, f"unexpected data {self._buf!r}"
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected data {data!r}" if data else "connection closed")

    def expect_closed(self, timeout: float | None = None) -> None:
        """The server closes the connection, with nothing (more) to read first."""
        assert not self._buf, f"unexpected data {self._buf!r}"
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return
        assert data == b"", f"expected a close, got {data!r}"

    # -- flows ----------------------------------------------------------------------------------

    def negotiate(self, versions: str = "MSNP6 MSNP5 MSNP4 CVR0") -> None:
        t = self.next_trid()
        self.send(f"VER {t} {versions}")
        self.expect(f"VER {t} {versions}")
        t = self.next_trid()
        self.send(f"INF {t}")
        self.expect(f"INF {t} MD5")

    def request_salt(self, handle: str) -> str:
        """``USR t MD5 I handle``; returns the salt of the ``USR t MD5 S salt`` reply."""
        t = self.next_trid()
        self.send(f"USR {t} MD5 I {handle}")
        words = self.recv().words
        assert words[:4] == ["USR", str(t), "MD5", "S"] and len(words) == 5, words
        return words[4]

    def attempt(self, handle: str, password: str, versions: str | None = "MSNP6 MSNP5 MSNP4 CVR0") -> tuple[int, Reply]:
        """(VER/INF,) USR I, USR S; returns the USR S TrID and the server's answer to it."""
        if versions:
            self.negotiate(versions)
        salt = self.request_salt(handle)
        t = self.next_trid()
        self.send(f"USR {t} MD5 S {md5_hex(salt + password)}")
        return t, self.recv()

    def login(self, handle: str, password: str, versions: str = "MSNP6 MSNP5 MSNP4 CVR0") -> Reply:
        """VER/INF/USR I/USR S on a notification server; returns the profile MSG."""
        t, ok = self.attempt(handle, password, versions)
        assert ok.words[:4] == ["USR", str(t), "OK", handle], ok.line
        profile = self.recv()
        assert profile.line.startswith("MSG Hotmail Hotmail "), profile.line
        return profile

    def sync(self, version: int = 0) -> list[Reply]:
        """``SYN t version``; returns every line of the answer (it ends with the last RL line)."""
        t = self.next_trid()
        self.send(f"SYN {t} {version}")
        first = self.expect_prefix(f"SYN {t} ")
        if int(first.words[2]) == version and version:
            return [first]
        return [first, *self.recv_until(lambda r: r.words[:3] == ["LST", str(t), "RL"] and r.words[4] == r.words[5])]

    def expect_prefix(self, prefix: str) -> Reply:
        reply = self.recv()
        assert reply.line.startswith(prefix), f"expected {prefix!r}..., got {reply.line!r}"
        return reply

    def fence(self) -> list[str]:
        """Lines that arrive before the answer to a PNG sent now (nothing pending is lost)."""
        if self.settle:
            time.sleep(self.settle)
        return self._fence()

    def _fence(self) -> list[str]:
        self.send("PNG")
        return [r.line for r in self.recv_until(lambda r: r.line == "QNG")][:-1]

    def command(self, line: str, payload: bytes | None = None) -> tuple[int, list[str]]:
        """Send ``line`` (and ``payload``) with a fresh TrID in place of ``{t}``; return the TrID
        and the lines up to a fence, so the answer and everything it caused here are read."""
        t = self.next_trid()
        self.send(line.format(t=t), payload)
        return t, self._fence()

    def answer_challenge(self, chl: Reply) -> None:
        assert chl.name == "CHL", chl.line
        t = self.next_trid()
        self.send(f"QRY {t} {CHALLENGE_ID} 32", md5_hex(chl.words[2] + CHALLENGE_KEY).encode())
        self.expect(f"QRY {t}")


#: Ports free_port() has handed out in this process: the kernel may offer a port again as soon as
#: its probe socket closes, and two listeners of one server given the same port fail to start.
_handed_out: set[int] = set()


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on, never one this process was given before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _bin(name: str) -> str:
    """A console script installed next to this interpreter (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


class ServerProcess:
    """``twistd -n msnp6`` in a subprocess on 127.0.0.1, the way an operator runs it."""

    def __init__(self, db: str | None, key_file: Path | None, workdir: Path, extra_args: Sequence[str] = (),
                 admin: bool = False, env: dict[str, str] | None = None,
                 services: Sequence[str] = ("ds", "ns", "sb"), web: bool = False) -> None:
        """``db``/``key_file`` None: leave them out, so the server uses its defaults. ``admin``:
        also serve the admin HTTP port (``ports["admin"]``), with a token of its own in
        ``admin_token_file`` (``admin_token``). ``env``: added to the environment. ``services``:
        the listeners it has (pass the matching ``--roles`` in ``extra_args``). ``web``: also serve
        the web side (``ports["web"]``, passed as --web)."""
        self.db = db
        self.key_file = key_file
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.ports = {name: free_port() for name in services}
        if admin:
            self.ports["admin"] = free_port()  # command() passes it as --admin
        if web:
            self.ports["web"] = free_port()
        self.admin_token = secrets.token_urlsafe(24) if admin else None
        self.admin_token_file = workdir / "admin-token"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = workdir / "msnp6.log"
        #: The process's stdout and stderr: a file, not a pipe nobody drains (and JSON logs go here).
        self.out_file = workdir / "msnp6.out"

    def command(self) -> list[str]:
        return [
            _bin("twistd"), "-n", "--pidfile=", f"--logfile={self.log_file}", "msnp6",
            *(["--db", self.db] if self.db else []),
            *(["--key-file", str(self.key_file)] if self.key_file else []),
            "--public-host", "127.0.0.1",
            *(f"--{name}=tcp:{port}:interface=127.0.0.1" for name, port in self.ports.items()),
            *([f"--admin-token-file={self.admin_token_file}"] if self.admin_token else []),
            *self.extra_args,
        ]

    def start(self, timeout: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.admin_token:
            self.admin_token_file.write_text(self.admin_token + "\n")
            self.admin_token_file.chmod(0o600)
        with open(self.out_file, "ab") as out:
            self.proc = subprocess.Popen(self.command(), cwd=self.workdir, env={**os.environ, **self.env},
                                         stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_listening(self.proc, self.ports.values(), timeout, lambda: f"{self.output()}\n{self.log()}")
        except TimeoutError:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def output(self) -> str:
        return self.out_file.read_text() if self.out_file.exists() else ""

    def json_records(self) -> list[dict[str, Any]]:
        """The JSON log records (``--log-format json``) written so far: complete lines only,
        since the server may be halfway through writing the last one."""
        text = self.output()
        return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line.startswith("{")]

    def client(self, service: str = "ns") -> MsnpClient:
        return MsnpClient("127.0.0.1", self.ports[service])

    @property
    def sb_ports(self) -> set[int]:
        """Where XFR SB may send a client."""
        return {self.ports["sb"]}


class TwoNodeServer(ServerProcess):
    """Two nodes in one process (msnp6.testing_nodes) with the same API as ServerProcess:
    ``ports`` are node a's (DS, NS, SB), ``second`` node b's; ``client("ns")`` alternates between
    the two nodes' notification servers, so the users of a test land on different nodes."""

    def __init__(self, db: str | None, key_file: Path | None, workdir: Path, extra_args: Sequence[str] = (),
                 admin: bool = False, env: dict[str, str] | None = None, web: bool = False) -> None:
        super().__init__(db, key_file, workdir, extra_args, admin, env, web=web)
        self.second = {"ns": free_port(), "sb": free_port()}
        self._turn = 0

    @property
    def sb_ports(self) -> set[int]:
        return {self.ports["sb"], self.second["sb"]}

    def first_client_on_a(self) -> None:
        """The next ``client("ns")`` goes to node a again (each test starts the same way)."""
        self._turn = 0

    def command(self) -> list[str]:
        from . import testing_nodes

        tac = self.workdir / "two_nodes.tac"
        tac.write_text(testing_nodes.TAC)
        node_a = super().command()[super().command().index("msnp6") + 1:]
        self.env[testing_nodes.OPTIONS_VARIABLE] = json.dumps(node_a)
        self.env[testing_nodes.SECOND_NODE_VARIABLE] = json.dumps(
            {name: f"tcp:{port}:interface=127.0.0.1" for name, port in self.second.items()})
        return [_bin("twistd"), "-n", "--pidfile=", f"--logfile={self.log_file}", "-y", str(tac)]

    def start(self, timeout: float = 20.0) -> None:
        super().start(timeout)
        wait_until_listening(self.proc, self.second.values(), timeout,  # type: ignore[arg-type]
                             lambda: f"{self.output()}\n{self.log()}")

    def client(self, service: str = "ns") -> MsnpClient:
        if service != "ns":
            return super().client(service)
        self._turn += 1
        port = self.ports["ns"] if self._turn % 2 else self.second["ns"]
        return MsnpClient("127.0.0.1", port)


def accepts(port: int) -> bool:
    """Something listens on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_until_listening(proc: "subprocess.Popen[bytes]", ports: Iterable[int], timeout: float,
                         describe: Callable[[], str]) -> None:
    """Wait for a server process to listen on every port. RuntimeError if it exits first,
    TimeoutError (a RuntimeError too) if it takes longer than ``timeout``; ``describe`` gives the
    log to show."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"msnp6 exited with {proc.returncode}:\n{describe()}")
        if all(accepts(p) for p in ports):
            return
        time.sleep(0.05)
    raise TimeoutError(f"msnp6 did not start listening within {timeout:g} s:\n{describe()}")


def run_admin(args: Sequence[str], db: str, key_file: Path, stdin: str = "",
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``msnp6-admin --db db --key-file key_file *args``; ``env`` is added to the environment."""
    return subprocess.run(
        [_bin("msnp6-admin"), "--db", db, "--key-file", str(key_file), *args],
        input=stdin, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


#: The real store code, run on the calling thread: for StringTransport/Clock unit tests.
ImmediateStore = DirectStore


class ClockStore(Store):
    """The real store code, run on the calling thread, but each result (or failure) is handed back
    only when the test's Clock reaches ``delay`` seconds after the call (0: one ``advance(0)``).
    The deadline (``timeout``) runs on that Clock too, so deadline tests are deterministic.

    ``delays`` overrides ``delay`` per operation (a StoreCore method name); ``stall()`` makes calls
    never answer: they are not run at all, like a database stuck before it got to them.
    """

    def __init__(self, engine: Any, clock: Any, timeout: float | None = 5.0, delay: float = 0.0) -> None:
        super().__init__(engine, reactor=clock, threads=1, timeout=timeout)
        self.clock = clock
        self.delay = delay
        self.delays: dict[str, float] = {}
        self.stalled: set[str] = set()
        self.stall_all = False
        #: Operations in the order they were asked.
        self.asked: list[str] = []

    def stall(self, *operations: str) -> None:
        """From now on these operations (every one when none is named) never answer."""
        if operations:
            self.stalled.update(operations)
        else:
            self.stall_all = True

    def resume(self) -> None:
        self.stalled.clear()
        self.stall_all = False

    def start(self) -> None:
        pass

    def _submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> "Deferred[Any]":
        operation = getattr(fn, "__name__", "?")
        self.asked.append(operation)
        if self.stall_all or operation in self.stalled:
            return Deferred()  # cancelled at the deadline, as a stuck thread's would be
        try:
            result: Any = fn(*args, **kwargs)
        except Exception:
            result = Failure()
        # Cancelled at the deadline: the delivery comes off the clock, nothing arrives late.
        d: Deferred[Any] = Deferred(lambda _: delivery.cancel())
        delivery = self.clock.callLater(self.delays.get(operation, self.delay), _deliver, d, result)
        return d


def _deliver(d: "Deferred[Any]", result: Any) -> None:
    if isinstance(result, Failure):
        d.errback(result)
    else:
        d.callback(result)


def unit_realm(folder: Path, accounts: dict[str, str], password: str = "pw",
               store_factory: Callable[..., Store] | None = None, windows: Any = None, **config: Any) -> Any:
    """A Realm for StringTransport/Clock tests: a real SQLite store run on the calling thread,
    output flushed at once, a Clock at a realistic time, and ``accounts`` (handle -> name).

    ``store_factory``, e.g. ``ClockStore``: called as ``(engine, clock, timeout=store_timeout)``
    instead of the default ImmediateStore (answers at once, no deadline). ``windows``: the rate
    limits' counters (default: the realm's own, in memory)."""
    from twisted.internet.task import Clock

    from .auth import CredentialKey
    from .core.realm import Config, Realm
    from .framing import ImmediateOutput
    from .store.schema import open_database

    clock = Clock()
    clock.advance(1_700_000_000)
    key = CredentialKey.load(folder / "key", create=True)
    engine = open_database(f"sqlite:///{folder / 'db.sqlite3'}")
    settings = Config(**config)
    store = ImmediateStore(engine) if store_factory is None else store_factory(engine, clock, timeout=settings.store_timeout)
    for handle, name in accounts.items():
        store.core.create_account(handle, name, key.seal(handle, password))
    realm = Realm(settings, clock, store, key, windows=windows)
    realm.ports.update(ds=1863, ns=1864, sb=1865)
    realm.output = ImmediateOutput(clock)  # a reply can be read right after the input that caused it
    return realm


def connect(protocol: Any) -> Any:
    """Connect a protocol to a fresh StringTransport and return the transport."""
    from twisted.internet.testing import StringTransport

    transport = StringTransport()
    protocol.makeConnection(transport)
    return transport


def send_login(realm: Any, handle: str, password: str = "pw", version: str = "MSNP6") -> tuple[Any, Any]:
    """A NotificationProtocol on a StringTransport that has sent VER, INF, USR I and (with the
    salt it got) ``USR 4 MD5 S``; what answers it depends on the realm's store. Returns the
    protocol and its transport, with the replies so far taken."""
    from .notification import NotificationProtocol

    ns = NotificationProtocol(realm)
    t = connect(ns)
    ns.dataReceived(f"VER 1 {version} CVR0\r\nINF 2\r\nUSR 3 MD5 I {handle}\r\n".encode())
    salt = take_lines(t)[2].split()[4]
    ns.dataReceived(f"USR 4 MD5 S {md5_hex(salt + password)}\r\n".encode())
    return ns, t


def take_lines(transport: Any) -> list[str]:
    """The complete lines written so far (then forgotten)."""
    out = transport.value().decode().split("\r\n")[:-1]
    transport.clear()
    return out


def threaded_clock() -> Any:
    """A Clock that also takes calls from other threads (``callFromThread``), run one at a time
    when the test calls ``pump_one()``: for the thread-pool store under a test clock."""
    import queue

    from twisted.internet.task import Clock

    class ThreadedClock(Clock):
        def __init__(self) -> None:
            super().__init__()
            self.from_threads: queue.Queue[tuple[Any, tuple[Any, ...]]] = queue.Queue()

        def callFromThread(self, f: Any, *args: Any) -> None:
            self.from_threads.put((f, args))

        def pump_one(self) -> None:
            f, args = self.from_threads.get(timeout=30)
            f(*args)

    return ThreadedClock()


class RedisServerProcess:
    """A private ``redis-server`` on a free port of 127.0.0.1, in-memory only (no RDB, no AOF),
    working in ``workdir``: tests may flush, stop and restart it without touching a shared Redis."""

    def __init__(self, workdir: Path, binary: str = "redis-server") -> None:
        self.workdir = workdir
        self.binary = shutil.which(binary) or binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or start again, on the same port) and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        output = open(self.workdir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=output, stderr=subprocess.STDOUT)
        output.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: see {self.workdir / 'redis.log'}")
            if self.ping():
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server did not answer within {timeout:g} s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def restart(self) -> None:
        """Stop, then start again on the same port (a Redis restart, as clients see it)."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class ReactorPump:
    """The global reactor, pumped by the test on its own thread (``reactor.iterate``; it is never
    ``run``): for tests of code that must use the global reactor (txredisapi schedules on it).
    One thread, so the code under test and the test never race; nothing else in the test process
    uses the global reactor (servers under test are subprocesses)."""

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor

    def start(self) -> None:
        """Start the reactor's thread pool, as ``run`` would: host names are resolved in it
        (txredisapi connects through HostnameEndpoint). Its results come back by
        ``callFromThread``, which pumping runs."""
        pool = self.reactor.getThreadPool()
        if not pool.started:
            pool.start()

    def stop(self) -> None:
        """Stop the thread pool (its threads would keep the process from exiting)."""
        self.reactor.getThreadPool().stop()

    def until(self, done: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        """Pump until ``done()``; AssertionError naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.reactor.iterate(0.01)

    def call(self, f: Callable[..., Any], *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
        """``f(*args, **kwargs)``; its result (a Deferred's result once it fires, the reactor
        pumped meanwhile), or its exception raised here."""
        from twisted.internet.defer import maybeDeferred

        results: list[Any] = []
        maybeDeferred(f, *args, **kwargs).addBoth(results.append)
        try:
            self.until(lambda: bool(results), f"{f!r}", timeout)
        except AssertionError:
            raise TimeoutError(f"{f!r} gave no result within {timeout:g} s") from None
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass with the reactor running (timers, network)."""
        deadline = time.monotonic() + seconds
        self.until(lambda: time.monotonic() >= deadline, "the time to pass", seconds + 1)
