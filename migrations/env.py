"""Alembic environment: msnp6 passes its Engine in ``config.attributes['engine']``.

``alembic -x url=...`` also works from a source tree for developers.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import text

from msnp6.store.engine import make_engine
from msnp6.store.models import Base

config = context.config
target_metadata = Base.metadata

# An arbitrary constant: concurrent `msnp6-admin migrate` runs on PostgreSQL queue on this lock.
_MIGRATION_LOCK = 0x6D736E70


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = context.get_x_argument(as_dictionary=True).get("url")
        if not url:
            raise SystemExit("pass the database with: alembic -x url=DATABASE_URL upgrade head")
        engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `msnp6-admin migrate`")
run_migrations_online()
