"""The Realm bundles what connections share: configuration, clock, store, key, registries."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from ..auth import CredentialKey, CredentialKeyring
from ..bus.interface import Bus
from ..bus.memory import MemoryBus
from ..directory.interface import Directory
from ..directory.memory import MemoryDirectory
from ..framing import OutputFlusher
from ..keyring import KeyringRefresh
from ..mail.settings import MailSettings
from ..services import AccountService, ListService, Services
from .chats import ChatRegistry
from .last_login import LastLogins
from .limits import Limits
from .node import LocalNode
from .ratelimit import Refusals
from .tickets import LocalSessionTickets, SessionTickets, TicketBook
from .windows import MemoryWindows, Windows

#: ``--signup``: who may make an account on the web side (``/signup``).
SIGNUP_MODES = ("open", "invite", "off")


@attrs.define
class Config:
    #: Host name or address put into XFR/RNG replies, with each listener's port.
    public_host: str = "127.0.0.1"
    #: Seconds a connection may take to log in (0: forever).
    login_timeout: float = 60.0
    #: Log every protocol line (secrets redacted).
    trace: bool = False
    #: Seconds after the first CHG before the CHL challenge goes out.
    challenge_delay: float = 1.0
    #: Seconds a client has to answer CHL with a valid QRY.
    challenge_timeout: float = 50.0
    #: Every operator-tunable limit (login attempts, rates, caps, list sizes): see core/limits.py.
    limits: Limits = attrs.field(factory=Limits)
    #: Seconds without a message before a switchboard session is closed with ``BYE handle 1``.
    sb_idle_timeout: float = 1800.0
    #: Base of the web links the server hands out (CVR download page, URL services).
    web_base_url: str = ""
    #: Seconds a session waits for a missing list version (an event still on its way) before it
    #: reloads its lists from SQL.
    gap_timeout: float = 2.0
    #: Seconds a database call may take: past it a command is answered 500 (a login 915, 601
    #: before MSNP6) and the database gives up the statement too (0: no deadline).
    store_timeout: float = 5.0
    #: The web listener's bound port (``--web``), once it listens: without a base URL, links
    #: point at it on the public host.
    web_port: int | None = None
    #: ``--signup``: open (anyone), invite (with a code from ``msnp6-admin invite create``) or off.
    signup: str = "off"
    #: Where the web side's mails go (``--smtp-relay``, ``--mail-from``); None: e-mail is off.
    mail: MailSettings | None = None

    def web_base(self) -> str:
        if self.web_base_url:
            return self.web_base_url
        return f"http://{self.public_host}:{self.web_port}/" if self.web_port else f"http://{self.public_host}/"

    def web_url(self, path: str = "") -> str:
        base = self.web_base()
        return base.rstrip("/") + "/" + path.lstrip("/")


class Realm:
    """One node: its listeners' shared state. ``bus`` and ``directory`` are what it shares with
    other nodes (in one process, the in-memory ones; two realms given the same pair form a
    two-node cluster), and so are the rate-limit ``windows`` (default: this node's own)."""

    def __init__(self, config: Config, clock: Any, store: Any, key: CredentialKey | CredentialKeyring, bus: Bus | None = None,
                 directory: Directory | None = None, node_name: str = "n1", windows: Windows | None = None) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        #: Unseals credentials with whichever key sealed them, seals with the newest (a rotation's).
        self.key = CredentialKeyring([key]) if isinstance(key, CredentialKey) else key
        #: Teaches ``key`` a rotation's keys; the service tree shares one between its realms.
        self.keys = KeyringRefresh(self.key, store, clock)
        self.bus: Bus = bus if bus is not None else MemoryBus()
        self.directory: Directory = directory if directory is not None else MemoryDirectory()
        self.node = LocalNode(node_name, self.bus)
        self.services = Services(ListService(store, self.bus, config), AccountService(store, self.bus, self.key))
        #: Each login's time, written to SQL in batches (a service: flushed at shutdown too).
        self.last_logins = LastLogins(store, clock)
        self.output: OutputFlusher = OutputFlusher(clock)
        self.tickets = TicketBook(clock)
        #: XFR SB's cookies: this node's book in one process, Redis in a cluster (any node redeems).
        self.session_tickets: SessionTickets = LocalSessionTickets(self.tickets, config.limits["cookies-user"].count)
        self.chats: ChatRegistry[Any] = ChatRegistry()
        limits = config.limits
        #: The rate limits and login failures: this node's own counters, or the cluster's.
        self.windows: Windows = windows if windows is not None else MemoryWindows(clock, limits)
        #: Refusals by limit name, for metrics; each logged once per offender per window.
        self.refusals = Refusals(clock, limits)
        #: Open connections per client address, and connections not logged in yet (this node).
        self.per_address: Counter[str] = Counter()
        self.prelogin = 0
        self.connections: dict[str, set[Any]] = {"ds": set(), "ns": set(), "sb": set()}
        self.errors_sent: Counter[int] = Counter()
        #: Named event counts (login_ok, login_failed, messages_relayed, ...) for metrics.
        self.events: Counter[str] = Counter()
        # Listener ports, filled in when each listener starts (they may be ephemeral).
        self.ports: dict[str, int] = {}
        #: Where the DS sends a login (``host:port``), and where XFR SB sends a caller; None when
        #: no node serves it. One process: its own listeners; a cluster: the live nodes' picture.
        self.ns_picker: Callable[[str], str | None] = lambda handle: self.address("ns")
        self.sb_picker: Callable[[], str | None] = lambda: self.address("sb")
        #: Why this node cannot serve its share of a cluster right now (the bus is down), or None.
        self.cluster_problem: Callable[[], str | None] = lambda: None
        #: Set when a graceful shutdown begins: /readyz answers 503 and logins get 916 (MSNP6) / 604.
        self.draining = False

    def address(self, service: str) -> str:
        return f"{self.config.public_host}:{self.ports[service]}"

    def limited(self, name: str, offender: str) -> None:
        """A limit refused something: count it (metrics) and log it once per offender per window."""
        self.refusals.refused(name, offender, self.config.limits[name])

    def admit(self, host: str) -> bool:
        """May a new connection from ``host`` open? No once the address holds ``connections-address``
        connections or the node ``prelogin-total`` connections not logged in yet."""
        limits = self.config.limits
        if self.per_address[host] >= limits["connections-address"].count:
            self.limited("connections-address", host)
            return False
        if self.prelogin >= limits["prelogin-total"].count:
            self.limited("prelogin-total", host)
            return False
        return True

    def connection_opened(self, conn: Any) -> None:
        self.connections[conn.service].add(conn)
        self.per_address[conn.host] += 1
        self.prelogin += 1

    def login_finished(self, conn: Any) -> None:
        """The connection logged in, or is closing before it did: it no longer counts as pre-login."""
        self.prelogin -= 1

    def connection_closed(self, conn: Any) -> None:
        self.connections[conn.service].discard(conn)
        left = self.per_address[conn.host] - 1
        if left > 0:
            self.per_address[conn.host] = left
        else:
            del self.per_address[conn.host]

    def error_sent(self, conn: Any, code: int) -> None:
        self.errors_sent[code] += 1

    def count(self, event: str, n: int = 1) -> None:
        self.events[event] += n
