"""The history of each board × model × variant: its median latency in earlier runs.

Read-only queries on the store's `results` and `runs` tables, selecting only the columns the
chart needs (not the facts/details JSON) of a bounded number of runs, so a database with
thousands of runs stays quick. (A `Store.cell_history` method would be the natural home.)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

import sqlalchemy as sa

from orchestrator import store as store_tables
from orchestrator.errors import StoreError
from orchestrator.store import Store

#: How many runs (the current one included) the history charts show per cell by default.
DEFAULT_HISTORY_RUNS = 30


@dataclasses.dataclass(frozen=True)
class HistoryPoint:
    run_id: str
    created_at: str  # the run's start, ISO 8601 UTC
    board: str
    model: str
    variant: str
    latency_ms_p50: float
    runs: int | None


def latency_history(
    store: Store,
    run: Mapping[str, Any],
    cells: Iterable[tuple[str, str, str]],
    max_runs: int = DEFAULT_HISTORY_RUNS,
) -> dict[tuple[str, str, str], list[HistoryPoint]]:
    """For each cell, its ok results in the last `max_runs` runs up to and including `run`
    that measured any of these boards × models, oldest first. Cells that no earlier run
    measured are left out."""
    wanted = set(cells)
    if max_runs < 2 or not wanted:
        return {}
    results, runs = store_tables.results, store_tables.runs
    relevant = (
        results.c.status == "ok",
        results.c.latency_ms_p50.is_not(None),
        results.c.model.in_(sorted({c[1] for c in wanted})),
        results.c.board.in_(sorted({c[0] for c in wanted})),
        runs.c.created_at <= run["created_at"],
    )
    joined = results.join(runs, results.c.run_id == runs.c.run_id)
    recent = (
        sa.select(runs.c.run_id).select_from(joined).where(*relevant)
        .group_by(runs.c.run_id, runs.c.created_at)
        .order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(max_runs)
    ).subquery()
    query = (
        sa.select(results.c.run_id, runs.c.created_at, results.c.board, results.c.model, results.c.variant,
                  results.c.latency_ms_p50, results.c.runs)
        .select_from(joined)
        .where(*relevant, results.c.run_id.in_(sa.select(recent.c.run_id)))
        .order_by(runs.c.created_at, results.c.run_id, results.c.result_id)
    )
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(query).all()
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot read the history from {store.safe_url}: {exc}") from exc
    history: dict[tuple[str, str, str], list[HistoryPoint]] = {}
    for row in rows:
        key = (row.board, row.model, row.variant)
        if key not in wanted:
            continue
        points = history.setdefault(key, [])
        if points and points[-1].run_id == row.run_id:
            continue  # the same cell twice in one run (other settings): the first stands for the run
        points.append(HistoryPoint(row.run_id, row.created_at, row.board, row.model, row.variant,
                                   float(row.latency_ms_p50), row.runs))
    return {key: points for key, points in history.items() if len(points) >= 2}
