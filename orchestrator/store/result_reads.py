"""Reading results back: one run's rows, raw series, and flat export records matching filters.

Export records carry the stable field names of `orchestrator.record` (EXPORT_FIELDS, then the
measured fields of `details["export"]`); the history of cells across runs is in history.py.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from orchestrator.record import EXPORT_FIELDS
from orchestrator.store.run_queries import RunsMixin
from orchestrator.store.schema import result_series, results, runs
from orchestrator.store.timestamps import since_iso


def where_cells(
    query: sa.Select,
    board: str | Sequence[str] | None,
    model: str | Sequence[str] | None,
    variant: str | Sequence[str] | None,
    since: str | dt.date | None,
) -> sa.Select:
    """`query` (on `results`) keeping the results of these boards, models and variants (each one
    name, several, or None: any) written at or after `since` (see `since_iso`)."""
    for column, wanted in ((results.c.board, board), (results.c.model, model), (results.c.variant, variant)):
        if isinstance(wanted, str):
            query = query.where(column == wanted)
        elif wanted is not None:
            query = query.where(column.in_(list(wanted)))
    bound = since_iso(since)
    if bound is not None:
        query = query.where(results.c.created_at >= bound)
    return query


class ReadingMixin(RunsMixin):
    """`Store`'s reads of results (run ids resolved as `RunsMixin.resolve_run_id` reads them)."""

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
        result_ids: Sequence[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Flat export records (stable field names, measurement fields included) matching filters.

        `run_id` accepts `latest`, a prefix or `tag:NAME`; `since` bounds the result's
        `created_at` (see `since_iso`); `result_ids` keeps those results. Ordered by run
        (oldest first), then write order. `with_result_id` adds `result_id` (for
        `latency_samples`).
        """
        rows, measured = self.result_table(run_id, board=board, model=model, variant=variant, since=since,
                                           status=status, result_ids=result_ids)
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
        result_ids: Sequence[int] | None = None,
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
        query = where_cells(query, board, model, variant, since)
        if status is not None:
            query = query.where(results.c.status == status)
        if result_ids is not None:
            query = query.where(results.c.result_id.in_([int(i) for i in result_ids]))
        query = query.order_by(runs.c.created_at, results.c.run_id, results.c.result_id)
        with self._connect() as conn:
            fetched = conn.execute(query).all()
        rows = [tuple(row[:-1]) for row in fetched]
        measured = [(json.loads(row[-1]).get("export") or {}) if row[-1] else {} for row in fetched]
        return rows, measured

    def export_records(self, run_id: str) -> list[dict[str, Any]]:
        """One flat record per board × model × variant, with the stable export field names."""
        return self.query_results(run_id)

    def count_results(self, run_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(results)
        if run_id is not None:
            query = query.where(results.c.run_id == run_id)
        with self._connect() as conn:
            return int(conn.execute(query).scalar() or 0)
