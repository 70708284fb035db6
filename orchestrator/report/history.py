"""The history of each board × model × variant: its median latency in earlier runs.

The rows come from `Store.cell_history` (ok results of the last runs up to this one, only the
columns a history needs); this module only groups them into one chart line per cell (and sweep point).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.record import same_identity
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
    cells: Mapping[tuple[str, str, str], tuple[str, Sequence[Any]]],
    max_runs: int = DEFAULT_HISTORY_RUNS,
) -> dict[tuple[str, str, str], list[HistoryPoint]]:
    """For each line (board, model, label -> its variant and what it ran on: record.identity_of;
    the label is the variant, or `fp32 · threads=2` for a sweep's point: record.cell_label), its
    ok results in the last `max_runs` runs up to and including `run` that measured any of these
    boards × models and ran on the same runtime, precision, provider, batch and threads (one line
    never mixes two runtimes or two points), oldest first. Lines that no earlier run measured are
    left out, and so are the points of a sweep that differ only in input shapes (a `--shape`
    sweep): the stored history does not tell them apart."""
    wanted = {key: value for key, value in cells.items() if not _shares_identity(key, value, cells)}
    if max_runs < 2 or not wanted:
        return {}
    lines_of: dict[tuple[str, str, str], list[tuple[tuple[str, str, str], Sequence[Any]]]] = {}
    for key, (variant, identity) in wanted.items():
        lines_of.setdefault((key[0], key[1], variant), []).append((key, identity))
    entries = store.cell_history(
        sorted({c[0] for c in wanted}), sorted({c[1] for c in wanted}),
        until=run["created_at"], last_runs=max_runs, ok_only=True,
    )
    history: dict[tuple[str, str, str], list[HistoryPoint]] = {}
    for entry in sorted(entries, key=lambda e: (e.run_created_at, e.run_id, e.result_id)):  # one x per run
        for key, identity in lines_of.get((entry.board, entry.model, entry.variant), ()):
            if not same_identity(entry.identity, identity):
                continue
            points = history.setdefault(key, [])
            if points and points[-1].run_id == entry.run_id:
                continue  # the same line twice in one run (other settings): the first stands for the run
            points.append(HistoryPoint(entry.run_id, entry.run_created_at, entry.board, entry.model, entry.variant,
                                       float(entry.latency_ms_p50), entry.runs))
    return {key: points for key, points in history.items() if len(points) >= 2}


def _shares_identity(key: tuple[str, str, str], value: tuple[str, Sequence[Any]],
                     cells: Mapping[tuple[str, str, str], tuple[str, Sequence[Any]]]) -> bool:
    """Another line of the same board × model × variant ran on the same identity."""
    variant, identity = value
    return any(other != key and other[:2] == key[:2] and other_variant == variant and tuple(other_identity) ==
               tuple(identity) for other, (other_variant, other_identity) in cells.items())
