"""The history of one board × model (× variant) across runs: what `farm history` shows."""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from orchestrator.store.database import Database
from orchestrator.store.run_queries import tags_of
from orchestrator.store.schema import results, runs
from orchestrator.store.timestamps import since_iso


class HistoryMixin(Database):
    """`Store`'s history of cells across runs."""

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
            tags = tags_of(conn, sorted({e["run_id"] for e in entries}))
        entries.reverse()
        for entry in entries:
            entry["tags"] = tags.get(entry["run_id"], [])
        return entries
