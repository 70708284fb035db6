"""Comparison mode: a run against a baseline run, cell by cell (board × model × variant).

Latency uses `analysis.compare_latency`: the raw samples of both runs (rank test AND a
minimum effect on the medians), or the process medians when both measured with --repeats; peak
memory uses `analysis.compare_values` (one number per run, no test). The verdicts are the
analysis module's, so the report, CI gating and `farm compare` agree on what "regressed" means.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from orchestrator.analysis import VERDICTS, Comparison, compare_latency, compare_values
from orchestrator.repeats import process_p50s
from orchestrator.report.overview import (
    METRIC_BY_KEY,
    Change,
    OverviewRow,
    change,
    row_sort_key,
)

Cell = tuple[str, str, str]  # board, model, variant


@dataclasses.dataclass
class CellComparison:
    """One board × model × variant in both runs. `status` says whether it could be compared."""

    board: str
    model: str
    variant: str
    status: str  # compared | only-new | only-base | failed-new | failed-base | failed-both
    new_result_id: int | None = None
    base_result_id: int | None = None
    latency: Comparison | None = None
    latency_note: str = ""  # why there is no latency verdict
    memory_base_bytes: float | None = None
    memory_new_bytes: float | None = None
    memory_change_pct: float | None = None
    memory_verdict: str = "inconclusive"
    settings_differ: bool = False

    @property
    def latency_verdict(self) -> str:
        return self.latency.verdict if self.latency is not None else "inconclusive"

    @property
    def regressed(self) -> bool:
        return self.latency_verdict == "regressed" or self.memory_verdict == "regressed"


@dataclasses.dataclass
class RunComparison:
    base_run_id: str
    base_created_at: str
    cells: list[CellComparison]
    settings_changes: list[tuple[str, Any, Any]]  # (setting, base value, new value)

    def counts(self, what: str) -> dict[str, int]:
        """Verdict -> number of compared cells, for "latency" or "memory"."""
        counts = dict.fromkeys(VERDICTS, 0)
        for cell in self.cells:
            if cell.status == "compared":
                counts[cell.latency_verdict if what == "latency" else cell.memory_verdict] += 1
        return counts

    @property
    def regressed(self) -> list[CellComparison]:
        return [c for c in self.cells if c.regressed]

    @property
    def compared(self) -> list[CellComparison]:
        return [c for c in self.cells if c.status == "compared"]

    def summary(self) -> str:
        """One line for the terminal and the report's header."""
        latency = self.counts("latency")
        memory = self.counts("memory")
        unmatched = len(self.cells) - len(self.compared)
        text = (f"{len(self.compared)} cell(s) compared with {self.base_run_id}: latency "
                + ", ".join(f"{n} {v}" for v, n in latency.items() if n)
                + "; peak memory " + ", ".join(f"{n} {v}" for v, n in memory.items() if n))
        if not self.compared:
            text = f"no cell in common with {self.base_run_id}"
        if unmatched:
            text += f"; {unmatched} not comparable (missing or failed on one side)"
        return text


def compare_runs(
    new_results: Sequence[Mapping[str, Any]],
    base_results: Sequence[Mapping[str, Any]],
    latencies_ms: Callable[[int], Sequence[float]],
    *,
    base_run: Mapping[str, Any],
    new_settings: Mapping[str, Any] | None = None,
) -> RunComparison:
    """Match the cells of two runs and compare each. `latencies_ms(result_id)` gives raw samples.

    Cells match on board × model × variant, preferring the same settings hash when a run has
    the same cell under several settings.
    """
    new_by_cell = _by_cell(new_results)
    base_by_cell = _by_cell(base_results)
    cells: list[CellComparison] = []
    for key in sorted(set(new_by_cell) | set(base_by_cell), key=lambda k: row_sort_key(*k)):
        new = new_by_cell.get(key, [])
        base = base_by_cell.get(key, [])
        for new_result, base_result in _pair(new, base):
            cells.append(_compare_cell(key, new_result, base_result, latencies_ms))
    base_settings = base_run.get("settings") or {}
    changes = [
        (name, base_settings.get(name), (new_settings or {}).get(name))
        for name in sorted(set(base_settings) | set(new_settings or {}))
        if name not in ("boards", "models", "variants") and base_settings.get(name) != (new_settings or {}).get(name)
    ] if new_settings is not None else []
    return RunComparison(str(base_run["run_id"]), str(base_run.get("created_at") or ""), cells, changes)


def _by_cell(results: Sequence[Mapping[str, Any]]) -> dict[Cell, list[Mapping[str, Any]]]:
    cells: dict[Cell, list[Mapping[str, Any]]] = {}
    for result in results:
        cells.setdefault((str(result["board"]), str(result["model"]), str(result["variant"])), []).append(result)
    return cells


def _pair(new: list, base: list) -> list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    """Pair a cell's results of both runs: same settings hash first, then in stored order."""
    new, base = list(new), list(base)
    pairs = []
    for n in list(new):
        match = next((b for b in base if b.get("settings_hash") == n.get("settings_hash")), None)
        if match is not None:
            pairs.append((n, match))
            new.remove(n)
            base.remove(match)
    while new and base:
        pairs.append((new.pop(0), base.pop(0)))
    pairs += [(n, None) for n in new] + [(None, b) for b in base]
    return pairs


def _compare_cell(
    key: Cell,
    new: Mapping[str, Any] | None,
    base: Mapping[str, Any] | None,
    latencies_ms: Callable[[int], Sequence[float]],
) -> CellComparison:
    cell = CellComparison(*key, status="compared",
                          new_result_id=None if new is None else new.get("result_id"),
                          base_result_id=None if base is None else base.get("result_id"))
    if new is None or base is None:
        cell.status = "only-new" if base is None else "only-base"
        return cell
    new_ok, base_ok = new.get("status") == "ok", base.get("status") == "ok"
    if not (new_ok and base_ok):
        cell.status = "failed-both" if not (new_ok or base_ok) else ("failed-new" if not new_ok else "failed-base")
        return cell
    cell.settings_differ = new.get("settings_hash") != base.get("settings_hash")
    base_samples = list(latencies_ms(int(base["result_id"])))
    new_samples = list(latencies_ms(int(new["result_id"])))
    try:
        cell.latency = compare_latency(base_samples, new_samples, process_p50s(base), process_p50s(new))
    except ValueError as exc:
        cell.latency_note = f"no verdict: {exc}"
    cell.memory_base_bytes = base.get("peak_rss_bytes")
    cell.memory_new_bytes = new.get("peak_rss_bytes")
    cell.memory_change_pct, cell.memory_verdict = compare_values(cell.memory_base_bytes, cell.memory_new_bytes)
    return cell


_TONES = {"improved": "better", "regressed": "worse", "unchanged": "same", "inconclusive": "unknown"}


def attach_to_rows(rows: Sequence[OverviewRow], comparison: RunComparison) -> None:
    """Give each overview row its change vs the baseline run (p50 with the sample test's verdict)."""
    by_result = {c.new_result_id: c for c in comparison.cells if c.new_result_id is not None}
    for row in rows:
        cell = by_result.get(row.result_id)
        if cell is None or cell.status != "compared":
            continue
        if cell.latency is not None:
            lat = cell.latency
            row.vs_base["p50"] = Change(lat.change_pct, "%", _TONES[lat.verdict], f"{lat.verdict}: {lat.reason}")
        else:
            row.vs_base["p50"] = Change(None, "%", "unknown", cell.latency_note or "no verdict")
        memory = change(METRIC_BY_KEY["memory"], cell.memory_base_bytes, cell.memory_new_bytes, "the baseline run")
        row.vs_base["memory"] = dataclasses.replace(memory, tone=_TONES[cell.memory_verdict],
                                                    title=f"{cell.memory_verdict}: {memory.title}")
