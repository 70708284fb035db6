"""An open results database: its engine, its transactions and its schema version.

The base of `Store`: the query mixins (run_queries, result_writes, result_reads, history) open
their connections here, so every one of them gets SQLite's write locking and StoreError naming
the database without saying so.
"""
from __future__ import annotations

from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.store import migrations
from orchestrator.store.engine import for_writes, is_read_only, safe_url, wrap_errors

_Self = TypeVar("_Self", bound="Database")


class Database:
    """An engine with farm's transactions. Usable as a context manager (closes)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Connections of this engine begin write transactions (BEGIN IMMEDIATE on SQLite).
        self._write_engine = for_writes(engine)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self, up_to: int | None = None) -> int:
        """Apply missing migrations (up to `up_to`, default all), each in its own transaction.

        Returns the resulting schema version. Raises StoreError for a newer database.
        """
        return migrations.apply_migrations(self._write_engine, up_to)

    def schema_version(self) -> int:
        with self._connect() as conn:
            return migrations.read_schema_version(conn)

    def schema_version_or_none(self) -> int | None:
        """The schema version, or None when the database has no farm schema table yet."""
        with self._connect() as conn:
            if not sa.inspect(conn).has_table(migrations.schema_version.name):
                return None
            return migrations.read_schema_version(conn)

    @property
    def read_only(self) -> bool:
        """Opened on a SQLite file this user cannot write (see engine.make_engine)."""
        return is_read_only(self.engine)

    @property
    def safe_url(self) -> str:
        return safe_url(self.engine)

    def _begin(self):
        """A write transaction (committed on leaving, rolled back on an error)."""
        return wrap_errors(self._write_engine.begin(), self.safe_url)

    def _connect(self):
        """A connection for reads."""
        return wrap_errors(self.engine.connect, self.safe_url)  # connected inside: its errors are StoreErrors

    def close(self) -> None:
        self.engine.dispose()
