"""Engines for the two supported databases: SQLite (embedded default) and PostgreSQL."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, pool_size: int = 4) -> Engine:
    url = normalize_url(url)
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers (the admin command, tests) work while the server writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # A login reads its account, lists and contacts' rows: with SQLite's default 2 MB page
            # cache, a network of 10,000 accounts (some 60 MB of lists) reads most pages from the
            # OS again, each a system call. 64 MB per connection keeps the hot part in memory.
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=2, pool_pre_ping=True)


def bound_statements(engine: Engine, seconds: float) -> None:
    """Make the database give up after ``seconds``, the store's deadline: PostgreSQL cancels a
    statement (lock waits included) with ``statement_timeout``; SQLite stops waiting for a write
    lock (its busy timeout, what sqlite3's ``timeout`` sets). Without it a call the client has
    already been answered for would hold a pool thread for as long as the lock is held.

    Set per connection when it is made, so nothing is added to each call. Connections already in
    the pool (``open_database`` checks the schema with one) are dropped to get it too.
    """
    millis = max(1, round(seconds * 1000))
    if is_sqlite(str(engine.url)):

        @event.listens_for(engine, "connect")
        def _busy_timeout(dbapi_conn: Any, _record: Any) -> None:
            # Runs after make_engine's pragmas (listeners run in order), replacing its 30 s.
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={millis}")
            cur.close()

        if engine.url.database in (None, "", ":memory:"):
            return  # dropping its one connection would drop the database; nobody else locks it

    else:

        @event.listens_for(engine, "connect")
        def _statement_timeout(dbapi_conn: Any, _record: Any) -> None:
            # A SET inside the driver's implicit transaction would be undone by the pool's reset
            # rollback: run it in autocommit. A session setting, so it keeps whatever search_path
            # or other options the URL (or PGOPTIONS) gave the connection.
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            try:
                with dbapi_conn.cursor() as cur:
                    cur.execute(f"SET statement_timeout = {millis}")
            finally:
                dbapi_conn.autocommit = autocommit

    engine.dispose()


def refresh_statistics(engine: Engine) -> None:
    """After a bulk load (``msnp6-admin user import``, a restore): PostgreSQL's planner statistics
    for the tables a login reads. Until autovacuum gets to it, stale statistics can make the
    login's snapshot read scan all accounts instead of probing their index (6 ms instead of a
    third of one, measured with 16,000 accounts). SQLite plans from its indexes alone."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE accounts")
        conn.exec_driver_sql("ANALYZE list_entries")
