"""Startup: every listener binds, or the process exits non-zero with one clear line; once all are
bound, one summary line of what the server runs with (and a warning for an advertised loopback
host that remote clients cannot reach)."""
from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any, NoReturn

import attrs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, FirstError
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

#: The exit status when a listener cannot bind (2 is a refused configuration: bad options,
#: a schema not at head, an unreadable key).
CANNOT_LISTEN = 1

#: Listeners whose address goes to clients in XFR/RNG replies, with --public-host.
CLIENT_LISTENERS = frozenset({"ds", "ns", "sb"})

ALL_INTERFACES = frozenset({"0.0.0.0", "::", ""})


@attrs.frozen
class Settings:
    """What the summary line reports besides the listeners (never a secret)."""

    database: str
    key_file: str
    public_host: str
    admin_token: str | None  # where the admin token is read; None when there is no admin port


def without_password(url: str) -> str:
    """The database URL with its password (in the user info or the query) masked."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(a database URL that does not parse)"
    masked = {k: ("***" if "password" in k.lower() else v) for k, v in parsed.query.items()}
    return parsed.set(query=masked).render_as_string(hide_password=True)


def is_loopback_host(host: str) -> bool:
    """A name or address only this machine reaches (by its form; nothing is resolved)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _address(port: IListeningPort) -> tuple[str, str]:
    """(host, printable address) of a bound port."""
    bound = port.getHost()
    host = getattr(bound, "host", None)
    number = getattr(bound, "port", None)
    if host is None or number is None:
        return "", str(bound)
    return host, f"[{host}]:{number}" if ":" in host else f"{host}:{number}"


def _reason(failure: Failure) -> str:
    error = failure.value
    if isinstance(error, CannotListenError) and isinstance(error.socketError, OSError):
        return error.socketError.strerror or str(error.socketError)
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class Startup(service.Service):
    """The last child of the service tree. Each listener hands over its ``listen()`` Deferred;
    ``ready`` turns true when every one is bound. The first one that fails stops the process
    with exit status 1: a server missing one of its ports would keep sending clients to it."""

    name = "startup"

    def __init__(self, reactor: Any, settings: Settings) -> None:
        self._reactor = reactor
        self.settings = settings
        self._listeners: list[tuple[str, str, Deferred[IListeningPort]]] = []
        self.ready = False

    def expect(self, label: str, description: str, listening: "Deferred[IListeningPort]") -> None:
        """``listening`` fires with the bound port, or fails with the reason it cannot be."""
        self._listeners.append((label, description, listening))

    def startService(self) -> None:
        super().startService()
        every = DeferredList([d for _, _, d in self._listeners], fireOnOneErrback=True, consumeErrors=True)
        every.addCallbacks(self._bound, self._failed)

    def _bound(self, results: list[tuple[bool, IListeningPort]]) -> None:
        addresses = [(label, *_address(port)) for (label, _, _), (_, port) in zip(self._listeners, results, strict=True)]
        s = self.settings
        log.info(
            "msnp6 running: database {database}, key file {key_file}, listeners {listeners}, "
            "public host {public_host}, {admin}",
            database=without_password(s.database), key_file=s.key_file,
            listeners=", ".join(f"{label} {shown}" for label, _, shown in addresses),
            public_host=s.public_host,
            admin=f"admin token in {s.admin_token}" if s.admin_token else "no admin port")
        exposed = [label for label, host, _ in addresses
                   if label.rpartition("/")[2] in CLIENT_LISTENERS and host in ALL_INTERFACES]
        if exposed and is_loopback_host(s.public_host):
            log.warn(
                "msnp6 listens on all interfaces ({listeners}) but advertises the loopback host "
                "{public_host}: remote clients are sent to their own machine. Set --public-host "
                "(MSNP6_PUBLIC_HOST) to the name or address clients reach.",
                listeners=", ".join(exposed), public_host=s.public_host)
        self.ready = True

    def _failed(self, failure: Failure) -> None:
        first = failure.value
        assert isinstance(first, FirstError)
        label, description, _ = self._listeners[first.index]
        log.error("msnp6 cannot start: the {label} listener cannot listen on {description}: {reason}",
                  label=label, description=description, reason=_reason(first.subFailure))
        self._reactor.callWhenRunning(self._exit)

    def _exit(self) -> None:
        # twistd exits 0 whenever the reactor stops; the services stop first (before-shutdown).
        self._reactor.addSystemEventTrigger("after", "shutdown", exit_now, CANNOT_LISTEN)
        self._reactor.stop()


def exit_now(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
