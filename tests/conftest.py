"""Fixtures: a real msnp6 server (twistd subprocess) on SQLite and, when reachable, PostgreSQL."""
from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from twisted.logger import LogEvent, globalLogPublisher

from msnp6.auth import CredentialKey
from msnp6.store.engine import make_engine
from msnp6.store.schema import open_database, upgrade
from msnp6.store.store import StoreCore
from msnp6.testing import ReactorPump, RedisServerProcess, ServerProcess, TwoNodeServer
from msnp6.testing_cluster import ClusterServer


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    """Every log event (of this process) while the test runs."""
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


PG_HOST = os.environ.get("MSNP6_TEST_PG_HOST", "127.0.0.1")
PG_BASE = f"postgresql+psycopg://postgres@{PG_HOST}:5432/test"


def postgres_reachable() -> bool:
    try:
        socket.create_connection((PG_HOST, 5432), timeout=1).close()
        return True
    except OSError:
        return False


@attrs.define
class Database:
    backend: str
    url: str


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[Callable[[], str]]:
    """Make fresh PostgreSQL schemas in the ``test`` database; drop them all at the end."""
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    from sqlalchemy import text

    admin = make_engine(PG_BASE)
    made: list[str] = []

    def new() -> str:
        schema = f"msnp6_t_{os.getpid()}_{secrets.token_hex(4)}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return f"{PG_BASE}?options=-csearch_path%3D{schema}"

    yield new
    with admin.begin() as conn:
        for schema in made:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Database:
    if request.param == "sqlite":
        return Database("sqlite", f"sqlite:///{tmp_path_factory.mktemp('db') / 'msnp6.sqlite3'}")
    url = request.getfixturevalue("pg_schema_url")()
    upgrade(make_engine(url))  # the server refuses a PostgreSQL schema that is not at head
    return Database("postgresql", url)


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "credential.key"
    CredentialKey.load(path, create=True)
    return path


def _running(cls: type[ServerProcess], name: str, database: Database, key_file: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = cls(database.url, key_file, tmp_path_factory.mktemp(f"{name}-{database.backend}"),
               extra_args=["--challenge-timeout", "3"])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def server(database: Database, key_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _running(ServerProcess, "server", database, key_file, tmp_path_factory)


@pytest.fixture(scope="session")
def two_nodes(database: Database, key_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two nodes in one process sharing a bus, a directory and the database (msnp6.testing_nodes)."""
    yield from _running(TwoNodeServer, "two-nodes", database, key_file, tmp_path_factory)


@pytest.fixture(scope="session")
def cluster(database: Database, key_file: Path, tmp_path_factory: pytest.TempPathFactory,
            redis_server: RedisServerProcess) -> Iterator[ClusterServer]:
    """Separate processes: a DS-only twistd and two NS/SB twistd nodes on Redis (a database
    number of their own) and PostgreSQL, as a cluster runs in production."""
    if database.backend != "postgresql":
        pytest.skip("the cluster runs on PostgreSQL (its processes share the database)")
    proc = ClusterServer(database.url, key_file, tmp_path_factory.mktemp("cluster"),
                         f"redis://127.0.0.1:{redis_server.port}/{CLUSTER_REDIS_DB}",
                         extra_args=["--challenge-timeout", "3"])
    proc.start()
    yield proc
    proc.stop()


#: The Redis database of the session's cluster (the other Redis tests keep to database 0).
CLUSTER_REDIS_DB = 5

#: How a scenario module's ``server`` fixture runs: one process, two nodes in one process (a
#: memory bus between them), or the cluster of separate processes over Redis.
TOPOLOGIES = ["one-node", "two-nodes", "cluster"]


def one_or_two_nodes(request: pytest.FixtureRequest, one_node: ServerProcess) -> ServerProcess | ClusterServer:
    """For a module's ``server`` fixture with params ``TOPOLOGIES``: the single-node server, or
    the test's users alternating between two nodes (the first one on node a)."""
    if request.param == "one-node":
        return one_node
    nodes: TwoNodeServer | ClusterServer = request.getfixturevalue(
        "two_nodes" if request.param == "two-nodes" else "cluster")
    nodes.first_client_on_a()
    return nodes


_counter = itertools.count(1)


@attrs.define
class Accounts:
    """Creates accounts straight through the store (the admin CLI has its own tests)."""

    store: StoreCore
    key: CredentialKey

    def create(self, name: str | None = None, password: str = "hunter2", verified: bool = True,
               prefix: str = "user") -> str:
        handle = f"{prefix}{next(_counter)}-{secrets.token_hex(3)}@example.com"
        self.store.create_account(handle, name or handle, self.key.seal(handle, password), verified=verified)
        return handle


@pytest.fixture(scope="session")
def accounts(database: Database, key_file: Path) -> Accounts:
    return Accounts(StoreCore(open_database(database.url)), CredentialKey.load(key_file))


@pytest.fixture(scope="session")
def reactor_pump() -> Iterator[ReactorPump]:
    """The global reactor, pumped by the test itself (see ReactorPump)."""
    pump = ReactorPump()
    pump.start()
    yield pump
    pump.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerProcess]:
    """A private redis-server for the session: tests keep apart by key prefix, never flush."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    proc = RedisServerProcess(tmp_path_factory.mktemp("redis"))
    proc.start()
    yield proc
    proc.stop()
