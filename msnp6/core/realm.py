"""The Realm bundles what connections share: configuration, clock, store, key, registries."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from ..auth import CredentialKey
from ..bus.interface import Bus
from ..bus.memory import MemoryBus
from ..directory.interface import Directory
from ..directory.memory import MemoryDirectory
from ..framing import OutputFlusher
from ..services import AccountService, ListService, Services
from .chats import ChatRegistry
from .node import LocalNode
from .ratelimit import WindowCounter
from .tickets import TicketBook


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
    #: Failed MD5 logins allowed per account, and per client address (higher: NAT and shared
    #: hosts put many people behind one address), within ``failure_window`` seconds.
    failure_limit: int = 10
    address_failure_limit: int = 100
    failure_window: float = 300.0
    #: Most entries per list (notification.md 1.3: FL was 150 in 2003, 600 by 2005; AL and
    #: BL must hold everyone who adds you when GTC is N).
    list_limits: dict[str, int] = attrs.field(factory=lambda: {"FL": 600, "AL": 1000, "BL": 1000})
    #: Own renames allowed per ``rename_window`` seconds before 800.
    rename_limit: int = 5
    rename_window: float = 30.0
    #: Switchboard CALs allowed per ``call_window`` seconds before 713 (calling too rapidly).
    call_limit: int = 20
    call_window: float = 10.0
    #: E-mail invitations (SND/SDC) per hour, and mobile pages per minute, before 800.
    invitation_limit: int = 20
    page_limit: int = 10
    #: Most people in one switchboard session (the reference knows no hard limit; "used to be five").
    sb_max_participants: int = 20
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

    def web_url(self, path: str = "") -> str:
        base = self.web_base_url or f"http://{self.public_host}/"
        return base.rstrip("/") + "/" + path.lstrip("/")


class Realm:
    """One node: its listeners' shared state. ``bus`` and ``directory`` are what it shares with
    other nodes (in one process, the in-memory ones; two realms given the same pair form a
    two-node cluster)."""

    def __init__(self, config: Config, clock: Any, store: Any, key: CredentialKey, bus: Bus | None = None,
                 directory: Directory | None = None, node_name: str = "n1") -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.key = key
        self.bus: Bus = bus if bus is not None else MemoryBus()
        self.directory: Directory = directory if directory is not None else MemoryDirectory()
        self.node = LocalNode(node_name, self.bus)
        self.services = Services(ListService(store, self.bus, config), AccountService(store, self.bus, key))
        self.output: OutputFlusher = OutputFlusher(clock)
        self.tickets = TicketBook(clock)
        self.chats: ChatRegistry[Any] = ChatRegistry()
        self.account_failures = WindowCounter(clock, config.failure_limit, config.failure_window)
        self.address_failures = WindowCounter(clock, config.address_failure_limit, config.failure_window)
        self.renames = WindowCounter(clock, config.rename_limit, config.rename_window)
        self.calls = WindowCounter(clock, config.call_limit, config.call_window)
        self.invitations = WindowCounter(clock, config.invitation_limit, 3600.0)
        self.pages = WindowCounter(clock, config.page_limit, 60.0)
        self.connections: dict[str, set[Any]] = {"ds": set(), "ns": set(), "sb": set()}
        self.errors_sent: Counter[int] = Counter()
        #: Named event counts (login_ok, login_failed, messages_relayed, ...) for metrics.
        self.events: Counter[str] = Counter()
        # Listener ports, filled in when each listener starts (they may be ephemeral).
        self.ports: dict[str, int] = {}
        self.ns_picker: Callable[[str], str] = lambda handle: self.address("ns")
        #: Set when a graceful shutdown begins: /readyz answers 503 and logins get 916 (MSNP6) / 604.
        self.draining = False

    def address(self, service: str) -> str:
        return f"{self.config.public_host}:{self.ports[service]}"

    def connection_opened(self, conn: Any) -> None:
        self.connections[conn.service].add(conn)

    def connection_closed(self, conn: Any) -> None:
        self.connections[conn.service].discard(conn)

    def error_sent(self, conn: Any, code: int) -> None:
        self.errors_sent[code] += 1

    def count(self, event: str, n: int = 1) -> None:
        self.events[event] += n
