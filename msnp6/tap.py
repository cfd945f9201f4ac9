"""``twistd msnp6``: options and the service tree (store, admin port, DS, NS and SB listeners)."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet import endpoints
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger
from twisted.python import usage

from . import gc_tuning
from .admin_token import AdminTokenError, load_token, token_source
from .auth import CredentialKeyError, CredentialKeyring
from .cluster.connection import parse_redis_url
from .cluster.member import ROLES, ClusterMember, ClusterSettings
from .cluster.windows import RedisWindows
from .core.limits import LimitError, Limits, parse_list
from .core.realm import SIGNUP_MODES, Config, Realm
from .dispatch import DispatchProtocol
from .framing import RealmFactory
from .logs import LOGGERS
from .mail.settings import SettingError, mail_settings
from .metrics import Metrics
from .notification import NotificationProtocol
from .paths import default_db_url, default_key_file
from .refusal import REFUSED, CannotStart, Guarded, database_reason, log_format_in, refuse, refusing
from .shutdown import ClientsService, SequentialService, Shutdown, stop_on_sigterm, stop_store
from .startup import Settings, Startup
from .store.schema import SchemaNotAtHead, open_database
from .store.sealing import key_for
from .store.store import Store
from .switchboard import SwitchboardProtocol
from .web import admin_site
from .webside import web_site

log = Logger()

DEFAULT_PORTS = {"ds": 1863, "ns": 1864, "sb": 1865}
#: The roles that speak the protocol (each a listener of DEFAULT_PORTS); ROLES adds ``web``.
PROTOCOL_ROLES = ("ds", "ns", "sb")
#: The port a refusal names as an example for each listener (the admin port's: 8180).
EXAMPLE_PORTS = {**DEFAULT_PORTS, "web": 8080}

#: Options a container sets through the environment: option -> (variable, default). A flag on
#: the command line wins; an empty variable means the default.
ENV_DEFAULTS = {
    "ds": ("MSNP6_DS", f"tcp:{DEFAULT_PORTS['ds']}"),
    "ns": ("MSNP6_NS", f"tcp:{DEFAULT_PORTS['ns']}"),
    "sb": ("MSNP6_SB", f"tcp:{DEFAULT_PORTS['sb']}"),
    "public-host": ("MSNP6_PUBLIC_HOST", "127.0.0.1"),
    "web-base-url": ("MSNP6_WEB_BASE_URL", ""),
    "admin": ("MSNP6_ADMIN", ""),
    "web": ("MSNP6_WEB", ""),
    "signup": ("MSNP6_SIGNUP", "off"),
    "log-format": ("MSNP6_LOG_FORMAT", "text"),
    "bus": ("MSNP6_BUS", "memory:"),
    "node": ("MSNP6_NODE", ""),
    "roles": ("MSNP6_ROLES", ""),
    "node-ttl": ("MSNP6_NODE_TTL", "10"),
    "smtp-relay": ("MSNP6_SMTP_RELAY", ""),
    "mail-from": ("MSNP6_MAIL_FROM", ""),
}
#: The environment twin of --limit: ``cal=20/10,rename=5/30``; a --limit for the same name wins.
LIMITS_VARIABLE = "MSNP6_LIMITS"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "An MSN Messenger (MSNP6) server: dispatch, notification and switchboard."
    optParameters = [
        ["db", None, None, "Database URL [default: $MSNP6_DB, else an SQLite file in the data dir]"],
        ["key-file", None, None, "Credential key file [default: $MSNP6_KEY_FILE, else in the data dir]"],
        ["ds", None, None, "Dispatch server endpoint (strports) [default: $MSNP6_DS, else tcp:1863]"],
        ["ns", None, None, "Notification server endpoint (strports) [default: $MSNP6_NS, else tcp:1864]"],
        ["sb", None, None, "Switchboard endpoint (strports) [default: $MSNP6_SB, else tcp:1865]"],
        ["public-host", None, None,
         "Host put into XFR/RNG replies, with each listener's port [default: $MSNP6_PUBLIC_HOST, else 127.0.0.1]"],
        ["web-base-url", None, None,
         "Base of web links handed out (URL, CVR) [default: $MSNP6_WEB_BASE_URL, else http://PUBLIC-HOST/]"],
        ["admin", None, None,
         "Admin HTTP endpoint (strports) serving /healthz, /readyz, /metrics [default: $MSNP6_ADMIN, else off]"],
        ["web", None, None,
         "Web side endpoint (strports): md5auth.srf sign-in and the pages URL replies point at "
         "[default: $MSNP6_WEB, else off]"],
        ["signup", None, None,
         "Web sign-up at /signup (needs --web): open, invite (a code from msnp6-admin invite create) "
         "or off [default: $MSNP6_SIGNUP, else off]"],
        ["admin-token-file", None, None,
         "The admin port's token, required by its POST endpoints; made if missing [default: the token "
         "in $MSNP6_ADMIN_TOKEN, else the file $MSNP6_ADMIN_TOKEN_FILE, else admin-token next to the key file]"],
        ["log-format", None, None,
         "text, or json (one object per line) [default: $MSNP6_LOG_FORMAT, else text]"],
        ["bus", None, None,
         "memory: (one process) or redis://HOST:PORT/DB (a cluster: nodes share presence, events "
         "and the node registry there) [default: $MSNP6_BUS, else memory:]"],
        ["node", None, None,
         "This node's name, unique in the cluster [default: $MSNP6_NODE, else PUBLIC-HOST:NS-PORT:SB-PORT; "
         "without ns and sb, PUBLIC-HOST:ROLEPORT..., e.g. 127.0.0.1:web8080]"],
        ["roles", None, None,
         "What this process serves, a comma list of ds, ns, sb, web (web needs --web) "
         "[default: $MSNP6_ROLES, else ds,ns,sb, and web too when --web is given]"],
        ["node-ttl", None, None,
         "Seconds without a heartbeat after which a node counts as dead (its users go FLN) "
         "[default: $MSNP6_NODE_TTL, else 10]"],
        ["smtp-relay", None, None,
         "HOST:PORT of an SMTP relay (a local MTA) for the web side's mails: address verification and "
         "password reset links [default: $MSNP6_SMTP_RELAY, else off: no mail]"],
        ["mail-from", None, None,
         "The address those mails come from, e.g. messenger@example.org; needed with --smtp-relay "
         "[default: $MSNP6_MAIL_FROM]"],
        ["shutdown-timeout", None, 5.0, "Seconds a graceful shutdown (SIGTERM) may take", float],
        ["login-timeout", None, 60.0, "Seconds a connection may take to log in", float],
        ["challenge-timeout", None, 50.0, "Seconds a client has to answer CHL", float],
        ["store-timeout", None, 5.0,
         "Seconds a database call may take before the command gets 500 (login: 915/601) [0: no deadline]", float],
    ]
    optFlags = [["trace", None, "Log every protocol line (passwords and answers are never logged)"]]

    def __init__(self) -> None:
        super().__init__()
        self["limit"] = []

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """With --log-format json (or $MSNP6_LOG_FORMAT=json), a bad option value is one JSON
        record and exit status 2, not twistd's help text; with text, twistd prints its usage."""
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            given = log_format_in(list(options or []), os.environ.get(ENV_DEFAULTS["log-format"][0]) or "text")
            if given != "json":
                raise
            refuse(f"msnp6 cannot start: {e}", "json", REFUSED)

    def opt_limit(self, item: str) -> None:
        """NAME=N/SECONDS (a rate) or NAME=N (a cap); repeatable, and wins over $MSNP6_LIMITS
        (the same items, comma-separated). Names and defaults: README.md, "Limits"."""
        self["limit"].append(item)

    def postOptions(self) -> None:
        if not self["db"]:
            self["db"] = default_db_url()
        self["key-file"] = self["key-file"] or str(default_key_file())
        blank_roles = self["roles"] is not None and not self["roles"].strip()  # --roles "": a mistake
        for name, (variable, default) in ENV_DEFAULTS.items():
            if self[name] is None:
                self[name] = os.environ.get(variable) or default
        try:
            self["limits"] = Limits().overridden(
                [*parse_list(os.environ.get(LIMITS_VARIABLE, "")), *self["limit"]])
        except LimitError as e:
            raise usage.UsageError(f"--limit / ${LIMITS_VARIABLE}: {e}") from None
        self._cluster_options(blank_roles)
        if self["signup"] not in SIGNUP_MODES:
            raise usage.UsageError(f"--signup must be one of: {', '.join(SIGNUP_MODES)}, not {self['signup']!r}")
        try:
            self["mail"] = mail_settings(self["smtp-relay"], self["mail-from"])
        except SettingError as e:
            raise usage.UsageError(str(e)) from None
        if self["store-timeout"] < 0:
            raise usage.UsageError("--store-timeout must be 0 or more")
        if self["log-format"] not in LOGGERS:
            raise usage.UsageError(f"--log-format must be one of: {', '.join(LOGGERS)}")
        # twistd sets up logging from its own options once ours are parsed: hand it our observer
        # as if --logger had been given (an explicit --logger wins).
        logger = LOGGERS[self["log-format"]]
        if logger is not None and self.parent is not None and not self.parent.get("logger"):
            self.parent["logger"] = logger


    def _cluster_options(self, blank_roles: bool = False) -> None:
        self["roles"] = self._roles(blank_roles)
        try:
            self["node-ttl"] = float(self["node-ttl"])
        except ValueError:
            raise usage.UsageError(f"--node-ttl must be a number of seconds, not {self['node-ttl']!r}") from None
        if not 1 <= self["node-ttl"] <= 3600:
            raise usage.UsageError("--node-ttl must be between 1 and 3600 seconds")
        if self["bus"] not in ("memory:", "memory"):
            try:
                parse_redis_url(self["bus"])
            except ValueError as e:
                raise usage.UsageError(f"--bus is memory: or redis://HOST:PORT/DB: {e}") from None
        elif set(self["roles"]) - {"web"} != set(PROTOCOL_ROLES):
            raise usage.UsageError("--roles other than ds,ns,sb (and web) needs --bus redis://...: "
                                   "the roles of one process must meet on a shared bus")
        if not self["node"]:
            self["node"] = default_node_name(self)

    def _roles(self, blank: bool) -> tuple[str, ...]:
        """--roles as a tuple in ROLES order. Not given: ds,ns,sb, and web when --web is. Given:
        exactly those, where web and --web must go together (a web role without a listener
        would serve nothing; --web without the role is a contradiction, said rather than guessed)."""
        if not self["roles"].strip() and not blank:
            return (*PROTOCOL_ROLES, *(("web",) if self["web"] else ()))
        roles = tuple(r.strip() for r in self["roles"].split(",") if r.strip())
        unknown = sorted(set(roles) - set(ROLES))
        if not roles or unknown:
            raise usage.UsageError(f"--roles is a comma list of {', '.join(ROLES)}, not {self['roles']!r}")
        if "web" in roles and not self["web"]:
            raise usage.UsageError("--roles web needs --web ENDPOINT (or $MSNP6_WEB): where the web side listens")
        if self["web"] and "web" not in roles:
            raise usage.UsageError(f"--web is given but --roles {','.join(roles)} leaves out web: "
                                   "add web to --roles, or drop --web")
        return tuple(r for r in ROLES if r in roles)

    @property
    def clustered(self) -> bool:
        return self["bus"] not in ("memory:", "memory")


def default_node_name(options: "Options") -> str:
    """PUBLIC-HOST:NS-PORT:SB-PORT for a process serving ns or sb (as ever); a process serving
    neither (a DS or the web side alone) is named by its own ports, so that its default name
    cannot be a notification node's (two processes under one name would drop each other's
    sessions as those of an earlier run)."""
    roles = options["roles"]
    if "ns" in roles or "sb" in roles:
        return f"{options['public-host']}:{_port_of(options['ns'])}:{_port_of(options['sb'])}"
    return ":".join([options["public-host"], *(f"{r}{_port_of(options[r])}" for r in roles)])


def _port_of(description: str) -> str:
    """The port of a strports description (``tcp:1864:interface=...`` -> ``1864``), for node names."""
    parts = description.split(":")
    return next((p for p in parts[1:] if p.isdigit()), description)


def with_backlog(description: str, backlog: int = 1024) -> str:
    """Twisted listens with a backlog of 50; a burst of logins overflows that."""
    if description.startswith(("tcp:", "tcp6:")) and "backlog=" not in description:
        return f"{description}:backlog={backlog}"
    return description


class ListenerService(service.Service):
    """Listens on a strports endpoint and records the bound port in the realm (it may be 0).
    ``startup`` learns whether it bound: it stops the process if not (msnp6.startup)."""

    def __init__(self, name: str, description: str, factory: IProtocolFactory, realm: Realm, reactor: Any,
                 startup: Startup, label: str | None = None,
                 bound: Callable[[int], None] | None = None) -> None:
        """``bound``: told the port once it listens."""
        self.name: str = name
        self._bound = bound
        self._description = description
        self._factory = factory
        self._realm = realm
        self._reactor = reactor
        self._startup = startup
        self._label = label or name
        self._port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        endpoint = endpoints.serverFromString(self._reactor, with_backlog(self._description))
        listening = endpoint.listen(self._factory).addCallback(self._listening)
        self._startup.expect(self._label, self._description, listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self._port = port
        self._realm.ports[self.name] = port.getHost().port  # type: ignore[attr-defined]
        if self._bound is not None:
            self._bound(self._realm.ports[self.name])
        log.info("msnp6 {name} listening on {host}", name=self.name, host=port.getHost())
        return port

    def stopService(self) -> Any:
        super().stopService()
        if self._port is not None:
            return self._port.stopListening()
        return None


class StoreService(service.Service):
    name = "store"

    def __init__(self, store: Store, reactor: Any, shutdown: Shutdown) -> None:
        self.store = store
        self._reactor = reactor
        self._shutdown = shutdown

    def startService(self) -> None:
        super().startService()
        self.store.start()

    def stopService(self) -> Any:
        super().stopService()
        return stop_store(self.store, self._reactor, self._shutdown.remaining())


def open_store(options: Options, reactor: Any) -> tuple[Store, CredentialKeyring]:
    """The database and the credential keys (two during a key rotation), or CannotStart naming
    why not."""
    try:
        engine = open_database(options["db"])
        key = key_for(engine, Path(options["key-file"]))
    except (SchemaNotAtHead, CredentialKeyError) as e:
        raise CannotStart(str(e)) from None
    except Exception as e:
        reason = database_reason(e, options["db"])
        if reason is None:
            raise
        raise reason from None
    return Store(engine, reactor, timeout=options["store-timeout"]), key


def admin_token(options: Options) -> tuple[str, str]:
    """The admin port's token (made if its file is missing) and where it is read, or
    CannotStart naming why not."""
    source = token_source(options["admin-token-file"], Path(options["key-file"]))
    try:
        token = load_token(source, create=True)
    except AdminTokenError as e:
        raise CannotStart(str(e)) from None
    assert token is not None
    return token, source.describe()


def make_config(options: Options) -> Config:
    return Config(
        public_host=options["public-host"],
        login_timeout=options["login-timeout"],
        challenge_timeout=options["challenge-timeout"],
        trace=bool(options["trace"]),
        web_base_url=options["web-base-url"],
        store_timeout=options["store-timeout"],
        limits=options["limits"],
        signup=options["signup"],
        mail=options["mail"],
    )


def make_realm(options: Options, reactor: Any) -> tuple[Realm, ClusterMember | None]:
    """The realm, and with ``--bus redis://`` the cluster membership behind it."""
    store, key = open_store(options, reactor)
    if not options.clustered:
        return Realm(make_config(options), reactor, store, key), None
    member = ClusterMember(ClusterSettings(options["bus"], options["node"], options["roles"], options["node-ttl"]),
                           reactor)
    config = make_config(options)
    # On the directory's connection: the login check relies on its reads and writes keeping order.
    windows = RedisWindows(member.redis, reactor, config.limits)
    realm = Realm(config, reactor, store, key, member.bus, member.lookups, node_name=options["node"], windows=windows)
    member.join(realm)
    return realm, member


def service_tree(options: Options, store: Store, nodes: list[tuple[Realm, dict[str, str]]], reactor: Any,
                 member: ClusterMember | None = None) -> service.MultiService:
    """The store, the cluster membership (with ``--bus redis://``), the admin port (for the
    first node) and each node's listeners (``ds``, ``ns``, ``sb`` -> endpoint; a node may leave
    any out). Children stop one at a time in reverse order: the listeners and their clients (OUT
    SSD, FLN to watchers on other nodes), then the admin port, the cluster membership (leaving
    the registry), the store last."""
    shutdown = Shutdown(reactor, options["shutdown-timeout"])
    reactor.callWhenRunning(stop_on_sigterm, reactor)  # after twistd's own handlers
    top = SequentialService()
    StoreService(store, reactor, shutdown).setServiceParent(top)
    # One read of a key rotation for the process, its realms sharing one keyring; stopped before the store.
    keys = nodes[0][0].keys
    for realm, _ in nodes:
        realm.keys = keys
    keys.setServiceParent(top)
    for realm, _ in nodes:  # next to the store: they stop after the clients, before the store
        realm.last_logins.setName(f"last-logins-{realm.node.name}")
        realm.last_logins.setServiceParent(top)
    if member is not None:
        member.setServiceParent(top)
    token, token_from = admin_token(options) if options["admin"] else ("", None)
    startup = Startup(reactor, Settings(options["db"], options["key-file"], options["public-host"], token_from))
    if options["admin"]:
        realm = nodes[0][0]
        metrics = Metrics(realm)
        store.observe = metrics.observe_store
        site = admin_site(realm, metrics, reactor, token, listening=lambda: startup.ready)
        ListenerService("admin", options["admin"], site, realm, reactor, startup).setServiceParent(top)
    if options["web"]:
        realm = nodes[0][0]
        configs = [r.config for r, _ in nodes]

        def web_bound(port: int) -> None:
            for config in configs:  # every node's URL replies point here without --web-base-url
                config.web_port = port

        ListenerService("web", options["web"], web_site(realm), realm, reactor, startup,
                        bound=web_bound).setServiceParent(top)
    protocols = {"ds": DispatchProtocol, "ns": NotificationProtocol, "sb": SwitchboardProtocol}
    for realm, listeners in nodes:
        clients = ClientsService(realm, reactor, shutdown)
        if len(nodes) > 1:
            clients.setName(f"clients-{realm.node.name}")
        clients.setServiceParent(top)
        for name, description in listeners.items():
            label = f"{realm.node.name}/{name}" if len(nodes) > 1 else name
            ListenerService(name, description, RealmFactory(protocols[name], realm), realm, reactor, startup,
                            label).setServiceParent(clients)
    startup.setServiceParent(top)  # last: every listener has begun to listen when it starts
    return top


def check_endpoints(listeners: dict[str, str], reactor: Any) -> None:
    """Every listener's strports description parses (CannotStart naming the option if not), so
    a typo is refused before anything starts rather than failing inside startService."""
    for name, description in listeners.items():
        if not description:
            continue
        try:
            endpoints.serverFromString(reactor, with_backlog(description))
        except (ValueError, KeyError, TypeError, OSError) as e:  # OSError: ssl: without its key file
            raise CannotStart(f"--{name} {description!r} is not a listening endpoint such as "
                              f"tcp:{EXAMPLE_PORTS.get(name, 8180)}: {e}") from None


def warn_without_web_base(options: Options) -> None:
    """A cluster node that answers URL but does not serve the web side itself, without
    --web-base-url: its URL replies name http://PUBLIC-HOST/, right only if a reverse proxy
    serves the web role there. Whether one does cannot be told from here (the web role may run
    on another machine, start later, or not at all), so this is said once, not refused."""
    if options.clustered and "ns" in options["roles"] and "web" not in options["roles"] \
            and not options["web-base-url"]:
        log.warn("URL replies point at http://{host}/ (no --web-base-url, and this node does not serve "
                 "the web side): set --web-base-url / $MSNP6_WEB_BASE_URL to the web role's public base",
                 host=options["public-host"])


def warn_web_options_unused(options: Options) -> None:
    """--signup or --smtp-relay on a process that does not serve the web side do nothing there;
    said once (a shared environment file may well set them for every role of a cluster)."""
    if "web" in options["roles"]:
        return
    for name, given in (("signup", options["signup"] != "off"), ("smtp-relay", bool(options["smtp-relay"]))):
        if given:
            log.warn("--{name} has no effect in a process without the web role (--web): it only "
                     "changes what the web side serves", name=name)


def makeService(options: Options) -> service.MultiService:
    from twisted.internet import reactor

    # twistd's logger starts only after this returns: every fault here is reported by refusing().
    with refusing(options["log-format"]):
        listeners = {name: options[name] for name in DEFAULT_PORTS if name in options["roles"]}
        check_endpoints({**listeners, "admin": options["admin"], "web": options["web"]}, reactor)
        realm, member = make_realm(options, reactor)
        warn_without_web_base(options)
        warn_web_options_unused(options)
        top = Guarded()
        service_tree(options, realm.store, [(realm, listeners)], reactor, member).setServiceParent(top)
        reactor.callWhenRunning(gc_tuning.tune)
        return top
    raise AssertionError("refusing() exits the process")
