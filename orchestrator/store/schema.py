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

