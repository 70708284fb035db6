"""Stored results as pandas DataFrames, for notebooks and scripts.

    from orchestrator import results

    df = results.load("~/.local/share/farm/farm.db", board="rpi4-01", since="2026-11-01")
    df.groupby(["model", "variant"])["latency_ms_p50"].median()

    samples = results.load_samples(None, "latest")            # None: FARM_DB or the default db
    samples.groupby(["board", "variant"])["latency_ms"].describe()

    ops = results.load_ops(None, "latest")                    # farm bench --profile
    ops.pivot_table(index="op_type", columns="variant", values="op_ms", aggfunc="sum")

`db` is a Store, a SQLAlchemy URL (`postgresql+psycopg://...`), a SQLite file path, or None for
the default database (`FARM_DB`, else ~/.local/share/farm/farm.db). Column names are the
export field names (see README, "Exported fields"), one row per board × model × variant result.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from orchestrator.record import EXPORT_FIELDS, sweep_of
from orchestrator.store import Store, open_store

__all__ = ["load", "load_ops", "load_samples", "SAMPLE_COLUMNS"]

#: Columns of `load_samples`: one row per measured inference.
#: `result_id` and `sweep` tell apart the cells of one board × model × variant (a sweep's points).
SAMPLE_COLUMNS = ("run_id", "board", "model", "variant", "sample", "latency_ms", "result_id", "sweep")

Names = str | Sequence[str] | None


@contextlib.contextmanager
def _opened(db: Store | str | None) -> Iterator[Store]:
    if isinstance(db, Store):
        yield db
        return
    store = open_store(db, read_only=True)
    try:
        yield store
    finally:
        store.close()


def load(
    db: Store | str | None = None,
    run_id: str | None = None,
    board: Names = None,
    model: Names = None,
    variant: Names = None,
    since: str | dt.date | None = None,
) -> pd.DataFrame:
    """One row per stored result (ok and failed), export field names as columns.

    Filters (all optional, combined with AND): `run_id` (an id, a unique prefix, `latest` or
    `tag:NAME`), `board` / `model` / `variant` (a name or a list of names), `since` (results
    created at or after: `2026-11-25`, an ISO time, a `date`/`datetime`, or an age like `7d`).
    `created_at` is a UTC pandas timestamp; rows are ordered by run (oldest first).
    """
    with _opened(db) as store:
        rows, measured = store.result_table(run_id, board=board, model=model, variant=variant, since=since)
    frame = pd.DataFrame.from_records(rows, columns=[*EXPORT_FIELDS, "result_id"]).drop(columns="result_id")
    extra = pd.DataFrame.from_records(measured, index=frame.index)
    extra = extra.drop(columns=[c for c in extra.columns if c in frame.columns])
    if not extra.empty or len(extra.columns):
        frame = pd.concat([frame, extra], axis=1)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    return frame


def load_samples(
    db: Store | str | None,
    run_id: str,
    board: Names = None,
    model: Names = None,
    variant: Names = None,
) -> pd.DataFrame:
    """The raw per-inference latencies of a run in long format, one row per measured inference.

    Columns: run_id, board, model, variant, sample (0-based order of the inference within its
    measurement: drift and warm-up effects show against it), latency_ms, result_id and sweep (the
    result the sample belongs to, and its sweep point: "" outside a sweep). Failed results have no
    samples and so no rows.
    """
    with _opened(db) as store:
        records = store.query_results(run_id, board=board, model=model, variant=variant, status="ok",
                                      with_result_id=True)
        samples = store.latency_samples([r["result_id"] for r in records])
    pieces = []
    for record in records:
        values = np.asarray(samples.get(record["result_id"], ()), dtype=float)
        if values.size == 0:
            continue
        pieces.append((record, values))
    if not pieces:
        return pd.DataFrame({name: pd.Series(dtype="float64" if name == "latency_ms" else "int64"
                                             if name in ("sample", "result_id") else "object")
                             for name in SAMPLE_COLUMNS})
    lengths = np.array([values.size for _, values in pieces])
    frame = pd.DataFrame({
        "run_id": np.repeat([r["run_id"] for r, _ in pieces], lengths),
        "board": np.repeat([r["board"] for r, _ in pieces], lengths),
        "model": np.repeat([r["model"] for r, _ in pieces], lengths),
        "variant": np.repeat([r["variant"] for r, _ in pieces], lengths),
        "sample": np.concatenate([np.arange(n) for n in lengths]),
        "latency_ms": np.concatenate([values for _, values in pieces]),
        "result_id": np.repeat([int(r["result_id"]) for r, _ in pieces], lengths),
        "sweep": np.repeat([sweep_of(r) for r, _ in pieces], lengths),
    })
    return frame


def load_ops(db: Store | str | None, run_id: str) -> pd.DataFrame:
    """The operator profiles of a run (`farm bench --profile`) in long format: one row per result ×
    operator type × provider, columns orchestrator.profiles.OPS_EXPORT_FIELDS (`op_ms` is ms per
    inference, `op_share` its fraction of the result's operator sum). No profile, no rows."""
    from orchestrator.profiles import OPS_EXPORT_FIELDS, ops_records

    with _opened(db) as store:
        records = ops_records(store.results(run_id))
    return pd.DataFrame.from_records(records, columns=list(OPS_EXPORT_FIELDS))
