"""The results database: SQLAlchemy Core on a SQLite file (default) or PostgreSQL (by URL).

The same code runs on both: `open_store("farm.db")`, `open_store("sqlite:///farm.db")` or
`open_store("postgresql+psycopg://user@host/farm")`. Opening a store creates or upgrades its
schema; each result is written in its own transaction as soon as its job ends.

One module a job; `Store` only composes them:

- schema.py: the current tables (runs, results, result_series, run_tags, farm_schema).
- migrations.py: every schema step, append-only and frozen, and how two controllers apply them
  at once (why a home-made list and not alembic is said there).
- engine.py: database URLs, SQLite's locking (WAL, BEGIN IMMEDIATE), errors as StoreError.
- database.py: an open database's transactions and schema version (the base of `Store`).
- run_queries.py: runs and their tags; what `latest`, a prefix or `tag:NAME` names.
- result_writes.py: writing results, replacing a failed cell on `--resume`.
- result_reads.py: a run's results, raw series, export records matching filters.
- history.py: the history of cells across runs (`farm history`, the report's history charts).
- timestamps.py: times as stored (ISO 8601 UTC text) and `--since` bounds.
"""
from __future__ import annotations

from orchestrator.store.engine import (  # the SQLite hooks too, for tests that build their own engine
    _sqlite_begin,  # noqa: F401
    _sqlite_connect,  # noqa: F401
    default_db_url,
    is_read_only,
    make_engine,
    normalize_db_url,
)
from orchestrator.errors import StoreError
from orchestrator.store.history import HISTORY_FIELDS, CellHistoryEntry, HistoryMixin
from orchestrator.store.migrations import MIGRATIONS, SCHEMA_VERSION
from orchestrator.store.result_reads import ReadingMixin
from orchestrator.store.result_writes import WritingMixin
from orchestrator.store.run_queries import CellKey, new_run_id
from orchestrator.store.schema import (
    RUN_STATUSES,
    metadata,
    result_series,
    results,
    run_tags,
    runs,
    schema_version,
)
from orchestrator.store.timestamps import now_iso, since_iso

__all__ = [
    "HISTORY_FIELDS", "MIGRATIONS", "RUN_STATUSES", "SCHEMA_VERSION", "CellHistoryEntry", "CellKey", "Store",
    "default_db_url", "metadata", "new_run_id", "normalize_db_url", "now_iso", "open_store", "result_series",
    "results", "run_tags", "runs", "schema_version", "since_iso",
]


class Store(ReadingMixin, WritingMixin, HistoryMixin):
    """A results database. Use `open_store(url)`; usable as a context manager (closes).

    Its methods, by concern: runs and tags (run_queries.py), writing results
    (result_writes.py), reading them (result_reads.py), cell history (history.py).
    """


def open_store(url: str | None = None, *, read_only: bool = False) -> Store:
    """Open (and create/upgrade) the results database at `url` (default: `default_db_url()`).

    `read_only` is how the commands that only read open it: they never create a database (a
    missing SQLite file or an empty PostgreSQL database is a StoreError naming it), and a SQLite
    file on a read-only mount is read as it is (an older schema it cannot upgrade is refused)."""
    engine = make_engine(url or default_db_url(), read_only=read_only)
    store = Store(engine)
    try:
        if not read_only:
            store.migrate()
        else:
            version = store.schema_version_or_none()
            if not version:
                raise StoreError(f"{store.safe_url} holds no farm results (no farm schema): check --db / FARM_DB")
            if version < SCHEMA_VERSION and is_read_only(engine):
                raise StoreError(f"{store.safe_url} has schema version {version} and is read-only here; farm "
                                 f"{SCHEMA_VERSION} needs to upgrade it: open a writable copy once")
            if version != SCHEMA_VERSION:
                store.migrate()  # refuses a newer database; upgrades an older writable one
    except BaseException:
        engine.dispose()
        raise
    return store
