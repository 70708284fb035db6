"""Compare two stored runs cell by cell: did latency or peak memory change? (`farm compare`)

Cells are matched by (board, model, variant), the model by its *name*: when the weights under a
name change between runs (a different `model_sha256`), the cells still match and
`model_changed` says so — catching what new weights do to a board is what comparing runs is for.

Per cell, both figures are tested with orchestrator.analysis:
* latency: `compare_samples` on the raw per-inference samples (a Mann-Whitney test AND a
  minimum effect on the medians, with a confidence interval); when both runs measured the cell
  in several fresh processes (`--repeats`), `compare_process_medians` on the processes' medians
  instead, so the drift between processes is in the test (`analysis.compare_latency` picks);
* peak memory (`peak_rss_bytes`, a single number per result): `compare_values`.

The cell's verdict, first match wins:
1. `only-base` / `only-new`: the cell was measured in one run only;
2. `failed`: the job failed in either run (which one and why is in `reason`);
3. `regressed`: latency or memory regressed;
4. `inconclusive`: latency or memory could not be decided (too noisy, too few samples, a value
   missing on one side);
5. `improved`: latency or memory improved (and nothing regressed);
6. `unchanged`.
Memory missing in both runs (a board that cannot report it) leaves memory out of the verdict.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal, Sequence

from orchestrator.analysis import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT_PCT, Comparison, compare_latency, compare_values
from orchestrator.repeats import process_p50s
from orchestrator.store import Store

__all__ = ["CELL_VERDICTS", "CellComparison", "CellVerdict", "RunComparison", "compare_runs"]

CellVerdict = Literal["improved", "unchanged", "regressed", "inconclusive", "failed", "only-base", "only-new"]
CELL_VERDICTS: tuple[str, ...] = ("regressed", "failed", "inconclusive", "improved", "unchanged", "only-base", "only-new")


@dataclasses.dataclass(frozen=True)
class CellComparison:
    """One board × model × variant in both runs. Latency in ms, memory in bytes, changes in %."""

    board: str
    model: str
    variant: str
    verdict: CellVerdict
    reason: str
    base_status: str | None  # ok | failed | None (not measured in that run)
    new_status: str | None
    base_error: str | None = None  # "KIND: message" of a failed job
    new_error: str | None = None
    latency: Comparison | None = None
    base_peak_rss_bytes: int | None = None
    new_peak_rss_bytes: int | None = None
    memory_change_pct: float | None = None
    memory_verdict: str | None = None  # a Verdict, or None when neither run measured memory
    base_model_sha256: str | None = None
    new_model_sha256: str | None = None
    settings_changed: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.board, self.model, self.variant)

    @property
    def model_changed(self) -> bool:
        """The weights under this model name differ between the runs."""
        return bool(self.base_model_sha256 and self.new_model_sha256
                    and self.base_model_sha256 != self.new_model_sha256)

    @property
    def latency_verdict(self) -> str | None:
        return None if self.latency is None else self.latency.verdict

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["latency"] = None if self.latency is None else self.latency.as_dict()
        data["model_changed"] = self.model_changed
        return data


@dataclasses.dataclass(frozen=True)
class RunComparison:
    """Every cell of two runs compared; `cells` sorted by board, model, variant."""

    base_run_id: str
    new_run_id: str
    min_effect_pct: float
    memory_min_effect_pct: float
    alpha: float
    cells: tuple[CellComparison, ...]

    def counts(self) -> dict[str, int]:
        """Cells per verdict, every verdict present (0 when none)."""
        found = {verdict: 0 for verdict in CELL_VERDICTS}
        for cell in self.cells:
            found[cell.verdict] += 1
        return found

    def with_verdict(self, *verdicts: str) -> list[CellComparison]:
        return [cell for cell in self.cells if cell.verdict in verdicts]

    @property
    def regressed(self) -> list[CellComparison]:
        return self.with_verdict("regressed")

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_run_id": self.base_run_id,
            "new_run_id": self.new_run_id,
            "min_effect_pct": self.min_effect_pct,
            "memory_min_effect_pct": self.memory_min_effect_pct,
            "alpha": self.alpha,
            "counts": self.counts(),
            "cells": [cell.as_dict() for cell in self.cells],
        }


def compare_runs(
    store: Store,
    base_run_id: str,
    new_run_id: str,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
    *,
    memory_min_effect_pct: float | None = None,
) -> RunComparison:
    """Compare every (board, model, variant) cell of `new_run_id` with `base_run_id`.

    Run ids may be full ids, unique prefixes, `latest` or `tag:NAME`. `min_effect_pct` is the
    smallest latency change (%) that counts, `memory_min_effect_pct` the smallest peak-memory
    change (default: the same); `alpha` is the rank test's significance level.
    """
    memory_pct = min_effect_pct if memory_min_effect_pct is None else memory_min_effect_pct
    base_id = store.resolve_run_id(base_run_id)
    new_id = store.resolve_run_id(new_run_id)
    base = _cells(store.query_results(base_id, with_result_id=True))
    new = _cells(store.query_results(new_id, with_result_id=True))
    wanted = [r["result_id"] for r in (*base.values(), *new.values()) if r["status"] == "ok"]
    samples = store.latency_samples(wanted)
    cells = [
        _compare_cell(key, base.get(key), new.get(key), samples, min_effect_pct, memory_pct, alpha)
        for key in sorted(set(base) | set(new))
    ]
    return RunComparison(base_id, new_id, float(min_effect_pct), float(memory_pct), float(alpha), tuple(cells))


def _cells(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(board, model, variant) → its record; with several (other settings), the ok and newest."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in records:
        key = (record["board"], record["model"], record["variant"])
        held = found.get(key)
        if held is None or (record["status"] == "ok", record["created_at"]) >= (held["status"] == "ok", held["created_at"]):
            found[key] = record
    return found


def _error(record: dict[str, Any] | None) -> str | None:
    if record is None or record["status"] == "ok":
        return None
    return f"{record.get('error_kind') or 'failed'}: {record.get('error_message') or ''}".strip()


def _compare_cell(
    key: tuple[str, str, str],
    base: dict[str, Any] | None,
    new: dict[str, Any] | None,
    samples: dict[int, list[float]],
    min_effect_pct: float,
    memory_pct: float,
    alpha: float,
) -> CellComparison:
    common = dict(
        board=key[0], model=key[1], variant=key[2],
        base_status=None if base is None else base["status"],
        new_status=None if new is None else new["status"],
        base_error=_error(base), new_error=_error(new),
        base_model_sha256=None if base is None else base.get("model_sha256"),
        new_model_sha256=None if new is None else new.get("model_sha256"),
        base_peak_rss_bytes=None if base is None else base.get("peak_rss_bytes"),
        new_peak_rss_bytes=None if new is None else new.get("peak_rss_bytes"),
        settings_changed=bool(base and new and base["settings_hash"] != new["settings_hash"]),
    )
    if base is None:
        return CellComparison(verdict="only-new", reason="not measured in the base run", **common)
    if new is None:
        return CellComparison(verdict="only-base", reason="not measured in the new run", **common)
    if new["status"] != "ok" or base["status"] != "ok":
        which = "new" if new["status"] != "ok" else "base"
        return CellComparison(verdict="failed", reason=f"failed in the {which} run: {_error(new if which == 'new' else base)}",
                              **common)

    base_samples = samples.get(base["result_id"]) or []
    new_samples = samples.get(new["result_id"]) or []
    latency: Comparison | None = None
    if base_samples and new_samples:
        latency = compare_latency(base_samples, new_samples, process_p50s(base), process_p50s(new),
                                  min_effect_pct=min_effect_pct, alpha=alpha)
        latency_verdict, latency_reason = latency.verdict, f"latency {latency.reason}"
    else:
        latency_verdict = "inconclusive"
        latency_reason = "latency: no raw samples stored in the " + ("base" if not base_samples else "new") + " run"

    memory_change, memory_verdict = None, None
    base_rss, new_rss = base.get("peak_rss_bytes"), new.get("peak_rss_bytes")
    reasons = [latency_reason]
    if base_rss is not None or new_rss is not None:
        memory_change, memory_verdict = compare_values(base_rss, new_rss, min_effect_pct=memory_pct)
        if memory_change is None:
            reasons.append(f"peak memory {_bytes(base_rss)} -> {_bytes(new_rss)}: {memory_verdict}")
        else:
            reasons.append(f"peak memory {_bytes(base_rss)} -> {_bytes(new_rss)} ({memory_change:+.1f}%, "
                           f"threshold {memory_pct:g}%): {memory_verdict}")
    verdicts = {latency_verdict} | ({memory_verdict} if memory_verdict else set())
    for verdict in ("regressed", "inconclusive", "improved"):
        if verdict in verdicts:
            break
    else:
        verdict = "unchanged"
    if common["settings_changed"]:
        reasons.append("measured with different settings")
    if base.get("model_sha256") and new.get("model_sha256") and base["model_sha256"] != new["model_sha256"]:
        reasons.append(f"weights changed ({base['model_sha256'][:12]} -> {new['model_sha256'][:12]})")
    return CellComparison(
        verdict=verdict, reason="; ".join(reasons), latency=latency,
        memory_change_pct=memory_change, memory_verdict=memory_verdict, **common,
    )


def _bytes(value: int | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1048576:.1f} MiB"
