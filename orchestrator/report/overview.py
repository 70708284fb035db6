"""The overview table: one row per stored result, its change vs fp32 and the best markers.

Pure logic on the records `Store.results` returns (no I/O, no HTML), so unit tests can check
exactly which variant gets which marker.

Latency and peak memory vs fp32 carry the verdict of THE comparison engine
(`orchestrator.compare.compare_to_reference`: the variant's raw samples against fp32's on the
same board and run, a rank test AND a minimum effect), so an int8 variant 7 % faster with
overlapping intervals is "inconclusive", not green. Size (a file, no noise) follows
`orchestrator.analysis.compare_values` (from 5 %), accuracy a ±1 point rule (see
ACCURACY_EFFECT_PT): the engine compares latency and memory, not those.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Literal, Mapping, Sequence

from orchestrator.analysis import DEFAULT_MIN_EFFECT_PCT, NOISY_CV, compare_values
from orchestrator.compare import CellComparison, compare_to_reference
from orchestrator.record import cell_label, energy_of
from orchestrator.report.pareto import pareto_front
from orchestrator.runtimes import mixes_runtimes, runtime_label

#: A change of accuracy of at least this many percentage points counts as better/worse.
#: Why 1 point: the standard error of a top-1 or mAP50 figure on an evaluation set of a
#: few hundred to a few thousand samples is 0.3-1 point, so smaller steps are mostly the
#: luck of the set, not the variant.
ACCURACY_EFFECT_PT = 1.0

#: The order variants are listed in (the rest follow alphabetically): the reference first,
#: then from the least to the most invasive change.
VARIANT_ORDER = ("fp32", "optimized", "fp16", "int8-dynamic", "int8-static", "prune-l1", "prune-l1-layerwise",
                 "openvino-ir", "openvino-ir-fp16")

Better = Literal["lower", "higher"]
Tone = Literal["better", "worse", "same", "unknown"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One measured figure of a result: where it is read from and which direction is better."""

    key: str
    label: str  # column header
    unit: str  # "ms", "bytes", "fps", "fraction"
    better: Better
    best_title: str  # what the ★ means in this column
    read: Callable[[Mapping[str, Any]], float | None]


def _column(name: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda result: finite_or_none(result.get(name))


def export_of(result: Mapping[str, Any]) -> dict[str, Any]:
    """The measurement fields `runner.result_row` puts in details.export ({} for old rows)."""
    details = result.get("details") or {}
    export = details.get("export") if isinstance(details, dict) else None
    return export if isinstance(export, dict) else {}


def accuracy_of(result: Mapping[str, Any]) -> float | None:
    """The task metric (a fraction: top-1, mAP50) when the job measured one, else None."""
    return finite_or_none(export_of(result).get("accuracy"))


METRICS: tuple[Metric, ...] = (
    Metric("p50", "p50 ms", "ms", "lower", "lowest median latency", _column("latency_ms_p50")),
    Metric("p99", "p99 ms", "ms", "lower", "lowest p99 latency", _column("latency_ms_p99")),
    Metric("fps", "FPS", "fps", "higher", "highest single-stream FPS", _column("fps")),
    Metric("memory", "peak RSS", "bytes", "lower", "lowest peak memory", _column("peak_rss_bytes")),
    Metric("size", "size", "bytes", "lower", "smallest model file", _column("model_size_bytes")),
    Metric("accuracy", "accuracy", "fraction", "higher", "highest accuracy", accuracy_of),
    Metric("energy", "mJ/inf", "mJ", "lower", "lowest energy per inference",
           lambda result: finite_or_none(energy_of(result))),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}

#: The metrics whose change vs fp32 has a column of its own.
CHANGE_METRICS = ("p50", "memory", "size", "accuracy")


@dataclasses.dataclass(frozen=True)
class Change:
    """A change vs a reference. `value` is percent, or percentage points for accuracy."""

    value: float | None
    unit: Literal["%", "pt"]
    tone: Tone
    title: str  # one sentence for the tooltip

    @property
    def text(self) -> str:
        if self.value is None:
            return "—"
        return f"{self.value:+.1f} {self.unit}".replace("-", "−")


@dataclasses.dataclass(frozen=True)
class Flag:
    """A badge on a row (noisy, truncated, throttled, clock drop, Pareto-optimal)."""

    text: str
    tone: Literal["warn", "info", "good"]
    title: str


@dataclasses.dataclass
class OverviewRow:
    """One result as the overview table shows it."""

    result_id: int
    board: str
    model: str
    variant: str
    status: str
    error_kind: str | None
    error_message: str | None
    runs: int | None
    settings_hash: str
    values: dict[str, float | None]  # metric key -> value in the metric's unit (ms, bytes, fraction)
    accuracy_metric: str | None
    accuracy_error: str | None
    runtime: str | None = None  # runtime_label(): what ran the model, at what precision
    sweep: str = ""  # the sweep point (orchestrator.sweep: "threads=2, batch=8"); "" when nothing was swept
    best: dict[str, str] = dataclasses.field(default_factory=dict)  # metric key -> why it is starred
    vs_fp32: dict[str, Change] = dataclasses.field(default_factory=dict)
    vs_base: dict[str, Change] = dataclasses.field(default_factory=dict)
    flags: list[Flag] = dataclasses.field(default_factory=list)
    pareto: bool = False
    is_reference: bool = False  # the fp32 row the others are compared with
    vs_fp32_cell: CellComparison | None = None  # the engine's comparison with fp32 (latency and memory)
    size_is_variant: bool = True  # False: a failed variant whose own file was never made

    @property
    def vs_fp32_verdict(self) -> str | None:
        """The engine's latency verdict vs fp32 (improved, unchanged, regressed, inconclusive);
        "reference" for fp32 itself; None when there is nothing to compare with."""
        if self.is_reference:
            return "reference"
        if self.vs_fp32_cell is None:
            return None
        return self.vs_fp32_cell.latency_verdict or "inconclusive"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        """The variant, and its sweep point when the run swept settings: `fp32 · threads=2`."""
        return cell_label(self.variant, self.sweep)

    @property
    def cell(self) -> tuple[str, str, str]:
        return (self.board, self.model, self.variant)


def variant_sort_key(variant: str) -> tuple[int, str]:
    base = variant.split(":", 1)[0]
    rank = VARIANT_ORDER.index(base) if base in VARIANT_ORDER else len(VARIANT_ORDER)
    return (rank, _natural(variant))


def _natural(text: str) -> str:
    """Sort key so that `board10` follows `board9` (numbers zero-padded)."""
    return re.sub(r"\d+", lambda m: m.group().zfill(12), text.lower())


def row_sort_key(board: str, model: str, variant: str) -> tuple:
    return (_natural(board), _natural(model), variant_sort_key(variant))


LatencySource = Callable[[int], Sequence[float]]


def build_rows(results: Sequence[Mapping[str, Any]], latencies_ms: LatencySource | None = None,
               thresholds: Mapping[str, float] | None = None) -> list[OverviewRow]:
    """Rows for every result (failed ones too), sorted board, model, variant; with changes
    vs fp32, best markers, Pareto membership and flags filled in.

    `latencies_ms(result_id)` gives a result's raw samples for the engine's verdict vs fp32
    (without it every latency verdict is inconclusive); `thresholds` are compare_to_reference's
    min_effect_pct / memory_min_effect_pct / alpha (default: farm's)."""
    rows = [_row(r) for r in results]
    rows.sort(key=lambda r: (*row_sort_key(r.board, r.model, r.variant), _natural(r.sweep), r.result_id))
    records = {int(r.get("result_id") or 0): r for r in results}
    fill_changes_vs_fp32(rows, records, latencies_ms or (lambda result_id: ()), thresholds or {})
    mark_best(rows)
    mark_pareto(rows)
    mark_runtimes(rows)
    for row in rows:
        if row.pareto:
            row.flags.append(Flag("Pareto", "good", "no other variant of this model on this board is "
                                  "smaller, faster and (when measured) more frugal and accurate at once"))
    return rows


def _row(result: Mapping[str, Any]) -> OverviewRow:
    export = export_of(result)
    row = OverviewRow(
        result_id=int(result.get("result_id") or 0),
        board=str(result["board"]),
        model=str(result["model"]),
        variant=str(result["variant"]),
        status=str(result.get("status") or "failed"),
        error_kind=result.get("error_kind"),
        error_message=result.get("error_message"),
        runs=result.get("runs"),
        settings_hash=str(result.get("settings_hash") or ""),
        values={m.key: m.read(result) for m in METRICS},
        accuracy_metric=export.get("accuracy_metric"),
        accuracy_error=export.get("accuracy_error"),
        runtime=runtime_label(export),
        sweep=str(export.get("sweep") or ""),
    )
    if not row.ok:
        row.values = {key: None for key in row.values}
        # a variant that could not be built has no file of its own: its size is not fp32's
        own_size = ((result.get("details") or {}).get("variant") or {}).get("size_bytes")
        row.size_is_variant = own_size is not None or row.variant == "fp32"
        row.values["size"] = finite_or_none(own_size if own_size is not None else
                                            result.get("model_size_bytes") if row.variant == "fp32" else None)
        return row
    row.flags.extend(_measurement_flags(export, result.get("details") or {}))
    return row


def _measurement_flags(export: Mapping[str, Any], details: Mapping[str, Any] | None = None) -> list[Flag]:
    flags = []
    if export.get("provider_fallback"):
        requested = ((details or {}).get("providers_requested") or ["the requested provider"])[0]
        flags.append(Flag("fallback", "warn", f"asked for {requested}, ran on {export.get('provider') or 'another'}: "
                          "onnxruntime fell back (use --strict to make this a failure)"))
    if export.get("throttled"):
        flags.append(Flag("throttled", "warn", "the board reported throttling while this was measured"))
    if export.get("freq_drop"):
        flags.append(Flag("clock drop", "warn", "a core ran below 90 % of its clock before the measurement"))
    if export.get("noisy"):
        robust = finite_or_none(export.get("latency_ms_robust_cv"))
        between = finite_or_none(export.get("latency_ms_process_spread"))
        spread = "; ".join(text for text in (
            f"samples spread {robust * 100:.0f} % (robust CV)" if robust is not None else "",
            f"process medians spread {between * 100:.0f} %" if between is not None else "") if text)
        flags.append(Flag("noisy", "warn", f"latency spread above {NOISY_CV:.0%}{f' ({spread})' if spread else ''}: "
                                           "compare with care"))
    if export.get("truncated"):
        flags.append(Flag("truncated", "info", "stopped by --max-seconds before --runs was reached"))
    return flags


def mark_runtimes(rows: Sequence[OverviewRow]) -> None:
    """Badge each row of a board × model whose variants ran on different runtimes or precisions."""
    for group in _groups(rows).values():
        if mixes_runtimes(group, lambda r: r.runtime):
            for row in group:
                if row.runtime:
                    row.flags.append(Flag(row.runtime, "info", f"measured on {row.runtime}; the other variants "
                                          "of this model on this board did not all run on the same runtime"))


def _groups(rows: Sequence[OverviewRow]) -> dict[tuple[str, str], list[OverviewRow]]:
    groups: dict[tuple[str, str], list[OverviewRow]] = {}
    for row in rows:
        if row.ok:
            groups.setdefault((row.board, row.model), []).append(row)
    return groups


_TONES: dict[str | None, Tone] = {"improved": "better", "regressed": "worse", "unchanged": "same"}


def fill_changes_vs_fp32(rows: Sequence[OverviewRow], records: Mapping[int, Mapping[str, Any]],
                         latencies_ms: LatencySource, thresholds: Mapping[str, float]) -> None:
    """Each ok row's change vs the fp32 row of the same board × model (same settings first, then
    the same sweep point): latency and memory judged by the comparison engine, size and accuracy
    by their rules."""
    for group in _groups(rows).values():
        references = [r for r in group if r.variant == "fp32"]
        for row in group:
            if row.variant == "fp32":
                row.is_reference = True
                continue
            same = [r for r in references if r.settings_hash == row.settings_hash]
            point = [r for r in references if r.sweep == row.sweep]
            reference = (same or point or references or [None])[0]
            if reference is None:
                continue
            for key in ("size", "accuracy"):
                row.vs_fp32[key] = change(METRIC_BY_KEY[key], reference.values[key], row.values[key], "fp32")
            if reference.result_id not in records or row.result_id not in records:
                continue
            cell = compare_to_reference(records[reference.result_id], records[row.result_id], latencies_ms,
                                        **thresholds)
            row.vs_fp32_cell = cell
            row.vs_fp32["p50"] = engine_change(cell, "fp32")
            row.vs_fp32["memory"] = memory_change(cell, "fp32")


def engine_change(cell: CellComparison, against: str) -> Change:
    """The latency change of a compared cell, coloured by the engine's verdict."""
    lat = cell.latency
    if lat is None:
        return Change(None, "%", "unknown", cell.reason)
    return Change(lat.change_pct, "%", _TONES.get(lat.verdict, "unknown"), f"{lat.verdict} vs {against}: {lat.reason}")


def memory_change(cell: CellComparison, against: str) -> Change:
    """The peak-memory change of a compared cell, coloured by the engine's memory verdict."""
    verdict = cell.memory_verdict or "inconclusive"
    pct = cell.memory_change_pct
    title = f"{verdict} vs {against}" + ("" if pct is None else f": {pct:+.1f} %")
    return Change(pct, "%", _TONES.get(cell.memory_verdict, "unknown"), title)


def change(metric: Metric, base: float | None, new: float | None, against: str) -> Change:
    """The change of one metric from `base` to `new`, with its tone (better/worse/same)."""
    if metric.unit == "fraction":
        if base is None or new is None:
            return Change(None, "pt", "unknown", f"accuracy not measured on both sides ({against})")
        points = (new - base) * 100.0
        tone: Tone = "same"
        if points >= ACCURACY_EFFECT_PT:
            tone = "better"
        elif points <= -ACCURACY_EFFECT_PT:
            tone = "worse"
        return Change(points, "pt", tone, f"{points:+.2f} percentage points vs {against} "
                      f"(coloured from ±{ACCURACY_EFFECT_PT:g} pt)")
    if metric.better == "higher":  # compare_values treats bigger as worse
        pct, verdict = compare_values(None if base is None else -base, None if new is None else -new)
        pct = None if pct is None else -pct
    else:
        pct, verdict = compare_values(base, new)
    tone = {"improved": "better", "regressed": "worse", "unchanged": "same"}.get(verdict, "unknown")
    if pct is None:
        return Change(None, "%", tone, f"no relative change ({against} value missing or zero)")
    return Change(pct, "%", tone, f"{pct:+.1f} % vs {against} (coloured from ±{DEFAULT_MIN_EFFECT_PCT:g} %)")


def mark_best(rows: Sequence[OverviewRow]) -> None:
    """★ the best variant per board × model and metric (ties all get it); needs two candidates."""
    for group in _groups(rows).values():
        for metric in METRICS:
            valued = [(r, r.values[metric.key]) for r in group if r.values[metric.key] is not None]
            if len(valued) < 2:
                continue
            pick = min if metric.better == "lower" else max
            best = pick(v for _, v in valued)
            for row, value in valued:
                if math.isclose(value, best, rel_tol=1e-12, abs_tol=0.0):
                    row.best[metric.key] = f"{metric.best_title} of the {len(valued)} variants of {row.model} on {row.board}"


def pareto_objectives(rows: Sequence[OverviewRow]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The objectives of one board × model: size and p50, plus energy per inference and accuracy
    when every row has them."""
    keys, senses = ["size", "p50"], ["min", "min"]
    for key, sense in (("energy", "min"), ("accuracy", "max")):
        if rows and all(r.values[key] is not None for r in rows):
            keys.append(key)
            senses.append(sense)
    return tuple(keys), tuple(senses)


def mark_pareto(rows: Sequence[OverviewRow]) -> None:
    """Flag the rows on the Pareto front of their board × model (needs two candidates)."""
    for group in _groups(rows).values():
        candidates = [r for r in group if r.values["size"] is not None and r.values["p50"] is not None]
        if len(candidates) < 2:
            continue
        keys, senses = pareto_objectives(candidates)
        points = [[r.values[k] for k in keys] for r in candidates]
        for index in pareto_front(points, senses):
            candidates[index].pareto = True


def finite_or_none(value: Any) -> float | None:
    """A finite float, or None for None, booleans, text and NaN/inf."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
