"""Graceful shutdown (SIGTERM): stop accepting, ``OUT SSD`` to every notification client, close
switchboard and dispatch connections, let the store finish its queued work, all within a bound.

twistd answers SIGTERM by stopping the reactor, which first stops the service tree and waits for
the Deferreds its ``stopService`` methods return.
"""
from __future__ import annotations

import signal
import threading
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

#: How often the drain looks whether every client connection has gone.
_POLL = 0.05


class Shutdown:
    """The time bound of one shutdown, counted from its first step. Clients get at most half of
    it to close after ``OUT SSD``; the store's queued work gets whatever remains."""

    def __init__(self, clock: Any, timeout: float) -> None:
        self.clock = clock
        self.timeout = timeout
        self.started: float | None = None

    def begin(self) -> float:
        if self.started is None:
            self.started = self.clock.seconds()
        return self.started

    def clients_deadline(self) -> float:
        return self.begin() + self.timeout / 2

    def remaining(self) -> float:
        return max(0.0, self.begin() + self.timeout - self.clock.seconds())


class SequentialService(service.MultiService):
    """Stops its children one after another, last added first, each once the previous one has
    finished (a MultiService stops them all at once, but the store must outlive the clients)."""

    def stopService(self) -> "Deferred[None]":
        service.Service.stopService(self)
        d: Deferred[None] = succeed(None)
        for child in reversed(list(self)):
            d.addCallback(self._stop_child, child)
            d.addErrback(self._child_failed, child)
        return d

    @staticmethod
    def _stop_child(_: object, child: service.IService) -> "Deferred[None]":
        return maybeDeferred(child.stopService)

    def _child_failed(self, failure: Failure, child: service.IService) -> None:
        log.failure("stopping {name} failed", failure, name=child.name)


class ClientsService(service.MultiService):
    """Parent of the DS/NS/SB listeners, and the one that says goodbye to their connections."""

    name = "clients"

    def __init__(self, realm: Any, clock: Any, shutdown: Shutdown) -> None:
        super().__init__()
        self.realm = realm
        self.clock = clock
        self.shutdown = shutdown

    def stopService(self) -> "Deferred[None]":
        self.shutdown.begin()
        self.realm.draining = True  # /readyz answers 503 from now on
        d = super().stopService()  # the listeners stop accepting
        d.addCallback(lambda _: self._goodbye())
        return d

    def _goodbye(self) -> "Deferred[None]":
        conns = self.realm.connections
        log.info(
            "msnp6 shutting down: OUT SSD to {ns} notification clients, closing {sb} switchboard "
            "and {ds} dispatch connections",
            ns=len(conns["ns"]), sb=len(conns["sb"]), ds=len(conns["ds"]),
        )
        for conn in list(conns["ns"]):
            try:
                conn.sign_out("SSD")
            except Exception:
                # One broken connection must not keep the others (or the process) alive.
                log.failure("conn {conn}: OUT SSD failed", conn=getattr(conn, "conn_id", "?"))
                conn.close()
        for name in ("sb", "ds"):
            for conn in list(conns[name]):
                conn.close()
        return self._closed(self.shutdown.clients_deadline())

    def _closed(self, deadline: float) -> "Deferred[None]":
        """Fires when every connection is gone, or at ``deadline`` after cutting off the rest
        (a client that reads nothing would otherwise hold its unsent OUT SSD forever)."""
        done: Deferred[None] = Deferred()

        def poll() -> None:
            left = [c for conns in self.realm.connections.values() for c in conns]
            if not left:
                done.callback(None)
            elif self.clock.seconds() >= deadline:
                log.warn("{n} connections did not close in time; cutting them off", n=len(left))
                for conn in left:
                    transport = conn.transport
                    abort = getattr(transport, "abortConnection", None) or transport.loseConnection
                    abort()
                done.callback(None)
            else:
                self.clock.callLater(_POLL, poll)

        poll()
        return done


def stop_store(store: Any, reactor: Any, timeout: float) -> "Deferred[None]":
    """``store.stop()`` waits for the queued work. It runs off the reactor thread (which must keep
    running to deliver those results), and the wait ends after ``timeout`` whatever happens; the
    store's threads are daemons, so a stuck database call cannot keep the process alive."""
    done: Deferred[None] = Deferred()

    def finished() -> None:
        if not done.called:
            timer.cancel()
            done.callback(None)

    def give_up() -> None:
        log.warn("the store did not finish its queued work within {timeout:g} s; exiting anyway", timeout=timeout)
        done.callback(None)

    def run() -> None:
        try:
            store.stop()
        except Exception:
            log.failure("stopping the store failed")
        finally:
            reactor.callFromThread(finished)

    timer = reactor.callLater(timeout, give_up)
    threading.Thread(target=run, name="msnp6-store-stop", daemon=True).start()
    return done


def stop_on_sigterm(reactor: Any) -> None:
    """Call once the reactor runs. twistd stops on SIGTERM but then exits *by* that signal
    (status 143); a graceful shutdown is a normal end, so stop the reactor without recording the
    signal and the exit status is 0. A second SIGTERM while stopping is ignored."""
    stopping: list[bool] = []

    def stop() -> None:
        if not stopping:
            stopping.append(True)
            reactor.stop()

    def handler(signum: int, frame: Any) -> None:
        log.info("Received SIGTERM, shutting down gracefully.")
        reactor.callFromThread(stop)

    signal.signal(signal.SIGTERM, handler)
