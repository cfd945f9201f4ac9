"""Alembic: upgrade from empty, downgrade, upgrade again; the models match the head schema."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from msnp6.store.engine import make_engine
from msnp6.store.models import Base
from msnp6.store.schema import downgrade, head_revision, schema_state, upgrade


def _roundtrip(url: str) -> None:
    engine = make_engine(url)
    assert schema_state(engine).current is None
    upgrade(engine)
    assert schema_state(engine).at_head
    assert {"accounts", "list_entries"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    downgrade(engine, "base")
    assert schema_state(engine).current is None
    assert "accounts" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert schema_state(engine).current == head_revision()
    engine.dispose()


def test_migrations_sqlite(tmp_path):
    _roundtrip(f"sqlite:///{tmp_path / 'm.sqlite3'}")


def test_migrations_postgresql(pg_schema_url):
    _roundtrip(pg_schema_url())
