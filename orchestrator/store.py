"""The results database: SQLAlchemy Core on a SQLite file (default) or PostgreSQL (by URL).

The schema is versioned from day one: `MIGRATIONS` lists every schema step; opening a store
applies the missing steps, each inside its own transaction, and refuses a database written
by a newer farm. Each result is written in its own transaction as soon as its job ends, so
a crash or Ctrl-C loses at most the job in flight.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.errors import BadInputError, StoreError

metadata = sa.MetaData()

schema_version = sa.Table(
    "farm_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("status", sa.String(20), nullable=False),  # running | finished | failed | interrupted
    sa.Column("farm_version", sa.String(40), nullable=False),
    sa.Column("settings_json", sa.Text, nullable=False),
    sa.Column("controller_json", sa.Text, nullable=False),
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
    sa.Column("details_json", sa.Text),  # everything else the job measured (see runner.JobResult)
    sa.UniqueConstraint("run_id", "board", "model", "variant", "settings_hash", name="uq_result_cell"),
)

result_series = sa.Table(
    "result_series",
    metadata,
    sa.Column("result_id", sa.Integer, sa.ForeignKey("results.result_id"), primary_key=True),
    sa.Column("latency_ms_json", sa.Text, nullable=False),  # raw per-run latencies, ms
    sa.Column("timeseries_json", sa.Text, nullable=False),  # sampler rows (memory/CPU/temp/freq)
)


def _migration_1(conn: Connection) -> None:
    for table in (runs, results, result_series):
        table.create(conn)


# (version, step). Append only: never edit a released step; add a new one.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migration_1),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

EXPORT_FIELDS = (
    "run_id", "board", "model", "variant", "status", "error_kind", "error_message", "runs",
    "latency_ms_min", "latency_ms_mean", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
    "latency_ms_max", "latency_ms_stdev", "fps", "load_ms", "first_inference_ms",
    "peak_rss_bytes", "model_size_bytes", "model_sha256", "settings_hash", "created_at",
)


def default_db_url() -> str:
    """`FARM_DB`, else a SQLite file in the user's data dir (~/.local/share/farm/farm.db)."""
    if os.environ.get("FARM_DB"):
        return os.environ["FARM_DB"]
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return "sqlite:///" + str(Path(base) / "farm" / "farm.db")


def normalize_db_url(url_or_path: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path (taken as SQLite)."""
    if "://" in url_or_path:
        return url_or_path
    return "sqlite:///" + str(Path(url_or_path).expanduser().resolve())


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable, readable and unique across controllers: r20261125-120700-1a2b3c."""
    return dt.datetime.now(dt.timezone.utc).strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class Store:
    """A results database. Use `open_store(url)`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- schema ---------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply missing migrations, each in its own transaction. Returns the resulting version."""
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "postgresql":
                    # one controller at a time migrates; the others wait here, then see it done
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7316001)"))
                schema_version.create(conn, checkfirst=True)
                current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the database {self.safe_url} has schema version {current}, newer than this farm "
                    f"understands ({SCHEMA_VERSION}): upgrade farm (pip install -U farm)"
                )
            for version, step in MIGRATIONS:
                if version <= current:
                    continue
                with self.engine.begin() as conn:
                    step(conn)
                    conn.execute(schema_version.insert().values(version=version, applied_at=now_iso()))
            return max(current, SCHEMA_VERSION)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot prepare the database {self.safe_url}: {_first_line(exc)}") from exc

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
                    settings_json=json.dumps(settings, sort_keys=True),
                    controller_json=json.dumps(controller, sort_keys=True),
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: str) -> None:
        with self._begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(status=status, finished_at=now_iso()))

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        counts = (
            sa.select(
                results.c.run_id,
                sa.func.count().label("results"),
                sa.func.sum(sa.case((results.c.status != "ok", 1), else_=0)).label("failed"),
            )
            .group_by(results.c.run_id)
            .subquery()
        )
        query = (
            sa.select(runs, sa.func.coalesce(counts.c.results, 0).label("results"),
                      sa.func.coalesce(counts.c.failed, 0).label("failed"))
            .select_from(runs.outerjoin(counts, runs.c.run_id == counts.c.run_id))
            .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
            .limit(limit)
        )
        with self._connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def get_run(self, run_id: str) -> dict[str, Any]:
        run_id = self.resolve_run_id(run_id)
        with self._connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).one()
        run = dict(row._mapping)
        run["settings"] = json.loads(run.pop("settings_json"))
        run["controller"] = json.loads(run.pop("controller_json"))
        return run

    def resolve_run_id(self, run_id: str) -> str:
        """`latest` → the newest run; a unique prefix → the full id; else BadInputError."""
        with self._connect() as conn:
            if run_id == "latest":
                found = conn.execute(
                    sa.select(runs.c.run_id).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(1)
                ).scalar()
                if found is None:
                    raise BadInputError(f"no runs stored yet in {self.safe_url}: run `farm bench` first")
                return found
            matches = conn.execute(
                sa.select(runs.c.run_id).where(runs.c.run_id.startswith(run_id, autoescape=True)).limit(2)
            ).scalars().all()
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise BadInputError(f"no run {run_id!r} in {self.safe_url} (see `farm runs ls`)")
        raise BadInputError(f"run id prefix {run_id!r} is ambiguous: {', '.join(matches)}, ...")

    # --- results --------------------------------------------------------------------------

    def add_result(
        self,
        run_id: str,
        row: Mapping[str, Any],
        latency_ms: Iterable[float] = (),
        timeseries: Iterable[Mapping[str, Any]] = (),
    ) -> int:
        """Write one job's result and its raw series in one transaction; returns result_id."""
        values = {column: row.get(column) for column in _RESULT_COLUMNS if column in row}
        values.update(run_id=run_id, created_at=now_iso())
        for key in ("facts", "details"):
            if key in row:
                values[f"{key}_json"] = json.dumps(row[key], sort_keys=True, default=str)
        with self._begin() as conn:
            result_id = conn.execute(results.insert().values(**values)).inserted_primary_key[0]
            conn.execute(
                result_series.insert().values(
                    result_id=result_id,
                    latency_ms_json=json.dumps(list(latency_ms)),
                    timeseries_json=json.dumps(list(timeseries), default=str),
                )
            )
        return int(result_id)

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

    def export_records(self, run_id: str) -> list[dict[str, Any]]:
        """One flat record per board × model × variant, with the stable export field names."""
        records = []
        for result in self.results(run_id):
            record = {field: result.get(field) for field in EXPORT_FIELDS}
            for key, value in result["details"].get("export", {}).items():
                record.setdefault(key, value)
            records.append(record)
        return records

    def count_results(self, run_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(results)
        if run_id is not None:
            query = query.where(results.c.run_id == run_id)
        with self._connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    # --- plumbing -------------------------------------------------------------------------

    def _begin(self):
        return _wrap_errors(self.engine.begin(), self.safe_url)

    def _connect(self):
        return _wrap_errors(self.engine.connect(), self.safe_url)

    def close(self) -> None:
        self.engine.dispose()


_RESULT_COLUMNS = {c.name for c in results.columns} - {"result_id", "run_id", "created_at", "facts_json", "details_json"}


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
    try:
        engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use the database URL {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine)
    store.migrate()
    return store


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets readers run beside a writer; foreign keys on; wait for locks instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
