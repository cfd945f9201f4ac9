"""Hot reads through the driver's cursor: a statement written with SQLAlchemy Core, compiled once
per dialect, its rows as the driver's plain tuples.

A login's snapshot reads some 60 rows; SQLAlchemy's execution context and its Row objects (read
by attribute name) cost more than SQLite's own work on them. Errors are SQLAlchemy's all the
same (an outage is still an OperationalError), and a dropped connection is invalidated as
``Connection.execute`` would do.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.exc import DBAPIError


class RawRead:
    """One SELECT, run with ``rows(conn, params)``: ``params`` by the statement's bind names."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        #: dialect name -> (SQL text, bind names in order or None for named style, fixed values)
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Any]:
        dialect = conn.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(conn)
        sql, order, fixed = compiled
        values = {**fixed, **params}
        args: Any = tuple(values[name] for name in order) if order is not None else values
        dbapi_conn = conn.connection
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(sql, args)
            return cursor.fetchall()  # a list already (sqlite3, psycopg)
        except dialect.loaded_dbapi.Error as error:
            gone = dialect.is_disconnect(error, dbapi_conn.dbapi_connection, cursor)
            if gone:
                conn.invalidate(error)
            raise DBAPIError.instance(sql, args, error, dialect.loaded_dbapi.Error,
                                      connection_invalidated=gone, dialect=dialect) from error
        finally:
            cursor.close()

    def _compile(self, conn: Connection) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        compiled = self.statement.compile(dialect=conn.dialect)
        order = tuple(compiled.positiontup or ()) if conn.dialect.positional else None
        # Values fixed in the statement (literals SQLAlchemy turned into bind parameters).
        fixed = {name: value for name, value in compiled.params.items() if value is not None}
        return str(compiled), order, fixed
