"""``twistd msnp6``: options and the service tree (store, DS, NS and SB listeners)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet import endpoints
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python import usage

from .auth import CredentialKey, CredentialKeyError
from .core.realm import Config, Realm
from .dispatch import DispatchProtocol
from .framing import RealmFactory
from .notification import NotificationProtocol
from .paths import default_db_url, default_key_file
from .store.schema import SchemaNotAtHead, open_database
from .store.store import Store
from .switchboard import SwitchboardProtocol

log = Logger()

DEFAULT_PORTS = {"ds": 1863, "ns": 1864, "sb": 1865}


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "An MSN Messenger (MSNP6) server: dispatch, notification and switchboard."
    optParameters = [
        ["db", None, None, "Database URL [default: $MSNP6_DB, else an SQLite file in the data dir]"],
        ["key-file", None, None, "Credential key file [default: $MSNP6_KEY_FILE, else in the data dir]"],
        ["ds", None, f"tcp:{DEFAULT_PORTS['ds']}", "Dispatch server endpoint (strports)"],
        ["ns", None, f"tcp:{DEFAULT_PORTS['ns']}", "Notification server endpoint (strports)"],
        ["sb", None, f"tcp:{DEFAULT_PORTS['sb']}", "Switchboard endpoint (strports)"],
        ["public-host", None, "127.0.0.1", "Host put into XFR/RNG replies, with each listener's port"],
        ["web-base-url", None, "", "Base of web links handed out (URL, CVR) [default: http://PUBLIC-HOST/]"],
        ["login-timeout", None, 60.0, "Seconds a connection may take to log in", float],
        ["challenge-timeout", None, 50.0, "Seconds a client has to answer CHL", float],
    ]
    optFlags = [["trace", None, "Log every protocol line (passwords and answers are never logged)"]]

    def postOptions(self) -> None:
        if not self["db"]:
            self["db"] = default_db_url()
        self["key-file"] = self["key-file"] or str(default_key_file())


def with_backlog(description: str, backlog: int = 1024) -> str:
    """Twisted listens with a backlog of 50; a burst of logins overflows that (design.md 8)."""
    if description.startswith(("tcp:", "tcp6:")) and "backlog=" not in description:
        return f"{description}:backlog={backlog}"
    return description


class ListenerService(service.Service):
    """Listens on a strports endpoint and records the bound port in the realm (it may be 0)."""

    def __init__(self, name: str, description: str, factory: Factory, realm: Realm, reactor: Any) -> None:
        self.name = name
        self._description = with_backlog(description)
        self._factory = factory
        self._realm = realm
        self._reactor = reactor
        self._port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        endpoint = endpoints.serverFromString(self._reactor, self._description)
        endpoint.listen(self._factory).addCallbacks(self._listening, self._failed)

    def _listening(self, port: IListeningPort) -> None:
        self._port = port
        self._realm.ports[self.name] = port.getHost().port  # type: ignore[attr-defined]
        log.info("msnp6 {name} listening on {host}", name=self.name, host=port.getHost())

    def _failed(self, failure: Any) -> None:
        log.failure("msnp6 {name} cannot listen on {desc}", failure, name=self.name, desc=self._description)
        self._reactor.stop()

    def stopService(self) -> Any:
        super().stopService()
        if self._port is not None:
            return self._port.stopListening()
        return None


class StoreService(service.Service):
    def __init__(self, store: Store) -> None:
        self.store = store

    def startService(self) -> None:
        super().startService()
        self.store.start()

    def stopService(self) -> None:
        super().stopService()
        self.store.stop()


def make_realm(options: Options, reactor: Any) -> Realm:
    try:
        engine = open_database(options["db"])
        key = CredentialKey.load(Path(options["key-file"]), create=True)
    except (SchemaNotAtHead, CredentialKeyError) as e:
        print(f"msnp6: {e}", file=sys.stderr)
        raise SystemExit(2)
    config = Config(
        public_host=options["public-host"],
        login_timeout=options["login-timeout"],
        challenge_timeout=options["challenge-timeout"],
        trace=bool(options["trace"]),
        web_base_url=options["web-base-url"],
    )
    return Realm(config, reactor, Store(engine, reactor), key)


def makeService(options: Options) -> service.MultiService:
    from twisted.internet import reactor

    realm = make_realm(options, reactor)
    top = service.MultiService()
    # Children stop in reverse order: listeners first, the store last.
    StoreService(realm.store).setServiceParent(top)
    for name, protocol_class in (("ds", DispatchProtocol), ("ns", NotificationProtocol), ("sb", SwitchboardProtocol)):
        ListenerService(name, options[name], RealmFactory(protocol_class, realm), realm, reactor).setServiceParent(top)
    return top
