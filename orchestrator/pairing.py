"""Paired re-measurement: the baseline's own model file, measured again beside the new one.

Why: a model's median moves 10-15 % between fresh processes on a shared machine, mostly with
the machine's load, which drifts; a run measured tonight and one measured last night cannot
resolve a 10 % change however many samples each has. farm keeps what it measured by content
hash, so a gated run can put the baseline's exact file (the original model, or the variant file
in the variant cache) back on the board and measure the two in alternating fresh processes,
round by round (B A, A B, ...): drift hits both sides of a round alike and the per-round ratio
cancels it (analysis.compare_paired). The stored baseline stays the long-term reference.

A cell is paired only when its baseline result exists, its file(s) are still on this controller
with the hash that result recorded, and they differ from the new cell's (the same file again
would measure nothing but the machine; that cell is judged against the stored baseline).
Rounds: at least MIN_PAIRS_TO_TEST (and --repeats), more while the rounds so far cannot decide,
up to MAX_PAIRED_ROUNDS.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from orchestrator.analysis import MIN_PAIRS_TO_TEST
from orchestrator.boards import Board
from orchestrator.compare import preferred_result
from orchestrator.hashing import file_sha256
from orchestrator.plan import Cell, ModelFiles
from orchestrator.record import IDENTITY_EXPORT_FIELDS, fed_shapes, identity_of, same_identity
from orchestrator.runtimes import board_runtime
from orchestrator.settings import BenchSettings

#: The most interleaved rounds a paired cell gets before its verdict stays inconclusive.
MAX_PAIRED_ROUNDS = 24

PairKey = tuple[str, str, str, str]  # board, model, variant, sweep point (Cell.sweep)


@dataclasses.dataclass(frozen=True)
class PairedBaseline:
    """The baseline result a cell is paired with, and its model file(s) on this controller."""

    result_id: int
    run_id: str
    files: ModelFiles


def round_bounds(repeats: int, paired: bool) -> tuple[int, int]:
    """(fewest, most) rounds of a cell: `repeats` for an unpaired one; a paired one needs enough
    rounds to be decided (MIN_PAIRS_TO_TEST) and may take up to MAX_PAIRED_ROUNDS."""
    if not paired:
        return repeats, repeats
    fewest = max(repeats, MIN_PAIRS_TO_TEST)
    return fewest, max(fewest, MAX_PAIRED_ROUNDS)


def paired_baselines(store: Any, baseline_run_id: str, boards: Sequence[Board], cells: Sequence[Cell],
                     settings: BenchSettings) -> dict[PairKey, PairedBaseline]:
    """Which (board, model, variant) of the plan can be measured beside its baseline's file: the
    baseline result the comparison engine will pair it with (what it ran on — runtime, batch,
    threads, input shapes — must agree, as orchestrator.compare requires), with its file(s) still
    here."""
    by_cell: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for result in store.results(baseline_run_id):
        by_cell.setdefault((result["board"], result["model"], result["variant"]), []).append(result)
    found: dict[PairKey, PairedBaseline] = {}
    for board in boards:
        for cell in cells:
            if cell.build_error is not None:
                continue
            expected = _expected_identity(cell.settings or settings, board, cell)
            candidates = [r for r in by_cell.get((board.name, cell.model.name, cell.variant), [])
                          if same_identity(identity_of(r), expected) and fed_shapes(r, cell.shapes)]
            base = preferred_result(candidates)
            if base is None or base["status"] != "ok":
                continue
            files = baseline_files(base)
            if files is None or _same_files(files, cell.files):
                continue
            found[(board.name, cell.model.name, cell.variant, cell.sweep)] = PairedBaseline(int(base["result_id"]), str(base["run_id"]), files)
    return found


def _expected_identity(settings: BenchSettings, board: Board, cell: Cell) -> tuple[Any, ...]:
    """What a cell will run on, as far as it is known before measuring (provider and precision are
    only known after: None matches anything)."""
    runtime = cell.runtime or settings.runtime or board_runtime(board.tags)
    known = {"runtime": runtime, "batch": cell.batch, "threads": settings.threads}
    return tuple(known.get(field) for field in IDENTITY_EXPORT_FIELDS)


def baseline_files(result: Mapping[str, Any]) -> ModelFiles | None:
    """The model file(s) a stored result measured, when they are still on this controller with
    the content it recorded (the original model for fp32, the variant file from the cache)."""
    details = result.get("details") or {}
    manifest = details.get("variant") or {}
    if manifest.get("path") and manifest.get("sha256"):  # a built variant: its cached file(s)
        model = _file_with(manifest["path"], manifest["sha256"])
        weights = None
        if manifest.get("weights_path"):
            weights = _file_with(manifest["weights_path"], manifest.get("weights_sha256"))
            if weights is None:
                return None
        return None if model is None else ModelFiles(model, weights)
    model = _file_with(details.get("model_path"), result.get("model_sha256"))
    return None if model is None else ModelFiles(model)


def _file_with(path: str | None, sha256: str | None) -> Path | None:
    if not path or not sha256:
        return None
    candidate = Path(path)
    if not candidate.is_file():
        return None
    return candidate if file_sha256(candidate) == sha256 else None


def _same_files(a: ModelFiles, b: ModelFiles) -> bool:
    digest = file_sha256
    same_weights = (a.weights is None and b.weights is None) or (
        a.weights is not None and b.weights is not None and digest(a.weights) == digest(b.weights))
    return digest(a.model) == digest(b.model) and same_weights
