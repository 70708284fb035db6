"""The comparison with a baseline run as the report shows it: verdicts come from the one engine.

`orchestrator.compare` decides every verdict (the same call `farm compare` and gating make);
this module only presents them: each overview row gets its change vs the baseline coloured by
the engine's verdict, and the run settings that differ are listed.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from orchestrator.compare import CellComparison, RunComparison
from orchestrator.report.overview import METRIC_BY_KEY, Change, OverviewRow, change

_TONES = {"improved": "better", "regressed": "worse", "unchanged": "same", "inconclusive": "unknown", None: "unknown"}

#: What the comparison table says for a cell that could not be compared.
NOT_COMPARED_TEXT = {
    "only-new": "only in this run", "only-base": "only in the baseline run", "failed-new": "failed in this run",
    "failed-base": "failed in the baseline run", "failed-both": "failed in both runs",
}


def not_compared_text(cell: CellComparison) -> str:
    """Why a cell has no figure verdicts, in the words of the comparison table."""
    if cell.verdict != "failed":
        return NOT_COMPARED_TEXT[cell.verdict]
    if cell.base_status != "ok" and cell.new_status != "ok":
        return NOT_COMPARED_TEXT["failed-both"]
    return NOT_COMPARED_TEXT["failed-new" if cell.new_status != "ok" else "failed-base"]


def settings_changes(base_settings: Mapping[str, Any], new_settings: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, base value, new value) for every run setting that differs (not the matrix)."""
    return [
        (name, base_settings.get(name), new_settings.get(name))
        for name in sorted(set(base_settings) | set(new_settings))
        if name not in ("boards", "models", "variants", "plan") and base_settings.get(name) != new_settings.get(name)
    ]


def attach_to_rows(rows: Sequence[OverviewRow], comparison: RunComparison) -> None:
    """Give each overview row its change vs the baseline run, coloured by the engine's verdicts."""
    by_result = {c.new_result_id: c for c in comparison.cells if c.new_result_id is not None}
    for row in rows:
        cell = by_result.get(row.result_id)
        if cell is None or not cell.compared:
            continue
        if cell.latency is not None:
            lat = cell.latency
            row.vs_base["p50"] = Change(lat.change_pct, "%", _TONES[lat.verdict], f"{lat.verdict}: {lat.reason}")
        else:
            row.vs_base["p50"] = Change(None, "%", "unknown", cell.reason)
        memory = change(METRIC_BY_KEY["memory"], cell.base_peak_rss_bytes, cell.new_peak_rss_bytes, "the baseline run")
        verdict = cell.memory_verdict or "inconclusive"
        row.vs_base["memory"] = dataclasses.replace(memory, tone=_TONES[cell.memory_verdict],
                                                    title=f"{verdict}: {memory.title}")
