"""Writing results: one job's result as soon as it ends, or a batch in one transaction.

A result cell is (run_id, board, model, variant, settings_hash), unique. A failed cell may be
re-run (`farm bench --resume`): `add_result` then replaces the failed row in the same transaction
as it writes the new one, and keeps the replaced attempts' error kind, message and time in the
new row's `details["previous_attempts"]`, so the history of failures is not lost. A cell that
already has an ok result cannot be written again (StoreError).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from orchestrator.errors import StoreError
from orchestrator.record import IDENTITY_EXPORT_FIELDS, ResultRecord, export_of
from orchestrator.store.database import Database
from orchestrator.store.schema import result_series, results
from orchestrator.store.timestamps import now_iso


class CellAlreadyStoredError(StoreError):
    """The cell already has an ok result in this run: a second one is refused (never a duplicate)."""


class WritingMixin(Database):
    """`Store`'s writes of results and their raw series."""

    def add_result(
        self,
        run_id: str,
        row: Mapping[str, Any],
        latency_ms: Iterable[float] = (),
        timeseries: Iterable[Mapping[str, Any]] = (),
    ) -> int:
        """Write one job's result and its raw series in one transaction; returns result_id.

        A failed row already stored for the same cell is replaced in the same transaction (its
        error goes to `details["previous_attempts"]`); an ok row for the cell is a CellAlreadyStoredError (a StoreError).
        """
        values = _result_values(run_id, row)
        with self._begin() as conn:
            existing = conn.execute(
                sa.select(results.c.result_id, results.c.status, results.c.error_kind,
                          results.c.error_message, results.c.created_at, results.c.details_json)
                .where(results.c.run_id == run_id, results.c.board == values.get("board"),
                       results.c.model == values.get("model"), results.c.variant == values.get("variant"),
                       results.c.settings_hash == values.get("settings_hash"))
                .with_for_update()
            ).one_or_none()
            if existing is not None:
                if existing.status == "ok":
                    raise CellAlreadyStoredError(
                        f"database {self.safe_url}: run {run_id} already has an ok result for "
                        f"{values.get('board')} / {values.get('model')} / {values.get('variant')}"
                    )
                earlier = json.loads(existing.details_json or "{}").get("previous_attempts", [])
                attempts = [*earlier, {"status": existing.status, "error_kind": existing.error_kind,
                                       "error_message": existing.error_message, "created_at": existing.created_at}]
                details = json.loads(values.get("details_json") or "{}")
                details["previous_attempts"] = attempts
                values["details_json"] = json.dumps(details, sort_keys=True, default=str)
                conn.execute(result_series.delete().where(result_series.c.result_id == existing.result_id))
                conn.execute(results.delete().where(results.c.result_id == existing.result_id))
            result_id = conn.execute(results.insert().values(**values)).inserted_primary_key[0]
            conn.execute(result_series.insert().values(_series_values(result_id, latency_ms, timeseries)))
        return int(result_id)

    def add_results(self, run_id: str, items: Sequence[ResultRecord]) -> list[int]:
        """Write many results in ONE transaction (imports, benchmarks); returns their ids in order.

        Plain inserts: a cell that is already stored fails the whole batch (StoreError), nothing
        is replaced. Jobs of a live run use `add_result`, one transaction each.
        """
        if not items:
            return []
        rows = [_result_values(run_id, item.row) for item in items]
        insert = results.insert().returning(results.c.result_id, sort_by_parameter_order=True)
        with self._begin() as conn:
            ids = [int(r) for r in conn.execute(insert, rows).scalars().all()]
            conn.execute(
                result_series.insert(),
                [_series_values(rid, item.latency_ms, item.timeseries) for rid, item in zip(ids, items, strict=True)],
            )
        return ids


_RESULT_COLUMNS = {c.name for c in results.columns} - {"result_id", "run_id", "created_at", "facts_json", "details_json"}


def _result_values(run_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
    # every column, so that a batch of rows has the same keys (executemany); the identity
    # columns are the record's export fields of the same names
    export = export_of(row)
    values = {column: row.get(column, export.get(column) if column in IDENTITY_EXPORT_FIELDS else None)
              for column in sorted(_RESULT_COLUMNS)}
    values.update(run_id=run_id, created_at=now_iso())
    for key in ("facts", "details"):
        values[f"{key}_json"] = json.dumps(row[key], sort_keys=True, default=str) if key in row else None
    return values


def _series_values(result_id: int, latency_ms: Iterable[float], timeseries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "result_id": result_id,
        "latency_ms_json": _float_list_json(latency_ms),
        "timeseries_json": json.dumps(list(timeseries), default=str),
    }


def _float_list_json(values: Iterable[float]) -> str:
    """A JSON list of floats, ~1.5x faster than json.dumps for the usual all-finite samples."""
    floats = [float(x) for x in values]
    if all(map(math.isfinite, floats)):
        return "[" + ",".join(map(repr, floats)) + "]"
    return json.dumps(floats)  # NaN / Infinity as json writes them

