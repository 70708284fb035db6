"""Schema versions: every step that built the results database, append-only, and their runner.

`MIGRATIONS` lists every schema step, append-only. Opening a store applies the missing steps,
each in its own transaction; a database written by a newer farm is refused. Each step takes the
migration lock and re-reads the version inside its transaction, so two controllers opening an
old database at once apply every step exactly once: PostgreSQL serialises them on an advisory
transaction lock, SQLite on `BEGIN IMMEDIATE`. (A home-made list rather than alembic: a handful
of steps, applied automatically at open on two dialects, needs ~40 lines here, while alembic
would add a script folder and env.py to ship, batch mode for SQLite's ALTER TABLE, and its own
version table to reconcile with this one.)

1. runs, results (one row per run × board × model × variant × settings), result_series (raw
   latencies and sampler time series of each result).
2. run_tags (a name such as `release-1.2` -> one run), `runs.resumed_at`, and indexes for
   history queries: results (board, model, variant, created_at), runs (created_at).
3. what a result ran on, as columns: runtime, provider, inference_precision, batch, threads.
4. fleet mode (orchestrator.fleet): fleet_runs, fleet_jobs, fleet_artifacts(+_chunks),
   fleet_workers, fleet_queue_schema. procrastinate's own tables are applied by
   orchestrator.fleet.queue at the first `farm submit` / `farm worker` (PostgreSQL only).

Each step builds its tables from its own frozen copy of the definitions, never from the current
tables in schema.py: a step must create exactly what it created when it was released, whatever
later steps add.
"""
from __future__ import annotations

import json

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.errors import StoreError
from orchestrator.store.engine import first_line, safe_url
from orchestrator.store.schema import schema_version
from orchestrator.store.timestamps import now_iso


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


def _migration_3(conn: Connection) -> None:
    """What a result ran on, as columns (comparisons and history key on it): runtime, provider,
    precision, batch, threads. Filled for stored results from their details' export (runtime,
    provider and precision were recorded since 0.2; batch and threads stay unknown)."""
    for column, kind in (("runtime", "VARCHAR(40)"), ("provider", "VARCHAR(100)"),
                         ("inference_precision", "VARCHAR(20)"), ("batch", "INTEGER"), ("threads", "INTEGER")):
        conn.exec_driver_sql(f"ALTER TABLE results ADD COLUMN {column} {kind}")
    v3 = sa.MetaData()
    table = sa.Table("results", v3, sa.Column("result_id", sa.Integer, primary_key=True),
                     sa.Column("details_json", sa.Text), sa.Column("runtime", sa.String(40)),
                     sa.Column("provider", sa.String(100)), sa.Column("inference_precision", sa.String(20)))
    last_id = -1
    while True:
        rows = conn.execute(sa.select(table.c.result_id, table.c.details_json).where(table.c.result_id > last_id)
                            .order_by(table.c.result_id).limit(1000)).all()
        if not rows:
            return
        updates = []
        for result_id, details_json in rows:
            try:
                export = (json.loads(details_json or "{}") or {}).get("export") or {}
            except ValueError:
                export = {}
            values = {key: export.get(key) for key in ("runtime", "provider", "inference_precision")}
            if any(isinstance(v, str) for v in values.values()):
                updates.append({"rid": result_id, **{k: v if isinstance(v, str) else None for k, v in values.items()}})
        if updates:
            conn.execute(table.update().where(table.c.result_id == sa.bindparam("rid")).values(
                runtime=sa.bindparam("runtime"), provider=sa.bindparam("provider"),
                inference_precision=sa.bindparam("inference_precision")), updates)
        last_id = rows[-1][0]


def _migration_4(conn: Connection) -> None:
    """Fleet mode's tables (farm's side of the queue; the queue itself is procrastinate's)."""
    v4 = sa.MetaData()
    sa.Table("runs", v4, sa.Column("run_id", sa.String(64), primary_key=True))
    tables = [
        sa.Table(
            "fleet_runs", v4,
            sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), primary_key=True),
            sa.Column("plan_json", sa.Text, nullable=False),
            sa.Column("gate_json", sa.Text, nullable=False),
            sa.Column("submitted_at", sa.String(40), nullable=False),
            sa.Column("cancel_requested", sa.Boolean, nullable=False),
        ),
        sa.Table(
            "fleet_jobs", v4,
            sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), primary_key=True),
            sa.Column("board", sa.String(200), primary_key=True),
            sa.Column("queue", sa.String(100), nullable=False),
            sa.Column("job_id", sa.BigInteger),
            sa.Column("state", sa.String(20), nullable=False),
            sa.Column("cells", sa.Integer, nullable=False),
            sa.Column("worker", sa.String(200)),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("current_cell", sa.String(300)),
            sa.Column("started_at", sa.String(40)),
            sa.Column("ended_at", sa.String(40)),
            sa.Column("message", sa.Text),
            sa.Index("ix_fleet_jobs_state", "state"),
        ),
        sa.Table(
            "fleet_artifacts", v4,
            sa.Column("sha256", sa.String(64), primary_key=True),
            sa.Column("size_bytes", sa.BigInteger, nullable=False),
            sa.Column("chunks", sa.Integer, nullable=False),
            sa.Column("created_at", sa.String(40), nullable=False),
        ),
        sa.Table(
            "fleet_artifact_chunks", v4,
            sa.Column("sha256", sa.String(64), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True),
            sa.Column("data", sa.LargeBinary, nullable=False),
        ),
        sa.Table(
            "fleet_workers", v4,
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("hostname", sa.String(200), nullable=False),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("queues_json", sa.Text, nullable=False),
            sa.Column("concurrency", sa.Integer, nullable=False),
            sa.Column("started_at", sa.String(40), nullable=False),
            sa.Column("last_seen_at", sa.String(40), nullable=False),
            sa.Column("stopped_at", sa.String(40)),
        ),
        sa.Table(
            "fleet_queue_schema", v4,
            sa.Column("procrastinate_version", sa.String(40), nullable=False),
            sa.Column("applied_at", sa.String(40), nullable=False),
        ),
    ]
    for table in tables:
        table.create(conn)


# (version, step). Append only: never edit a released step; add a new one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migration_1),
    (2, _migration_2),
    (3, _migration_3),
    (4, _migration_4),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# PostgreSQL advisory lock key held by the transaction that applies a migration step.
_PG_MIGRATION_LOCK = 7316001


def apply_migrations(write_engine: Engine, up_to: int | None = None) -> int:
    """Apply missing migrations (up to `up_to`, default all), each in its own transaction.

    `write_engine` begins write transactions (`engine.for_writes`: BEGIN IMMEDIATE on SQLite). Returns the resulting
    schema version. Raises StoreError for a newer database.
    """
    url = safe_url(write_engine)
    target = SCHEMA_VERSION if up_to is None else up_to
    try:
        with write_engine.begin() as conn:
            _lock_for_migration(conn)
            schema_version.create(conn, checkfirst=True)
            current = read_schema_version(conn)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the database {url} has schema version {current}, newer than this farm "
                f"understands ({SCHEMA_VERSION}): upgrade farm (pip install -U farm)"
            )
        for version, step in MIGRATIONS:
            if version <= current or version > target:
                continue
            with write_engine.begin() as conn:
                _lock_for_migration(conn)
                current = read_schema_version(conn)  # another controller may have done it meanwhile
                if version <= current:
                    continue
                step(conn)
                conn.execute(schema_version.insert().values(version=version, applied_at=now_iso()))
                current = version
        return current
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot prepare the database {url}: {first_line(exc)}") from exc


def read_schema_version(conn: Connection) -> int:
    """The highest step applied (0: a new database)."""
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def _lock_for_migration(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # held until this transaction ends: one controller migrates, the others wait here
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    # SQLite: the transaction began with BEGIN IMMEDIATE, which already excludes other writers
