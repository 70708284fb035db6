"""Export a stored run as JSON (a list of records), CSV or Parquet; field names are a stable contract.

JSON and CSV are text (`export_run`); Parquet is binary (`export_run_bytes`) and needs pyarrow
(farm's `parquet` extra): without it farm says so instead of failing deep inside pandas.

`export_samples_bytes` exports the raw per-inference latencies instead, in long format (one
row per measured inference: `run_id, board, model, variant, sample, latency_ms`, the columns
of `orchestrator.results.load_samples`), for people who test or plot them themselves.

`export_ops_bytes` exports the operator profiles (`farm bench --profile`) in long format: one
row per result × operator type × provider, the fields of `orchestrator.profiles.OPS_EXPORT_FIELDS`.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import json

from orchestrator.errors import UsageError
from orchestrator.record import EXPORT_FIELDS
from orchestrator.store import Store

FORMATS = ("json", "csv", "parquet")
TEXT_FORMATS = ("json", "csv")


def _columns(records: list[dict]) -> list[str]:
    fields = list(EXPORT_FIELDS)
    for record in records:
        fields.extend(k for k in record if k not in fields)
    return fields


def export_run(store: Store, run_id: str, fmt: str) -> str:
    """The run as text: `json` (indented list of records) or `csv` (header + one row each)."""
    if fmt == "parquet":
        raise UsageError("parquet is a binary format: use export_run_bytes (or farm runs export -o FILE)")
    if fmt not in TEXT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (use one of: {', '.join(FORMATS)})")
    records = store.export_records(run_id)
    if fmt == "json":
        return json.dumps(records, indent=2, default=str) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(records), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def export_run_bytes(store: Store, run_id: str, fmt: str) -> bytes:
    """The run in any format as bytes (text formats UTF-8 encoded); Parquet through pandas+pyarrow.

    Parquet columns are typed: numbers stay numbers, missing values (a failed job's latencies)
    are nulls, `created_at` is a UTC timestamp.
    """
    if fmt in TEXT_FORMATS:
        return export_run(store, run_id, fmt).encode("utf-8")
    if fmt != "parquet":
        raise UsageError(f"unknown export format {fmt!r} (use one of: {', '.join(FORMATS)})")
    if not parquet_available():
        raise UsageError(
            "exporting Parquet needs pyarrow, which is not installed: pip install 'farm[parquet]' "
            "(or pip install pyarrow), or use --format csv/json"
        )
    import pandas as pd

    records = store.export_records(run_id)
    frame = pd.DataFrame.from_records(records, columns=_columns(records))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    for column in frame.columns:
        if frame[column].dtype == object:
            non_null = frame[column].dropna()
            kinds = {type(v) for v in non_null}
            if kinds and kinds <= {bool}:
                frame[column] = frame[column].astype("boolean")
            elif kinds and kinds <= {int, float} and bool not in kinds:
                frame[column] = pd.to_numeric(frame[column])
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


def export_samples_bytes(store: Store, run_id: str, fmt: str, *, board: str | None = None, model: str | None = None,
                         variant: str | None = None) -> bytes:
    """The run's raw latencies in long format: json (a compact list of records), csv or parquet.

    Only measured (ok) results have samples; `board` / `model` / `variant` narrow the export."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (use one of: {', '.join(FORMATS)})")
    if fmt == "parquet" and not parquet_available():
        raise UsageError(
            "exporting Parquet needs pyarrow, which is not installed: pip install 'farm[parquet]' "
            "(or pip install pyarrow), or use --format csv/json"
        )
    from orchestrator.results import load_samples

    frame = load_samples(store, store.resolve_run_id(run_id), board=board, model=model, variant=variant)
    if fmt == "json":
        return (frame.to_json(orient="records", double_precision=6) + "\n").encode("utf-8")
    if fmt == "csv":
        return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


def export_ops_bytes(store: Store, run_id: str, fmt: str) -> bytes:
    """The run's operator profiles in long format (orchestrator.profiles.OPS_EXPORT_FIELDS, one row
    per result × operator type × provider, ms per inference): json, csv or parquet. A run
    measured without --profile exports no rows (CSV: the header only)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (use one of: {', '.join(FORMATS)})")
    from orchestrator.profiles import OPS_EXPORT_FIELDS, ops_records

    records = ops_records(store.results(run_id))
    if fmt == "json":
        return (json.dumps(records, indent=2) + "\n").encode("utf-8")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(OPS_EXPORT_FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue().encode("utf-8")
    if not parquet_available():
        raise UsageError(
            "exporting Parquet needs pyarrow, which is not installed: pip install 'farm[parquet]' "
            "(or pip install pyarrow), or use --format csv/json"
        )
    import pandas as pd

    frame = pd.DataFrame.from_records(records, columns=list(OPS_EXPORT_FIELDS))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()
