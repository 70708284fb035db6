"""The board × variant matrix: which variant ships on which board, one table per model.

Boards are the columns, variants the rows; each cell holds the median latency, its change vs
fp32 on that board coloured by the comparison engine's verdict (the overview rows carry it,
see overview.fill_changes_vs_fp32), and the badges people must not miss (fallback, throttled,
clock drop, truncated, noisy). Beside each variant: its file size and its accuracy, the
figures that do not depend on the board (size) or barely do (accuracy, measured per board).

Pure logic on OverviewRow (no HTML), so unit tests can check every cell.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from orchestrator.record import cell_label
from orchestrator.report.overview import Change, Flag, OverviewRow, row_sort_key, variant_sort_key

#: The badges a matrix cell shows (the Pareto and runtime badges live in the detail table).
CELL_BADGES = ("fallback", "throttled", "clock drop", "truncated", "noisy")


@dataclasses.dataclass(frozen=True)
class MatrixCell:
    """One board × variant of a model. `verdict` is the CSS/test hook: the engine's latency
    verdict vs fp32, or reference / failed / missing / unknown (no fp32 to compare with)."""

    board: str
    variant: str
    row: OverviewRow | None
    verdict: str
    badges: tuple[Flag, ...] = ()

    @property
    def p50_ms(self) -> float | None:
        return None if self.row is None else self.row.values["p50"]

    @property
    def energy_mj(self) -> float | None:
        """Energy per inference (mJ) where the board has power sensors."""
        return None if self.row is None else self.row.values.get("energy")

    @property
    def change(self) -> Change | None:
        return None if self.row is None else self.row.vs_fp32.get("p50")

    @property
    def title(self) -> str:
        """The cell's tooltip: what the colour means, in the engine's words."""
        if self.row is None:
            return f"{self.variant} was not measured on {self.board}"
        if not self.row.ok:
            return f"failed: {self.row.error_kind or 'unknown'}: {self.row.error_message or ''}".strip()
        if self.verdict == "reference":
            return "fp32: the reference the other variants on this board are compared with"
        change = self.change
        if change is None:
            return f"no fp32 result on {self.board} to compare with"
        return change.title


@dataclasses.dataclass(frozen=True)
class MatrixRow:
    """One variant of a model (at one sweep point, when the run swept settings) across the
    boards, with its size and accuracy."""

    variant: str
    size_bytes: float | None
    size_change: Change | None
    accuracy: tuple[float, float] | None  # (lowest, highest) over the boards, fractions
    accuracy_metric: str | None
    accuracy_change_pt: tuple[float, float] | None  # vs fp32, percentage points (lowest, highest)
    cells: tuple[MatrixCell, ...]
    sweep: str = ""  # the sweep point (orchestrator.sweep), "" when nothing was swept

    @property
    def label(self) -> str:
        return cell_label(self.variant, self.sweep)


@dataclasses.dataclass(frozen=True)
class ModelMatrix:
    model: str
    boards: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    accuracy_measured: bool

    @property
    def cells(self) -> list[MatrixCell]:
        return [cell for row in self.rows for cell in row.cells]


def build_matrices(rows: Sequence[OverviewRow]) -> list[ModelMatrix]:
    """One matrix per model (in the rows' order), boards and variants in the report's order; a
    run that swept settings has one row per variant × sweep point (`fp32 · threads=2`).

    A board × variant × point measured several times in one run (other settings) shows its ok
    result first, the earliest stored."""
    models = list(dict.fromkeys(r.model for r in rows))
    matrices = []
    for model in models:
        model_rows = [r for r in rows if r.model == model]
        boards = sorted(dict.fromkeys(r.board for r in model_rows), key=lambda b: row_sort_key(b, "", ""))
        variants = sorted(dict.fromkeys((r.variant, r.sweep) for r in model_rows),
                          key=lambda key: (variant_sort_key(key[0]), row_sort_key(key[1], "", "")))
        chosen: dict[tuple[str, str, str], OverviewRow] = {}
        for row in sorted(model_rows, key=lambda r: (not r.ok, r.result_id)):
            chosen.setdefault((row.board, row.variant, row.sweep), row)
        matrix_rows = [
            _matrix_row(variant, [chosen.get((board, variant, sweep)) for board in boards], boards, sweep)
            for variant, sweep in variants
        ]
        matrices.append(ModelMatrix(model, tuple(boards), tuple(matrix_rows),
                                    any(r.accuracy is not None for r in matrix_rows)))
    return matrices


def _matrix_row(variant: str, found: list[OverviewRow | None], boards: Sequence[str], sweep: str = "") -> MatrixRow:
    cells = tuple(_cell(board, variant, row) for board, row in zip(boards, found, strict=True))
    present = [r for r in found if r is not None]
    ok = [r for r in present if r.ok]
    sized = [r for r in present if r.values["size"] is not None and r.size_is_variant]
    accuracies = [r.values["accuracy"] for r in ok if r.values["accuracy"] is not None]
    changes = [r.vs_fp32["accuracy"].value for r in ok
               if r.vs_fp32.get("accuracy") is not None and r.vs_fp32["accuracy"].value is not None]
    size_change = next((r.vs_fp32["size"] for r in ok if r.vs_fp32.get("size") is not None), None)
    return MatrixRow(
        variant=variant,
        size_bytes=sized[0].values["size"] if sized else None,
        size_change=size_change,
        accuracy=(min(accuracies), max(accuracies)) if accuracies else None,
        accuracy_metric=next((r.accuracy_metric for r in ok if r.accuracy_metric), None),
        accuracy_change_pt=(min(changes), max(changes)) if changes else None,
        cells=cells,
        sweep=sweep,
    )


def _cell(board: str, variant: str, row: OverviewRow | None) -> MatrixCell:
    if row is None:
        return MatrixCell(board, variant, None, "missing")
    if not row.ok:
        return MatrixCell(board, variant, row, "failed")
    badges = tuple(f for f in row.flags if f.text in CELL_BADGES)
    return MatrixCell(board, variant, row, row.vs_fp32_verdict or "unknown", badges)


__all__ = ["CELL_BADGES", "MatrixCell", "MatrixRow", "ModelMatrix", "build_matrices"]
