"""The results database: SQLAlchemy Core on a SQLite file (default) or PostgreSQL (by URL).

The same code runs on both: `open_store("farm.db")`, `open_store("sqlite:///farm.db")` or
`open_store("postgresql+psycopg://user@host/farm")`.

Schema versions
    `MIGRATIONS` lists every schema step, append-only. Opening a store applies the missing
    steps, each in its own transaction; a database written by a newer farm is refused. Each
    step takes the migration lock and re-reads the version inside its transaction, so two
    controllers opening an old database at once apply every step exactly once: PostgreSQL
    serialises them on an advisory transaction lock, SQLite on `BEGIN IMMEDIATE`. (A home-made
    list rather than alembic: a handful of steps, applied automatically at open on two
    dialects, needs ~40 lines here, while alembic would add a script folder and env.py to ship,
    batch mode for SQLite's ALTER TABLE, and its own version table to reconcile with this one.)

    1. runs, results (one row per run × board × model × variant × settings), result_series
       (raw latencies and sampler time series of each result).
    2. run_tags (a name such as `release-1.2` -> one run), `runs.resumed_at`, and indexes for
       history queries: results (board, model, variant, created_at), runs (created_at).

Transactions
    Each result is written in its own transaction as soon as its job ends, so a crash or Ctrl-C
    loses at most the job in flight. On SQLite farm issues `BEGIN` itself (pysqlite's implicit
    transactions leave DDL outside them and start read-then-write transactions that fail with
    SQLITE_BUSY instead of waiting): writes use `BEGIN IMMEDIATE`, which waits up to 30 s for
    another process's write lock, so concurrent controllers queue instead of failing.

A result cell is (run_id, board, model, variant, settings_hash), unique. A failed cell may be
re-run (`farm bench --resume`): `add_result` then replaces the failed row in the same transaction
as it writes the new one, and keeps the replaced attempts' error kind, message and time in the
new row's `details["previous_attempts"]`, so the history of failures is not lost. A cell that
already has an ok result cannot be written again (StoreError).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.errors import BadInputError, StoreError
from orchestrator.paths import farm_data_dir
from orchestrator.record import EXPORT_FIELDS, ResultRecord

# --------------------------------------------------------------------------- current schema

metadata = sa.MetaData()

schema_version = sa.Table(
    "farm_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)

RUN_STATUSES = ("running", "finished", "failed", "interrupted", "abandoned")  # abandoned: its controller died

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("status", sa.String(20), nullable=False),  # one of RUN_STATUSES
    sa.Column("farm_version", sa.String(40), nullable=False),
    sa.Column("settings_json", sa.Text, nullable=False),
    sa.Column("controller_json", sa.Text, nullable=False),
    sa.Column("resumed_at", sa.String(40)),  # v2: last time `--resume` reopened the run
)

results = sa.Table(
    "results",
    metadata,
    sa.Column("result_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("board", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("model_sha256", sa.String(64)),
    sa.Column("variant", sa.String(100), nullable=False),
    sa.Column("settings_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # ok | failed
    sa.Column("error_kind", sa.String(40)),
    sa.Column("error_message", sa.Text),
    sa.Column("runs", sa.Integer),
    sa.Column("latency_ms_min", sa.Float),
    sa.Column("latency_ms_mean", sa.Float),
    sa.Column("latency_ms_p50", sa.Float),
    sa.Column("latency_ms_p90", sa.Float),
    sa.Column("latency_ms_p99", sa.Float),
    sa.Column("latency_ms_max", sa.Float),
    sa.Column("latency_ms_stdev", sa.Float),
    sa.Column("fps", sa.Float),
    sa.Column("load_ms", sa.Float),
    sa.Column("first_inference_ms", sa.Float),
    sa.Column("peak_rss_bytes", sa.BigInteger),
    sa.Column("model_size_bytes", sa.BigInteger),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("facts_json", sa.Text),  # the board's environment record at the time of the job
    sa.Column("details_json", sa.Text),  # everything else the job measured (see orchestrator.record)
    sa.UniqueConstraint("run_id", "board", "model", "variant", "settings_hash", name="uq_result_cell"),
)

result_series = sa.Table(
    "result_series",
    metadata,
    sa.Column("result_id", sa.Integer, sa.ForeignKey("results.result_id"), primary_key=True),
    sa.Column("latency_ms_json", sa.Text, nullable=False),  # raw per-run latencies, ms
    sa.Column("timeseries_json", sa.Text, nullable=False),  # sampler rows (memory/CPU/temp/freq)
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("tagged_at", sa.String(40), nullable=False),
)

# --------------------------------------------------------------------------- migrations
# Each step builds its tables from its own frozen copy of the definitions, never from the
# current tables above: a step must create exactly what it created when it was released,
# whatever later steps add.


def _migration_1(conn: Connection) -> None:
    v1 = sa.MetaData()
    v1_runs = sa.Table(
        "runs", v1,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("farm_version", sa.String(40), nullable=False),
        sa.Column("settings_json", sa.Text, nullable=False),
        sa.Column("controller_json", sa.Text, nullable=False),
    )
    v1_results = sa.Table(
        "results", v1,
        sa.Column("result_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
        sa.Column("board", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("variant", sa.String(100), nullable=False),
        sa.Column("settings_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_kind", sa.String(40)),
        sa.Column("error_message", sa.Text),
        sa.Column("runs", sa.Integer),
        *(sa.Column(name, sa.Float) for name in (
            "latency_ms_min", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
            "latency_ms_max", "latency_ms_stdev", "fps", "load_ms", "first_inference_ms")),
        sa.Column("peak_rss_bytes", sa.BigInteger),
        sa.Column("model_size_bytes", sa.BigInteger),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("facts_json", sa.Text),
        sa.Column("details_json", sa.Text),
        sa.UniqueConstraint("run_id", "board", "model", "variant", "settings_hash", name="uq_result_cell"),
    )
    v1_series = sa.Table(
        "result_series", v1,
        sa.Column("result_id", sa.Integer, sa.ForeignKey("results.result_id"), primary_key=True),
        sa.Column("latency_ms_json", sa.Text, nullable=False),
        sa.Column("timeseries_json", sa.Text, nullable=False),
    )
    for table in (v1_runs, v1_results, v1_series):
        table.create(conn)


def _migration_2(conn: Connection) -> None:
    v2 = sa.MetaData()
    sa.Table("runs", v2, sa.Column("run_id", sa.String(64), primary_key=True))
    tags = sa.Table(
        "run_tags", v2,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), nullable=False, index=True),
        sa.Column("tagged_at", sa.String(40), nullable=False),
    )
    tags.create(conn)
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN resumed_at VARCHAR(40)")
    conn.exec_driver_sql("CREATE INDEX ix_results_history ON results (board, model, variant, created_at)")
    conn.exec_driver_sql("CREATE INDEX ix_runs_created_at ON runs (created_at)")


# (version, step). Append only: never edit a released step; add a new one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migration_1),
    (2, _migration_2),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# PostgreSQL advisory lock key held by the transaction that applies a migration step.
_PG_MIGRATION_LOCK = 7316001


# Names a user may give a run with `farm runs tag`: they appear after `tag:` on command lines.
_TAG_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
_RELATIVE_SINCE_RE = re.compile(r"^(\d+)\s*([dhw])$")


class CellKey(NamedTuple):
    """What identifies a result within a run: its board × model × variant, measured with the
    settings whose hash this is. As `done_cells` returns it."""

    board: str
    model: str
    variant: str
    settings_hash: str


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


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable, readable and unique across controllers: r20261125-120700-1a2b3c."""
    return dt.datetime.now(dt.timezone.utc).strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def since_iso(since: str | dt.date | dt.datetime | None) -> str | None:
    """A lower time bound as the ISO text stored in `created_at` columns (UTC), or None.

    Accepts a date (`2026-11-25`, midnight UTC), an ISO time (`2026-11-25T12:00`, naive =
    UTC), a `datetime`/`date`, or a relative age: `36h`, `7d`, `2w` before now.
    """
    if since is None:
        return None
    if isinstance(since, dt.datetime):
        moment = since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
    elif isinstance(since, dt.date):
        moment = dt.datetime(since.year, since.month, since.day, tzinfo=dt.timezone.utc)
    else:
        text = str(since).strip()
        relative = _RELATIVE_SINCE_RE.match(text.lower())
        if relative:
            amount, unit = int(relative.group(1)), relative.group(2)
            delta = {"h": dt.timedelta(hours=amount), "d": dt.timedelta(days=amount),
                     "w": dt.timedelta(weeks=amount)}[unit]
            moment = dt.datetime.now(dt.timezone.utc) - delta
        else:
            try:
                moment = dt.datetime.fromisoformat(text)
            except ValueError:
                raise BadInputError(
                    f"cannot read the date {text!r}: use YYYY-MM-DD, an ISO time such as "
                    "2026-11-25T12:00, or an age such as 7d, 36h, 2w"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """A results database. Use `open_store(url)`; usable as a context manager (closes)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Connections of this engine begin write transactions (BEGIN IMMEDIATE on SQLite).
        self._write_engine = engine.execution_options(farm_write=True)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- schema ---------------------------------------------------------------------------

    def migrate(self, up_to: int | None = None) -> int:
        """Apply missing migrations (up to `up_to`, default all), each in its own transaction.

        Returns the resulting schema version. Raises StoreError for a newer database.
        """
        target = SCHEMA_VERSION if up_to is None else up_to
        try:
            with self._write_engine.begin() as conn:
                self._lock_for_migration(conn)
                schema_version.create(conn, checkfirst=True)
                current = self._schema_version(conn)
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the database {self.safe_url} has schema version {current}, newer than this farm "
                    f"understands ({SCHEMA_VERSION}): upgrade farm (pip install -U farm)"
                )
            for version, step in MIGRATIONS:
                if version <= current or version > target:
                    continue
                with self._write_engine.begin() as conn:
                    self._lock_for_migration(conn)
                    current = self._schema_version(conn)  # another controller may have done it meanwhile
                    if version <= current:
                        continue
                    step(conn)
                    conn.execute(schema_version.insert().values(version=version, applied_at=now_iso()))
                    current = version
            return current
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot prepare the database {self.safe_url}: {_first_line(exc)}") from exc

    def schema_version(self) -> int:
        with self._connect() as conn:
            return self._schema_version(conn)

    @staticmethod
    def _schema_version(conn: Connection) -> int:
        return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)

    def _lock_for_migration(self, conn: Connection) -> None:
        if self.engine.dialect.name == "postgresql":
            # held until this transaction ends: one controller migrates, the others wait here
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        # SQLite: the transaction began with BEGIN IMMEDIATE, which already excludes other writers

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # --- runs -----------------------------------------------------------------------------

    def create_run(self, settings: Mapping[str, Any], controller: Mapping[str, Any], farm_version: str) -> str:
        run_id = new_run_id()
        with self._begin() as conn:
            conn.execute(
                runs.insert().values(
                    run_id=run_id,
                    created_at=now_iso(),
                    status="running",
                    farm_version=farm_version,
                    settings_json=json.dumps(settings, sort_keys=True, default=str),
                    controller_json=json.dumps(controller, sort_keys=True, default=str),
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: str) -> None:
        """Record how a run ended: `finished`, `failed` (every job failed) or `interrupted`."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish_run: status must be finished, failed or interrupted, got {status!r}")
        with self._begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(status=status, finished_at=now_iso()))

    def reopen_run(self, run_id: str) -> str:
        """Set a stored run back to `running` to add its missing cells (`farm bench --resume`).

        `run_id` may be `latest`, a prefix or `tag:NAME`; returns the full id. The run keeps its
        id, settings and every stored result; `resumed_at` records when it was reopened.
        """
        run_id = self.resolve_run_id(run_id)
        with self._begin() as conn:
            conn.execute(
                runs.update().where(runs.c.run_id == run_id)
                .values(status="running", finished_at=None, resumed_at=now_iso())
            )
        return run_id

    # --- runs whose controller died (agent session, issue 17) -------------------------------

    def running_runs(self) -> list[tuple[str, dict[str, Any]]]:
        """(run id, controller record) of every run stored as `running`."""
        with self._connect() as conn:
            rows = conn.execute(sa.select(runs.c.run_id, runs.c.controller_json).where(runs.c.status == "running"))
            return [(rid, json.loads(text or "{}")) for rid, text in rows]

    def mark_abandoned(self, run_id: str) -> bool:
        """`running` -> `abandoned` (its controller died mid-run; its stored results stay). Only a
        run still `running` changes, so a live controller's later finish_run is not overwritten by
        mistake and two callers do not both report it. Returns whether this call changed it."""
        with self._begin() as conn:
            changed = conn.execute(runs.update().where(runs.c.run_id == run_id, runs.c.status == "running")
                                   .values(status="abandoned", finished_at=now_iso())).rowcount
        return bool(changed)

    def done_cells(self, run_id: str) -> set[CellKey]:
        """The cells of a run that have an ok result: what `--resume` skips.

        Failed cells are not in the set, so a resumed run measures them again (`add_result`
        then replaces the failed row, keeping its error in `details["previous_attempts"]`).
        """
        query = sa.select(results.c.board, results.c.model, results.c.variant, results.c.settings_hash).where(
            results.c.run_id == run_id, results.c.status == "ok"
        )
        with self._connect() as conn:
            return {CellKey(*row) for row in conn.execute(query)}

    def list_runs(
        self,
        limit: int | None = 50,
        *,
        board: str | None = None,
        model: str | None = None,
        since: str | dt.date | None = None,
    ) -> list[dict[str, Any]]:
        """Runs newest first: run_id, created_at, finished_at, resumed_at, status, farm_version,
        results (count), failed (count), tags (names). See `get_run` for settings.

        `board` / `model` keep runs that measured that board / model (name); `since` keeps runs
        created at or after it (see `since_iso`).
        """
        query = (
            sa.select(runs.c.run_id, runs.c.created_at, runs.c.finished_at, runs.c.resumed_at, runs.c.status,
                      runs.c.farm_version)
            .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        )
        if board is not None or model is not None:
            having = sa.select(results.c.run_id)
            if board is not None:
                having = having.where(results.c.board == board)
            if model is not None:
                having = having.where(results.c.model == model)
            query = query.where(runs.c.run_id.in_(having))
        bound = since_iso(since)
        if bound is not None:
            query = query.where(runs.c.created_at >= bound)
        if limit is not None:
            query = query.limit(limit)
        with self._connect() as conn:
            found = [dict(row._mapping) for row in conn.execute(query)]
            run_ids = [run["run_id"] for run in found]
            # counted for the listed runs only (by the run_id index), not over the whole table
            counts: dict[str, tuple[int, int]] = {}
            for start in range(0, len(run_ids), 500):
                count_query = (
                    sa.select(results.c.run_id, sa.func.count(),
                              sa.func.sum(sa.case((results.c.status != "ok", 1), else_=0)))
                    .where(results.c.run_id.in_(run_ids[start:start + 500]))
                    .group_by(results.c.run_id)
                )
                for rid, total, failed in conn.execute(count_query):
                    counts[rid] = (int(total), int(failed or 0))
            tags = self._tags_of(conn, run_ids)
        for run in found:
            run["results"], run["failed"] = counts.get(run["run_id"], (0, 0))
            run["tags"] = tags.get(run["run_id"], [])
        return found

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with `settings` and `controller` decoded and its `tags`."""
        run_id = self.resolve_run_id(run_id)
        with self._connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).one()
            tags = self._tags_of(conn, [run_id])
        run = dict(row._mapping)
        run["settings"] = json.loads(run.pop("settings_json"))
        run["controller"] = json.loads(run.pop("controller_json"))
        run["tags"] = tags.get(run_id, [])
        return run

    def resolve_run_id(self, run_id: str) -> str:
        """`latest` → the newest run; `tag:NAME` → the tagged run; a unique prefix → the full id.

        Anything else raises BadInputError.
        """
        with self._connect() as conn:
            if run_id == "latest":
                found = conn.execute(
                    sa.select(runs.c.run_id).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1)
                ).scalar()
                if found is None:
                    raise BadInputError(f"no runs stored yet in {self.safe_url}: run `farm bench` first")
                return found
            if run_id.startswith("tag:"):
                name = run_id[len("tag:"):]
                found = conn.execute(sa.select(run_tags.c.run_id).where(run_tags.c.name == name)).scalar()
                if found is None:
                    known = conn.execute(sa.select(run_tags.c.name).order_by(run_tags.c.name).limit(20)).scalars().all()
                    hint = f" (tags: {', '.join(known)})" if known else " (no run is tagged yet: `farm runs tag RUN_ID NAME`)"
                    raise BadInputError(f"no run is tagged {name!r} in {self.safe_url}{hint}")
                return found
            matches = conn.execute(
                sa.select(runs.c.run_id).where(runs.c.run_id.startswith(run_id, autoescape=True)).limit(2)
            ).scalars().all()
        if run_id in matches:
            return run_id
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise BadInputError(f"no run {run_id!r} in {self.safe_url} (see `farm runs ls`)")
        raise BadInputError(f"run id prefix {run_id!r} is ambiguous: {', '.join(matches)}, ...")

    def latest_run_sharing_cells(self, run_id: str, statuses: Sequence[str] = ("finished",)) -> str | None:
        """The newest run other than `run_id`, not newer than it, with a status in `statuses`,
        that has an ok result for at least one (board, model, variant) that `run_id` measured.

        The baseline that `--baseline latest` means; None when there is none (a first run).
        """
        mine = results.alias("mine")
        other = results.alias("other")
        shared = (
            sa.select(sa.literal(1))
            .select_from(other.join(mine, sa.and_(other.c.board == mine.c.board, other.c.model == mine.c.model,
                                                  other.c.variant == mine.c.variant)))
            .where(other.c.run_id == runs.c.run_id, other.c.status == "ok", mine.c.run_id == run_id)
        )
        with self._connect() as conn:
            created_at = conn.execute(sa.select(runs.c.created_at).where(runs.c.run_id == run_id)).scalar()
            if created_at is None:
                raise BadInputError(f"no run {run_id!r} in {self.safe_url} (see `farm runs ls`)")
            query = (
                sa.select(runs.c.run_id)
                .where(runs.c.run_id != run_id, runs.c.status.in_(list(statuses)),
                       runs.c.created_at <= created_at, shared.exists())
                .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
                .limit(1)
            )
            return conn.execute(query).scalar()

    # --- tags -----------------------------------------------------------------------------

    def tag_run(self, run_id: str, name: str) -> str | None:
        """Name a run (`release-1.2`), usable as `tag:NAME` wherever a run id is.

        A name points at one run: reusing it moves it to the new run. Returns the run the
        name pointed at before (None if it is new, or already pointed here). A run may carry
        several names.
        """
        if not _TAG_NAME_RE.match(name or ""):
            raise BadInputError(
                f"bad tag name {name!r}: use letters, digits, '.', '_', '+', '-' (up to 100, "
                "starting with a letter or digit), e.g. release-1.2"
            )
        run_id = self.resolve_run_id(run_id)
        with self._begin() as conn:
            previous = conn.execute(sa.select(run_tags.c.run_id).where(run_tags.c.name == name)).scalar()
            conn.execute(run_tags.delete().where(run_tags.c.name == name))
            conn.execute(run_tags.insert().values(name=name, run_id=run_id, tagged_at=now_iso()))
        return previous if previous != run_id else None

    def untag(self, name: str) -> str:
        """Remove a tag; returns the run it named. BadInputError if there is no such tag."""
        with self._begin() as conn:
            previous = conn.execute(sa.select(run_tags.c.run_id).where(run_tags.c.name == name)).scalar()
            if previous is None:
                raise BadInputError(f"no run is tagged {name!r} in {self.safe_url}")
            conn.execute(run_tags.delete().where(run_tags.c.name == name))
        return previous

    def tags(self) -> dict[str, str]:
        """Every tag name → run id."""
        with self._connect() as conn:
            return dict(conn.execute(sa.select(run_tags.c.name, run_tags.c.run_id).order_by(run_tags.c.name)).all())

    @staticmethod
    def _tags_of(conn: Connection, run_ids: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for start in range(0, len(run_ids), 500):
            query = sa.select(run_tags.c.run_id, run_tags.c.name).where(
                run_tags.c.run_id.in_(run_ids[start:start + 500])).order_by(run_tags.c.name)
            for rid, name in conn.execute(query):
                found.setdefault(rid, []).append(name)
        return found

    # --- writing results ------------------------------------------------------------------

    def add_result(
        self,
        run_id: str,
        row: Mapping[str, Any],
        latency_ms: Iterable[float] = (),
        timeseries: Iterable[Mapping[str, Any]] = (),
    ) -> int:
        """Write one job's result and its raw series in one transaction; returns result_id.

        A failed row already stored for the same cell is replaced in the same transaction (its
        error goes to `details["previous_attempts"]`); an ok row for the cell is a StoreError.
        """
        values = _result_values(run_id, row)
        with self._begin() as conn:
            existing = conn.execute(
                sa.select(results.c.result_id, results.c.status, results.c.error_kind,
                          results.c.error_message, results.c.created_at, results.c.details_json)
                .where(results.c.run_id == run_id, results.c.board == values.get("board"),
                       results.c.model == values.get("model"), results.c.variant == values.get("variant"),
                       results.c.settings_hash == values.get("settings_hash"))
                .with_for_update()
            ).one_or_none()
            if existing is not None:
                if existing.status == "ok":
                    raise StoreError(
                        f"database {self.safe_url}: run {run_id} already has an ok result for "
                        f"{values.get('board')} / {values.get('model')} / {values.get('variant')}"
                    )
                earlier = json.loads(existing.details_json or "{}").get("previous_attempts", [])
                attempts = [*earlier, {"status": existing.status, "error_kind": existing.error_kind,
                                       "error_message": existing.error_message, "created_at": existing.created_at}]
                details = json.loads(values.get("details_json") or "{}")
                details["previous_attempts"] = attempts
                values["details_json"] = json.dumps(details, sort_keys=True, default=str)
                conn.execute(result_series.delete().where(result_series.c.result_id == existing.result_id))
                conn.execute(results.delete().where(results.c.result_id == existing.result_id))
            result_id = conn.execute(results.insert().values(**values)).inserted_primary_key[0]
            conn.execute(result_series.insert().values(_series_values(result_id, latency_ms, timeseries)))
        return int(result_id)

    def add_results(self, run_id: str, items: Sequence[ResultRecord]) -> list[int]:
        """Write many results in ONE transaction (imports, benchmarks); returns their ids in order.

        Plain inserts: a cell that is already stored fails the whole batch (StoreError), nothing
        is replaced. Jobs of a live run use `add_result`, one transaction each.
        """
        if not items:
            return []
        rows = [_result_values(run_id, item.row) for item in items]
        insert = results.insert().returning(results.c.result_id, sort_by_parameter_order=True)
        with self._begin() as conn:
            ids = [int(r) for r in conn.execute(insert, rows).scalars().all()]
            conn.execute(
                result_series.insert(),
                [_series_values(rid, item.latency_ms, item.timeseries) for rid, item in zip(ids, items, strict=True)],
            )
        return ids

    # --- reading results ------------------------------------------------------------------

    def results(self, run_id: str) -> list[dict[str, Any]]:
        """Every result of a run, in the order they were written, with facts/details decoded."""
        run_id = self.resolve_run_id(run_id)
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(results).where(results.c.run_id == run_id).order_by(results.c.result_id)
            ).all()
        decoded = []
        for row in rows:
            record = dict(row._mapping)
            record["facts"] = json.loads(record.pop("facts_json") or "{}")
            record["details"] = json.loads(record.pop("details_json") or "{}")
            decoded.append(record)
        return decoded

    def series(self, result_id: int) -> tuple[list[float], list[dict[str, Any]]]:
        """(raw latencies in ms, sampler time series) of one result."""
        with self._connect() as conn:
            row = conn.execute(sa.select(result_series).where(result_series.c.result_id == result_id)).one_or_none()
        if row is None:
            return [], []
        return json.loads(row.latency_ms_json), json.loads(row.timeseries_json)

    def latency_samples(self, result_ids: Sequence[int]) -> dict[int, list[float]]:
        """Raw latencies (ms) of many results at once: result_id → samples (missing ids left out)."""
        found: dict[int, list[float]] = {}
        ids = list(result_ids)
        with self._connect() as conn:
            for start in range(0, len(ids), 500):
                query = sa.select(result_series.c.result_id, result_series.c.latency_ms_json).where(
                    result_series.c.result_id.in_(ids[start:start + 500]))
                for rid, text in conn.execute(query):
                    found[int(rid)] = json.loads(text)
        return found

    def query_results(
        self,
        run_id: str | None = None,
        *,
        board: str | Sequence[str] | None = None,
        model: str | Sequence[str] | None = None,
        variant: str | Sequence[str] | None = None,
        since: str | dt.date | None = None,
        status: str | None = None,
        with_result_id: bool = False,
    ) -> list[dict[str, Any]]:
        """Flat export records (stable field names, measurement fields included) matching filters.

        `run_id` accepts `latest`, a prefix or `tag:NAME`; `since` bounds the result's
        `created_at` (see `since_iso`). Ordered by run (oldest first), then write order.
        `with_result_id` adds `result_id` (for `latency_samples`).
        """
        rows, measured = self.result_table(run_id, board=board, model=model, variant=variant, since=since,
                                           status=status)
        records = []
        for row, extra in zip(rows, measured, strict=True):
            record = dict(zip(EXPORT_FIELDS, row, strict=False))  # row ends with result_id
            for key, value in extra.items():
                record.setdefault(key, value)
            if with_result_id:
                record["result_id"] = int(row[len(EXPORT_FIELDS)])
            records.append(record)
        return records

    def result_table(
        self,
        run_id: str | None = None,
        *,
        board: str | Sequence[str] | None = None,
        model: str | Sequence[str] | None = None,
        variant: str | Sequence[str] | None = None,
        since: str | dt.date | None = None,
        status: str | None = None,
    ) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
        """`query_results` in columns, for bulk readers (DataFrames): (rows, measurement fields).

        Each row holds the EXPORT_FIELDS values then result_id; the measurement fields of row i
        (details["export"]) are the dict at i.
        """
        query = sa.select(
            *(results.c[name] for name in EXPORT_FIELDS), results.c.result_id, results.c.details_json
        ).select_from(results.join(runs, runs.c.run_id == results.c.run_id))
        if run_id is not None:
            query = query.where(results.c.run_id == self.resolve_run_id(run_id))
        for column, wanted in (("board", board), ("model", model), ("variant", variant)):
            if wanted is None:
                continue
            if isinstance(wanted, str):
                query = query.where(results.c[column] == wanted)
            else:
                query = query.where(results.c[column].in_(list(wanted)))
        bound = since_iso(since)
        if bound is not None:
            query = query.where(results.c.created_at >= bound)
        if status is not None:
            query = query.where(results.c.status == status)
        query = query.order_by(runs.c.created_at, results.c.run_id, results.c.result_id)
        with self._connect() as conn:
            fetched = conn.execute(query).all()
        rows = [tuple(row[:-1]) for row in fetched]
        measured = [(json.loads(row[-1]).get("export") or {}) if row[-1] else {} for row in fetched]
        return rows, measured

    def export_records(self, run_id: str) -> list[dict[str, Any]]:
        """One flat record per board × model × variant, with the stable export field names."""
        return self.query_results(run_id)

    def history(
        self,
        board: str,
        model: str,
        variant: str | None = None,
        *,
        since: str | dt.date | None = None,
        last: int | None = None,
    ) -> list[dict[str, Any]]:
        """One board × model (× variant) across runs, oldest first: what `farm history` shows.

        Each entry: run_id, run_status, created_at (the result's), variant, status, error_kind,
        runs, latency_ms_p50, latency_ms_p90, peak_rss_bytes, model_sha256, settings_hash, tags.
        `last` keeps the newest N entries. Uses the (board, model, variant, created_at) index.
        """
        query = (
            sa.select(
                results.c.run_id, runs.c.status.label("run_status"), results.c.created_at, results.c.variant,
                results.c.status, results.c.error_kind, results.c.runs, results.c.latency_ms_p50,
                results.c.latency_ms_p90, results.c.peak_rss_bytes, results.c.model_sha256,
                results.c.settings_hash,
            )
            .select_from(results.join(runs, runs.c.run_id == results.c.run_id))
            .where(results.c.board == board, results.c.model == model)
        )
        if variant is not None:
            query = query.where(results.c.variant == variant)
        bound = since_iso(since)
        if bound is not None:
            query = query.where(results.c.created_at >= bound)
        query = query.order_by(results.c.created_at.desc(), results.c.result_id.desc())
        if last is not None:
            query = query.limit(last)
        with self._connect() as conn:
            entries = [dict(row._mapping) for row in conn.execute(query)]
            tags = self._tags_of(conn, sorted({e["run_id"] for e in entries}))
        entries.reverse()
        for entry in entries:
            entry["tags"] = tags.get(entry["run_id"], [])
        return entries

    def count_results(self, run_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(results)
        if run_id is not None:
            query = query.where(results.c.run_id == run_id)
        with self._connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    # --- plumbing -------------------------------------------------------------------------

    def _begin(self):
        return _wrap_errors(self._write_engine.begin(), self.safe_url)

    def _connect(self):
        return _wrap_errors(self.engine.connect(), self.safe_url)

    def close(self) -> None:
        self.engine.dispose()


_RESULT_COLUMNS = {c.name for c in results.columns} - {"result_id", "run_id", "created_at", "facts_json", "details_json"}


def _result_values(run_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
    # every column, so that a batch of rows has the same keys (executemany)
    values = {column: row.get(column) for column in sorted(_RESULT_COLUMNS)}
    values.update(run_id=run_id, created_at=now_iso())
    for key in ("facts", "details"):
        values[f"{key}_json"] = json.dumps(row[key], sort_keys=True, default=str) if key in row else None
    return values


def _series_values(result_id: int, latency_ms: Iterable[float], timeseries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "result_id": result_id,
        "latency_ms_json": _float_list_json(latency_ms),
        "timeseries_json": json.dumps(list(timeseries), default=str),
    }


def _float_list_json(values: Iterable[float]) -> str:
    """A JSON list of floats, ~1.5x faster than json.dumps for the usual all-finite samples."""
    floats = [float(x) for x in values]
    if all(map(math.isfinite, floats)):
        return "[" + ",".join(map(repr, floats)) + "]"
    return json.dumps(floats)  # NaN / Infinity as json writes them


class _wrap_errors:
    """Context manager turning SQLAlchemy errors into StoreError with the database named."""

    def __init__(self, inner, url: str) -> None:
        self.inner = inner
        self.url = url

    def __enter__(self):
        try:
            return self.inner.__enter__()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"database {self.url}: {_first_line(exc)}") from exc

    def __exit__(self, exc_type, exc, tb):
        try:
            self.inner.__exit__(exc_type, exc, tb)  # commits, or rolls back when the body failed
        except sa.exc.SQLAlchemyError as error:
            raise StoreError(f"database {self.url}: {_first_line(error)}") from error
        if isinstance(exc, sa.exc.SQLAlchemyError):
            raise StoreError(f"database {self.url}: {_first_line(exc)}") from exc
        return False


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_store(url: str | None = None) -> Store:
    """Open (and create/upgrade) the results database at `url` (default: `default_db_url()`)."""
    url = normalize_db_url(url or default_db_url())
    connect_args: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for the database {path}: {exc.strerror}") from exc
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
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
    store = Store(engine)
    try:
        store.migrate()
    except BaseException:
        engine.dispose()
        raise
    return store


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


def _sqlite_begin(conn: Connection) -> None:
    """Writes take the write lock up front (waiting up to busy_timeout); reads take none."""
    write = conn.get_execution_options().get("farm_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
