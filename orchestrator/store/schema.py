"""The current tables of the results database, as SQLAlchemy Core objects.

What every query reads and writes. Migrations never build from these (see migrations.py: each
step keeps its own frozen copy); a column added here needs a migration step that adds it.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_version = sa.Table(
    "farm_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)

# queued: submitted to the fleet queue (`farm submit`), no board started yet; cancelled: `farm queue
# cancel`; abandoned: its controller died
RUN_STATUSES = ("queued", "running", "finished", "failed", "interrupted", "cancelled", "abandoned")

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
    # v3: what the result ran on (record.IDENTITY_EXPORT_FIELDS), queryable; NULL: not known
    sa.Column("runtime", sa.String(40)),
    sa.Column("provider", sa.String(100)),
    sa.Column("inference_precision", sa.String(20)),
    sa.Column("batch", sa.Integer),
    sa.Column("threads", sa.Integer),
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



# --- fleet mode (v4, orchestrator.fleet): the queue itself is procrastinate's tables, in the same database

FLEET_JOB_STATES = ("waiting", "running", "done", "failed", "cancelled")

fleet_runs = sa.Table(  # a submitted run: what workers need to measure it, and how `farm runs wait` gates it
    "fleet_runs",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("plan_json", sa.Text, nullable=False),  # orchestrator.fleet.manifest.FleetPlan
    sa.Column("gate_json", sa.Text, nullable=False),  # orchestrator.fleet.gate.GateOptions
    sa.Column("submitted_at", sa.String(40), nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
)

fleet_jobs = sa.Table(  # one per board × run: farm's view of its procrastinate job
    "fleet_jobs",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("board", sa.String(200), primary_key=True),
    sa.Column("queue", sa.String(100), nullable=False),
    sa.Column("job_id", sa.BigInteger),  # procrastinate_jobs.id
    sa.Column("state", sa.String(20), nullable=False),  # one of FLEET_JOB_STATES
    sa.Column("cells", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("current_cell", sa.String(300)),
    sa.Column("started_at", sa.String(40)),
    sa.Column("ended_at", sa.String(40)),
    sa.Column("message", sa.Text),
)

fleet_artifacts = sa.Table(  # model and variant files, datasets: by content, so workers need no submitter's file
    "fleet_artifacts",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

fleet_artifact_chunks = sa.Table(
    "fleet_artifact_chunks",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

fleet_workers = sa.Table(  # workers as people see them (procrastinate_workers has ids and heartbeats only)
    "fleet_workers",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),  # host:pid:token
    sa.Column("hostname", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("queues_json", sa.Text, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("last_seen_at", sa.String(40), nullable=False),
    sa.Column("stopped_at", sa.String(40)),
)

fleet_queue_schema = sa.Table(  # which procrastinate applied the queue's tables (orchestrator.fleet.queue)
    "fleet_queue_schema",
    metadata,
    sa.Column("procrastinate_version", sa.String(40), nullable=False),
    sa.Column("applied_at", sa.String(40), nullable=False),
)
