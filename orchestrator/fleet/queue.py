"""The queue: procrastinate on farm's PostgreSQL store, its schema, and which queue a board is in.

One procrastinate job per board × run (task `TASK_NAME`, kwargs `run_id`, `board`), deferred
with `lock=<board name>` — procrastinate never runs two jobs with one lock at once, whatever
the number of workers — and `queue=<the board's site>`, so a worker only takes the boards it
can reach (`board_queue`).

procrastinate's tables live in the same database as farm's. They are applied at the first
`farm submit` or `farm worker` (`ensure_queue_schema`), once, under a PostgreSQL advisory lock
(two workers starting at once apply them once), and the procrastinate version that applied
them is recorded in `fleet_queue_schema`: a farm whose procrastinate ships schema migrations
newer than that refuses to start and says how to migrate, rather than misbehave.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from orchestrator.boards import Board
from orchestrator.errors import BadInputError, StoreError, UsageError
from orchestrator.store import normalize_db_url
from orchestrator.store.engine import first_line
from orchestrator.store.schema import fleet_queue_schema
from orchestrator.store.timestamps import now_iso

TASK_NAME = "farm.fleet.run_board"
DEFAULT_QUEUE = "default"
#: Inventory tags naming a board's queue, in order of precedence.
QUEUE_TAGS = ("queue", "site")
# procrastinate LISTENs on "procrastinate_queue_v1#<queue>": PostgreSQL identifiers are <= 63 bytes
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,39}$")
# PostgreSQL advisory lock held while the queue's schema is applied
_PG_QUEUE_SCHEMA_LOCK = 7316002


def board_queue(board: Board) -> str:
    """The queue of a board: its `queue` tag, else its `site` tag, else `default`.

    Tags merge down groups, so `vars: {tags: {site: lab-a}}` on an inventory group puts every
    board of the group in queue `lab-a`; a worker next to those boards serves `--queue lab-a`."""
    for tag in QUEUE_TAGS:
        value = (board.tags or {}).get(tag)
        if value:
            return check_queue_name(str(value), f"board {board.name}: tag {tag}")
    return DEFAULT_QUEUE


def check_queue_name(name: str, where: str = "--queue") -> str:
    if not _QUEUE_RE.match(name):
        raise BadInputError(f"{where}: queue name {name!r}: use up to 40 letters, digits, '_', '.', '-'")
    return name


def require_postgresql(db_url: str | None, command: str) -> str:
    """The normalized URL; UsageError unless it names a PostgreSQL database (the queue lives there)."""
    from orchestrator.store import default_db_url

    url = normalize_db_url(db_url or default_db_url())
    if not url.startswith("postgresql"):
        raise UsageError(f"{command} needs a PostgreSQL results database (--db postgresql+psycopg://user@host/farm "
                         "or FARM_DB): the fleet's queue lives in it; SQLite serves farm bench only")
    return url


def conninfo_of(db_url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL (what procrastinate's connector takes)."""
    from psycopg.conninfo import make_conninfo

    url = sa.engine.make_url(normalize_db_url(db_url))
    params: dict[str, Any] = {key: value for key, value in url.query.items() if isinstance(value, str)}
    for key, value in (("host", url.host), ("port", url.port), ("user", url.username),
                       ("password", url.password), ("dbname", url.database)):
        if value is not None:
            params[key] = str(value)
    params.setdefault("connect_timeout", "10")
    return make_conninfo("", **params)


def make_app(db_url: str, *, max_connections: int = 4):
    """A procrastinate App on the database (not opened yet)."""
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=conninfo_of(db_url), min_size=1,
                                               max_size=max(2, max_connections), timeout=30.0)
    return procrastinate.App(connector=connector)


DEFER_BATCH = 500


def defer_board_jobs(app, run_id: str, boards: list[tuple[str, str]]) -> list[int]:
    """Queue every (board, queue) of a run (sync: app.open() first), in batches (one statement per DEFER_BATCH jobs: a
    thousand boards queue in one round trip or two, not a thousand); returns the job ids in order."""
    ids: list[int] = []
    for start in range(0, len(boards), DEFER_BATCH):
        jobs = [app.configure_task(TASK_NAME, lock=board, queue=queue).make_new_job(run_id=run_id, board=board)
                for board, queue in boards[start:start + DEFER_BATCH]]
        ids += [int(job.id) for job in app.job_manager.batch_defer_jobs(jobs)]
    return ids


def installed_procrastinate_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("procrastinate")


def ensure_queue_schema(store) -> None:
    """Apply procrastinate's schema to the store's PostgreSQL database unless it is there (once,
    under an advisory lock); refuse a schema older than this procrastinate's migrations."""
    from procrastinate.schema import SchemaManager

    if store.engine.dialect.name != "postgresql":
        raise UsageError("the fleet queue needs PostgreSQL")
    installed = installed_procrastinate_version()
    try:
        with store._begin() as conn:  # noqa: SLF001 - a write transaction of farm's store
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_QUEUE_SCHEMA_LOCK})
            present = conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None
            recorded = conn.execute(sa.select(fleet_queue_schema.c.procrastinate_version)
                                    .order_by(fleet_queue_schema.c.applied_at.desc()).limit(1)).scalar()
            if not present:
                # the driver's own execute: no parameters, so the schema's '%' signs stay as they are
                conn.connection.driver_connection.execute(SchemaManager.get_schema())
                conn.execute(fleet_queue_schema.insert().values(procrastinate_version=installed, applied_at=now_iso()))
                return
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot prepare the fleet queue in {store.safe_url}: {first_line(exc)}") from exc
    if recorded is not None:
        missing = migrations_between(recorded, installed)
        if missing:
            raise StoreError(
                f"the fleet queue in {store.safe_url} was set up by procrastinate {recorded}; this farm has "
                f"procrastinate {installed}, which needs its schema migrations {', '.join(missing)} applied first "
                "(see procrastinate's 'migrations' how-to), or install procrastinate=={recorded}")


def migrations_between(applied: str, installed: str) -> list[str]:
    """procrastinate's migration files newer than the version that applied the schema."""
    from procrastinate.schema import SchemaManager

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", version)[:3])

    found = []
    for path in sorted(Path(SchemaManager.get_migrations_path()).glob("*.sql")):
        match = re.match(r"^(\d+)\.(\d+)\.(\d+)_", path.name)
        if match and key(applied) < tuple(int(g) for g in match.groups()) <= key(installed):
            found.append(path.name)
    return found


__all__ = ["DEFAULT_QUEUE", "QUEUE_TAGS", "TASK_NAME", "board_queue", "check_queue_name", "conninfo_of",
           "defer_board_jobs", "ensure_queue_schema", "make_app", "require_postgresql"]
