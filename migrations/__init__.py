"""Alembic migrations, shipped inside the package as ``msnp6.migrations``."""
