"""Where the results database is and how farm talks to it: URLs, engines, SQLite's locking.

The same code runs on both dialects: `open_store("farm.db")`, `open_store("sqlite:///farm.db")`
or `open_store("postgresql+psycopg://user@host/farm")`.

Transactions
    Each result is written in its own transaction as soon as its job ends, so a crash or Ctrl-C
    loses at most the job in flight. On SQLite farm issues `BEGIN` itself (pysqlite's implicit
    transactions leave DDL outside them and start read-then-write transactions that fail with
    SQLITE_BUSY instead of waiting): writes use `BEGIN IMMEDIATE`, which waits up to 30 s for
    another process's write lock, so concurrent controllers queue instead of failing. A
    connection writes when its engine has the `farm_write` execution option (`write_engine`).

Errors
    SQLAlchemy's errors become StoreError naming the database (password hidden), so the CLI's
    one handler can say which database failed and how.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.errors import StoreError
from orchestrator.paths import farm_data_dir


def default_db_url() -> str:
    """`FARM_DB`, else a SQLite file in the user's data dir (~/.local/share/farm/farm.db)."""
    if os.environ.get("FARM_DB"):
        return os.environ["FARM_DB"]
    return "sqlite:///" + str(farm_data_dir() / "farm.db")


def normalize_db_url(url_or_path: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path (taken as SQLite).

    `postgresql://` and `postgres://` mean psycopg 3 (farm's `postgres` extra), not SQLAlchemy's
    default psycopg2 driver.
    """
    if "://" not in url_or_path:
        return "sqlite:///" + str(Path(url_or_path).expanduser().resolve())
    for prefix in ("postgresql://", "postgres://"):
        if url_or_path.startswith(prefix):
            return "postgresql+psycopg://" + url_or_path[len(prefix):]
    return url_or_path


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for `url` (a URL or a SQLite path; see `normalize_db_url`), SQLite's folder
    created and its locking hooks installed. Connects lazily: nothing is opened yet.

    `read_only` (farm runs/report/compare/history): a SQLite file that does not exist is a
    StoreError (a mistyped FARM_DB must not become a new empty database), and a file this user
    cannot write (a results copy on a read-only mount) is opened read-only and immutable."""
    url = normalize_db_url(url)
    connect_args: dict[str, Any] = {}
    sqlite_read_only = False
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if read_only and path and path != ":memory:":
            if not Path(path).is_file():
                raise StoreError(f"no results database at {path}: farm runs, report, compare and history never create "
                                 "one; check --db / FARM_DB, or run farm bench first")
            sqlite_read_only = not (os.access(path, os.W_OK) and os.access(Path(path).parent, os.W_OK))
        elif path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for the database {path}: {exc.strerror}") from exc
        if sqlite_read_only:  # no -wal/-shm files can be made next to it: read it as it is
            url = f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true"
        connect_args["timeout"] = 30  # seconds to wait for another writer's lock
    elif url.startswith("postgresql"):
        connect_args["connect_timeout"] = 10  # seconds; an unreachable server fails, not hangs
    try:
        engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    except ImportError as exc:
        hint = " (install farm's postgres extra: pip install 'farm[postgres]')" if url.startswith("postgres") else ""
        raise StoreError(f"cannot use the database URL {_hide_password(url)!r}: {exc}{hint}") from exc
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"cannot use the database URL {_hide_password(url)!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_read_only_connect if sqlite_read_only else _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def is_read_only(engine: Engine) -> bool:
    """An engine opened on a SQLite file it cannot write (see make_engine)."""
    return engine.dialect.name == "sqlite" and "mode=ro" in str(engine.url)


def for_writes(engine: Engine) -> Engine:
    """`engine` whose connections begin write transactions (BEGIN IMMEDIATE on SQLite)."""
    return engine.execution_options(farm_write=True)


def safe_url(engine: Engine) -> str:
    """The engine's URL with its password hidden: what messages may show."""
    return engine.url.render_as_string(hide_password=True)


class wrap_errors:
    """Context manager turning SQLAlchemy errors into StoreError with the database named.
    `inner`: a context manager, or what makes one (`engine.connect`, which connects when
    called: its errors are turned too)."""

    def __init__(self, inner, url: str) -> None:
        self.inner = inner
        self.url = url

    def __enter__(self):
        try:
            if callable(self.inner) and not hasattr(self.inner, "__enter__"):
                self.inner = self.inner()
            return self.inner.__enter__()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"database {self.url}: {first_line(exc)}") from exc

    def __exit__(self, exc_type, exc, tb):
        try:
            self.inner.__exit__(exc_type, exc, tb)  # commits, or rolls back when the body failed
        except sa.exc.SQLAlchemyError as error:
            raise StoreError(f"database {self.url}: {first_line(error)}") from error
        if isinstance(exc, sa.exc.SQLAlchemyError):
            raise StoreError(f"database {self.url}: {first_line(exc)}") from exc
        return False


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__



def _hide_password(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _sqlite_connect(dbapi_connection, _record) -> None:
    """WAL lets readers run beside a writer; foreign keys on; wait for locks instead of failing.

    `isolation_level = None` stops pysqlite's own transaction handling; `_sqlite_begin` issues
    the BEGIN so that DDL is inside transactions too.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    # Switching a new database to WAL needs an exclusive lock, and SQLite answers "database is
    # locked" at once (no busy handler: it could deadlock) while another process does the same;
    # retry for as long as busy_timeout would have waited.
    deadline = time.monotonic() + 30.0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_read_only_connect(dbapi_connection, _record) -> None:
    """A database on a read-only mount: no journal mode switch, no locks to wait for."""
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    """Writes take the write lock up front (waiting up to busy_timeout); reads take none."""
    write = conn.get_execution_options().get("farm_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
