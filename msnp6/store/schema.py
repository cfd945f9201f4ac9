"""Alembic glue: find the migration scripts, upgrade, and tell whether a database is at head."""
from __future__ import annotations

from pathlib import Path

import attrs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


def migrations_dir() -> Path:
    """The installed package ships ``msnp6.migrations``; a source tree has ``migrations/``."""
    try:
        import msnp6.migrations as installed  # type: ignore[import-untyped,unused-ignore]

        return Path(installed.__file__).parent
    except ImportError:
        return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    assert head is not None
    return head


@attrs.frozen
class SchemaState:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: not migrated). Blocking: not on the reactor."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_state(engine: Engine) -> SchemaState:
    return SchemaState(current_revision(engine), head_revision())


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


class SchemaNotAtHead(Exception):
    pass


def open_database(url: str) -> Engine:
    """An engine whose schema is at the Alembic head.

    The embedded SQLite database is created and upgraded on the spot (its file's folder too);
    any other database must be migrated explicitly, so a server never changes a shared schema.
    """
    from sqlalchemy.engine import make_url

    from .engine import is_sqlite, make_engine

    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            from pathlib import Path

            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    state = schema_state(engine)
    if state.at_head:
        return engine
    if is_sqlite(url):
        upgrade(engine)
        return engine
    engine.dispose()
    safe = make_url(url).render_as_string(hide_password=True)
    raise SchemaNotAtHead(
        f"the database schema is at {state.current or 'nothing'}, not at {state.head}; "
        f"run: msnp6-admin --db '{safe}' migrate"
    )
