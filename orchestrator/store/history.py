"""The history of cells across runs: the one query behind `farm history` and the report's charts.

It reads only the columns a history shows (never the facts/details JSON), filters on the
results (board, model, variant, created_at) index, and is bounded: the newest N results, or the
results of the newest N runs, so a database with thousands of runs stays quick.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from orchestrator.record import IDENTITY_EXPORT_FIELDS
from orchestrator.store.database import Database
from orchestrator.store.result_reads import where_cells
from orchestrator.store.run_queries import tags_of
from orchestrator.store.schema import results, runs


@dataclasses.dataclass(frozen=True)
class CellHistoryEntry:
    """One stored result of a cell, as a history shows it. Times are ISO 8601 UTC text."""

    result_id: int
    run_id: str
    run_created_at: str  # when the run started
    run_status: str  # one of RUN_STATUSES
    created_at: str  # when this result was written
    board: str
    model: str
    variant: str
    status: str  # ok | failed
    error_kind: str | None
    runs: int | None  # timed inferences
    latency_ms_p50: float | None
    latency_ms_p90: float | None
    peak_rss_bytes: int | None
    model_sha256: str | None
    settings_hash: str
    runtime: str | None = None  # what it ran on (record.IDENTITY_EXPORT_FIELDS); None: not known
    provider: str | None = None
    inference_precision: str | None = None
    batch: int | None = None
    threads: int | None = None
    tags: tuple[str, ...] = ()  # the run's tag names

    @property
    def identity(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field) for field in IDENTITY_EXPORT_FIELDS)

    def history_row(self) -> dict[str, Any]:
        """The entry as `Store.history` returns it (and `farm history --json` prints it)."""
        row = {name: getattr(self, name) for name in HISTORY_FIELDS}
        row["tags"] = list(self.tags)
        return row


#: The fields of a `Store.history` entry, in the order `farm history --json` prints them.
HISTORY_FIELDS = (
    "run_id", "run_status", "created_at", "variant", "status", "error_kind", "runs", "latency_ms_p50",
    "latency_ms_p90", "peak_rss_bytes", "model_sha256", "settings_hash", "runtime", "provider",
    "inference_precision", "batch", "threads", "tags",
)

_ENTRY_COLUMNS = (
    results.c.result_id, results.c.run_id, runs.c.created_at.label("run_created_at"),
    runs.c.status.label("run_status"), results.c.created_at, results.c.board, results.c.model,
    results.c.variant, results.c.status, results.c.error_kind, results.c.runs, results.c.latency_ms_p50,
    results.c.latency_ms_p90, results.c.peak_rss_bytes, results.c.model_sha256, results.c.settings_hash,
    *(results.c[field] for field in IDENTITY_EXPORT_FIELDS),
)


class HistoryMixin(Database):
    """`Store`'s history of cells across runs."""

    def cell_history(
        self,
        board: str | Sequence[str],
        model: str | Sequence[str],
        variant: str | Sequence[str] | None = None,
        *,
        since: str | dt.date | None = None,
        until: str | None = None,
        last_runs: int | None = None,
        last_results: int | None = None,
        ok_only: bool = False,
    ) -> list[CellHistoryEntry]:
        """The results of these boards × models (× variants: default all) across runs, oldest
        first (by the result's `created_at`, then write order), each with its run's tags.

        `since` keeps results written at or after it (see `since_iso`); `until` keeps runs
        created at or before this ISO time (a run's `created_at`: the history up to that run).
        `last_runs` keeps the newest N runs (by `created_at`) that have a matching result;
        `last_results` the newest N matching results. `ok_only` keeps ok results that have a
        median latency (what a chart can plot); otherwise failed results are entries too.
        """
        matching = sa.select(*_ENTRY_COLUMNS).select_from(results.join(runs, runs.c.run_id == results.c.run_id))
        matching = where_cells(matching, board, model, variant, since)
        if until is not None:
            matching = matching.where(runs.c.created_at <= until)
        if ok_only:
            matching = matching.where(results.c.status == "ok", results.c.latency_ms_p50.is_not(None))
        query = matching
        if last_runs is not None:
            recent = (
                matching.with_only_columns(runs.c.run_id)
                .group_by(runs.c.run_id, runs.c.created_at)
                .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
                .limit(last_runs)
            ).subquery()
            query = query.where(results.c.run_id.in_(sa.select(recent.c.run_id)))
        query = query.order_by(results.c.created_at.desc(), results.c.result_id.desc())
        if last_results is not None:
            query = query.limit(last_results)
        with self._connect() as conn:
            rows = conn.execute(query).all()
            tags = tags_of(conn, sorted({row.run_id for row in rows}))
        return [CellHistoryEntry(**row._mapping, tags=tuple(tags.get(row.run_id, ()))) for row in reversed(rows)]

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

        Each entry has the `HISTORY_FIELDS` (`created_at` is the result's, `tags` the run's);
        `last` keeps the newest N entries. `cell_history` with one board and model.
        """
        entries = self.cell_history(board, model, variant, since=since, last_results=last)
        return [entry.history_row() for entry in entries]
