"""MsnpConnection: the one Twisted Protocol base for DS, NS and SB connections.

Input is framed by Twisted's LineReceiver: command lines in line mode, the byte-counted payload
of a payload command in raw mode. One command runs at a time: a handler that returns a Deferred
pauses the receiver (and reading) until it fires, so replies keep request order. Handler
exceptions become protocol answers. Output is queued per reactor turn (OutputFlusher) and
handed to the transport in one piece; the login deadline is enforced here too.
"""
from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPullProducer, ISystemHandle
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from .store.faults import outage_reason
from .store.store import StoreTimeout
from .wire import trace
from .wire.errors import Disconnect, ErrorCode, FramingError, ProtocolError
from .wire.lines import Command, format_error, format_line, format_payload, has_raw_control, parse
from .wire.payload import DEFAULT_MAX_LINE, declared_length

Handler = Callable[[Any, Command], "Deferred[Any] | None"]

_connection_ids = itertools.count(1)

#: A client that leaves this much of our output unread is dropped: it would otherwise make the
#: server buffer without bound (a stalled watcher under presence fan-out, a PNG flood).
#: Stop reading a socket whose unhandled input grows past this while a command waits.
READ_PAUSE_BYTES = 64 * 1024
MAX_UNSENT_BYTES = 1024 * 1024


@implementer(IPullProducer)
class _DrainWatch:
    """Registered on the transport as a pull producer only to hear when its write buffer is empty.

    Twisted's FileDescriptor calls a pull producer's ``resumeProducing`` on registration and each
    time it has written out everything it held. It writes whenever it likes (FileDescriptor just
    buffers); the calls only reset the connection's count of bytes Twisted may still hold.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: "MsnpConnection") -> None:
        self.conn = conn

    def resumeProducing(self) -> None:
        conn = self.conn
        conn._unsent = 0
        transport: Any = conn.transport
        if transport.disconnecting:
            # loseConnection was called without close(): while registered, this producer would
            # be asked for more data here instead of the connection closing.
            transport.unregisterProducer()

    def stopProducing(self) -> None:
        pass


class MsnpConnection(LineReceiver):
    # CPython shares the keys of instance dicts, up to 30 names per class and only for names
    # an instance gets while few instances exist; any other name gives every connection its
    # own ~0.8 KiB dict (the idle-session memory target notices). So the base keeps its state in
    # slots, and __init__ creates LineReceiver's attributes up front.
    __slots__ = (
        "_bad_input_logged",
        "_busy",
        "_deadline",
        "_head",
        "_held_input",
        "_need",
        "_out",
        "_parts",
        "_prelogin",
        "_reading_stopped",
        "_sock",
        "_unsent",
        "closing",
        "conn_id",
        "host",
        "peer",
        "realm",
    )

    service: ClassVar[str] = "?"
    payload_commands: ClassVar[frozenset[str]] = frozenset()
    max_payload: ClassVar[int] = 8192
    log = Logger()

    delimiter = b"\n"  # a CR before it is optional: Gaim 2001 sent bare LF (parse strips the CR)
    MAX_LENGTH = DEFAULT_MAX_LINE

    def __init__(self, realm: Any) -> None:
        self.realm = realm
        self.conn_id = 0
        self.peer = "?"
        self.host = "?"
        self.closing = False
        #: Counted in the realm's pre-login connections (from connectionMade until the login or
        #: the close).
        self._prelogin = False
        self._busy = False
        self._bad_input_logged = False
        self._deadline: IDelayedCall | None = None
        self._out: list[bytes] = []
        #: The header of a payload command whose payload is being read, the bytes still due, and
        #: the parts read so far.
        self._head: Command | None = None
        self._need = 0
        self._parts: list[bytes] = []
        #: The transport's socket, when it is a plain socket transport (see connectionMade).
        self._sock: socket.socket | None = None
        #: Bytes handed to transport.write since its buffer was last known empty; None while the
        #: transport has not said (other transports never do): then no cap and no direct send.
        self._unsent: int | None = None
        #: Bytes received while a command waits, and whether the socket is no longer read.
        self._held_input = 0
        self._reading_stopped = False
        # LineReceiver's state, which it would otherwise create on first use (see __slots__).
        self.clearLineBuffer()
        self.setLineMode()
        self.paused = False
        LineReceiver.dataReceived(self, b"")  # nothing to parse, no transport needed

    # -- subclass hooks ----------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """The handler table for the connection's current state (every service defines its own)."""
        return {}

    @property
    def authenticated(self) -> bool:
        """Past its login. Before that, a failure the protocol has no answer for closes the
        connection: a half-done login must not go on."""
        return False

    def unknown_command(self, command: Command) -> None:
        """No handler in the current state. Default: drop the connection (the real servers did)."""
        raise Disconnect(f"unexpected {command.name!r}")

    def on_connection_lost(self) -> None:
        pass

    # -- Twisted Protocol --------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.conn_id = next(_connection_ids)
        transport: Any = self.transport
        peer = transport.getPeer()
        self.host = str(getattr(peer, "host", "?"))
        self.peer = f"{self.host}:{getattr(peer, 'port', '?')}"
        set_nodelay = getattr(transport, "setTcpNoDelay", None)
        if set_nodelay is not None:
            set_nodelay(True)  # design.md section 8: Nagle + delayed ACK cost 40 ms per exchange
            # Logged-in sessions have no idle timeout (old clients ping rarely); let the kernel
            # find peers that vanished without a FIN.
            transport.setTcpKeepAlive(True)
        handle = transport.getHandle() if ISystemHandle.providedBy(transport) else None
        if isinstance(handle, socket.socket):
            # A plain socket transport (a TLS wrapper's handle is its OpenSSL connection, and it
            # would turn a pull producer into a polling loop): watch its buffer, send directly.
            self._sock = handle
            transport.registerProducer(_DrainWatch(self), False)  # calls resumeProducing: _unsent = 0
        timeout = self.realm.config.login_timeout
        if timeout:
            self._deadline = self.realm.clock.callLater(timeout, self._login_deadline_passed)
        self._prelogin = True
        self.realm.connection_opened(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._stop_input()
        self._out = []
        self._sock = None
        self.cancel_login_deadline()
        self.realm.connection_closed(self)
        self.on_connection_lost()

    # -- framing (LineReceiver) --------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.paused:
            self._held_input += len(data)
            if self._held_input > READ_PAUSE_BYTES and not self._reading_stopped and self.transport is not None:
                self._reading_stopped = True
                self.transport.pauseProducing()  # type: ignore[attr-defined]
        LineReceiver.dataReceived(self, data)

    def pauseProducing(self) -> None:
        """Hold back the next command while one waits (LineReceiver stops at ``paused``). The
        socket is still read until ``READ_PAUSE_BYTES`` pile up: stopping and restarting it around
        every database call cost 4 % of a login's server time (two epoll_ctl calls), and a client
        that hangs up meanwhile is noticed at once."""
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._held_input = 0
        if self._reading_stopped:
            self._reading_stopped = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
        self.dataReceived(b"")  # what arrived meanwhile

    def lineReceived(self, line: bytes) -> None:
        if self.closing:
            return
        if has_raw_control(line):
            # No client of the era sends one; the text after it must not be taken for arguments
            # (it would reach names and the database), so the line ends the connection.
            self._framing_failed("a control byte in a command line")
            return
        command = parse(line)
        if not command.name:
            return  # an empty line
        if command.name in self.payload_commands:
            try:
                need = declared_length(command, self.max_payload)
            except FramingError as e:
                self._framing_failed(str(e))
                return
            if need:
                self._head, self._need, self._parts = command, need, []
                self.setRawMode()
                return
            command = Command(command.name, command.trid, command.args, b"")
        self._dispatch(command)

    def rawDataReceived(self, data: bytes) -> None:
        if self.closing or self._head is None:
            return
        need = self._need
        if len(data) < need:
            self._parts.append(data)
            self._need = need - len(data)
            return
        head, parts = self._head, self._parts
        self._head, self._parts = None, []
        parts.append(data[:need])
        # The rest goes back to LineReceiver's buffer (we are inside its dataReceived), ahead of
        # the dispatch, so a handler that pauses or closes sees a consistent buffer.
        self.setLineMode(data[need:])
        payload = parts[0] if len(parts) == 1 else b"".join(parts)
        self._dispatch(Command(head.name, head.trid, head.args, payload))

    def lineLengthExceeded(self, line: bytes) -> None:
        self._framing_failed("line too long")

    def _framing_failed(self, why: str) -> None:
        if not self.closing:
            self.log.info("conn {conn} {service} {peer}: closing, {why}", conn=self.conn_id, service=self.service,
                          peer=self.peer, why=trace.escape(why))
            self.close()

    def log_bad_input(self, what: str) -> None:
        """Input the connection survives (answered with an error): logged once per connection,
        so a flood of it does not become a flood of log lines. ``what`` may hold client text."""
        if not self._bad_input_logged:
            self._bad_input_logged = True
            self.log.info("conn {conn} {service} {peer}: {what} (further bad input is not logged)",
                          conn=self.conn_id, service=self.service, peer=self.peer, what=trace.escape(what))

    def _stop_input(self) -> None:
        """Ignore whatever was received and not handled yet (also ends LineReceiver's loop)."""
        self.closing = True
        self.clearLineBuffer()
        self._head, self._parts = None, []

    # -- command loop ------------------------------------------------------------------------

    def _dispatch(self, command: Command) -> None:
        if self.realm.config.trace:
            self.log.info("conn {conn} {service} <- {line}", conn=self.conn_id, service=self.service,
                          line=trace.received(command))
        try:
            handler = self.handlers().get(command.name)
            if handler is None:
                self.unknown_command(command)
                return
            result = handler(self, command)
        except Exception as e:
            self._failed(command, e)
            return
        if isinstance(result, Deferred):
            self._busy = True
            result.addErrback(self._failed_deferred, command)
            result.addBoth(self._handler_done)
            if self._busy and not self.closing:
                # Hold back the next command (LineReceiver stops at self.paused) and stop reading.
                self.pauseProducing()

    def _handler_done(self, _: object) -> None:
        self._busy = False
        if self.paused and not self.closing:
            # Also re-delivers what is buffered, through dataReceived(b""); when this runs inside
            # our own dataReceived, LineReceiver just carries on with its loop.
            self.resumeProducing()

    def _failed_deferred(self, failure: Failure, command: Command) -> None:
        self._failed(command, failure.value or Exception("unknown failure"), failure)

    def _failed(self, command: Command, error: BaseException, failure: Failure | None = None) -> None:
        if isinstance(error, ProtocolError):
            self.send_error(error.code, command.trid)
            if error.close:
                self.close()
        elif isinstance(error, Disconnect):
            self.log.info(
                "conn {conn} {service} {peer}: closing after {cmd}: {why}",
                conn=self.conn_id, service=self.service, peer=self.peer, cmd=trace.escape(command.name, 16),
                why=trace.escape(error.reason),
            )
            self.close()
        elif (reason := outage_reason(error)) is not None:
            # An expected fault: one line with the reason (a StoreTimeout the store logged).
            if not isinstance(error, StoreTimeout):
                self.log.warn("conn {conn} {service}: {cmd} failed: {reason}", conn=self.conn_id,
                              service=self.service, cmd=command.name, reason=reason)
            self._internal_error(command)
        else:
            self.log.failure(
                "conn {conn} {service}: {cmd} failed", failure or Failure(error), conn=self.conn_id,
                service=self.service, cmd=trace.escape(command.name, 16),
            )
            self._internal_error(command)

    def _internal_error(self, command: Command) -> None:
        self.send_error(ErrorCode.INTERNAL_SERVER_ERROR, command.trid)
        if not self.authenticated:
            self.close()

    # -- output ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes for this connection; everything queued in one reactor turn goes out in one
        send (see OutputFlusher)."""
        if self.closing:
            return
        if self.realm.config.trace:
            for line in trace.sent(data):
                self.log.info("conn {conn} {service} -> {line}", conn=self.conn_id, service=self.service, line=line)
        self._out.append(data)
        if len(self._out) == 1:
            self.realm.output.schedule(self)

    def flush(self) -> None:
        out = self._out
        transport: Any = self.transport
        if not out or transport is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        unsent = self._unsent
        if unsent == 0 and self._sock is not None:
            # Twisted holds nothing for this socket, so sending here keeps the byte order, and it
            # skips transport.write's epoll register/unregister pair and loop pass (a third of
            # the fan-out cost). Whatever the kernel does not take goes through write as usual.
            # (Sound because the socket is plain, see connectionMade, and nothing starts TLS.)
            try:
                sent = self._sock.send(data)
            except OSError:  # EAGAIN; or a dead peer, which Twisted finds on its own send
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)
        if unsent is not None:
            self._unsent = unsent = unsent + len(data)
            if unsent > MAX_UNSENT_BYTES:
                self.log.warn("conn {conn} {service} {peer}: not reading its output; dropping it",
                              conn=self.conn_id, service=self.service, peer=self.peer)
                self._stop_input()
                transport.abortConnection()

    def send(self, name: str, trid: int | None, *args: object) -> None:
        self.write(format_line(name, trid, *args))

    def send_payload(self, name: str, head: Iterable[object], payload: bytes) -> None:
        self.write(format_payload(name, head, payload))

    def send_error(self, code: int, trid: int | None) -> None:
        self.realm.error_sent(self, code)
        self.write(format_error(code, trid))

    def close(self) -> None:
        """Flush what was written, then close. Further input is ignored."""
        if not self.closing:
            self.flush()
            self._stop_input()
            self.cancel_login_deadline()
            transport: Any = self.transport
            if self._sock is not None:
                # With a producer registered, FileDescriptor asks it for more data once the
                # buffer is written out instead of completing loseConnection.
                transport.unregisterProducer()
            transport.loseConnection()

    # -- login deadline ----------------------------------------------------------------------

    def cancel_login_deadline(self) -> None:
        """The login is done (or the connection is closing): no deadline, and no longer counted
        as a pre-login connection."""
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        if self._prelogin:
            self._prelogin = False
            self.realm.login_finished(self)

    def _login_deadline_passed(self) -> None:
        self._deadline = None
        self.log.info("conn {conn} {service} {peer}: no login in time, closing",
                      conn=self.conn_id, service=self.service, peer=self.peer)
        self.close()


class OutputFlusher:
    """Sends every connection's queued output once per reactor turn.

    One turn often writes several lines to one connection (a SYN dump, an ADD with its BPR and
    ILN lines, IRO lines) and one line to many (presence fan-out); coalescing makes that one
    send per connection, right after the turn.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._pending: list[MsnpConnection] = []
        self._call: IDelayedCall | None = None

    def schedule(self, conn: "MsnpConnection") -> None:
        self._pending.append(conn)
        if self._call is None:
            self._call = self._clock.callLater(0, self.flush)

    def flush(self) -> None:
        self._call = None
        pending, self._pending = self._pending, []
        for conn in pending:
            conn.flush()


class ImmediateOutput(OutputFlusher):
    """Flushes at once: for unit tests that read a StringTransport right after each input."""

    def schedule(self, conn: "MsnpConnection") -> None:
        conn.flush()


class RealmFactory(Factory):
    """Builds connections of one MsnpConnection subclass, all sharing the realm."""

    def __init__(self, protocol_class: type[MsnpConnection], realm: Any) -> None:
        self.protocol_class = protocol_class
        self.realm = realm

    def buildProtocol(self, addr: Any) -> MsnpConnection | None:
        # Over a connection cap (per address, or pre-login node-wide) the connection is closed at
        # once by the listener (None), before any protocol state or timer exists for it.
        if not self.realm.admit(str(getattr(addr, "host", "?"))):
            return None
        return self.protocol_class(self.realm)
