"""The report's operator section: where each board × variant's time went, per model.

From the profiles `farm bench --profile` stored (orchestrator.profiles, which does the
reading and the attribution; this module only shapes it for the template):
* a stacked bar per board × variant: ms per inference of each operator type (the model's
  slowest types by name, the rest as "other"), so a variant's new QuantizeLinear/DequantizeLinear
  time or a lost fusion shows at a glance;
* the provider split of each result (nodes and time per execution provider; a partial fallback
  to the CPU is flagged even when the session reports the accelerator);
* the operator types that moved most vs fp32 on the same board and vs the baseline run.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from orchestrator.profiles import (
    CellProfile,
    ProfileDiff,
    cell_profiles,
    diff_profiles,
    pair_across_runs,
    pair_with_variant,
    signed_ms_text,
)
from orchestrator.report.figures import PALETTE, Figure, axis, base_layout, label
from orchestrator.report.overview import row_sort_key

#: Operator types drawn by name per model (the others add up to "other").
TOP_TYPES = 10
OTHER_COLOUR = "#b8bec6"


@dataclasses.dataclass
class ProviderRow:
    board: str
    variant: str
    runtime: str
    split: str  # "CUDA 212 nodes 91 %, CPU 37 nodes 9 %: Resize, …" (orchestrator.profiles)
    partial: bool  # more than one provider ran nodes, or none ran where the session asked first
    runs: int
    wall_s: float
    cost_ratio: float | None
    coverage: float | None  # operator sum over the timed median


@dataclasses.dataclass
class ChangeRow:
    board: str
    variant: str
    against: str  # "fp32" or the baseline run id
    timed_change_ms: float | None
    op_change_ms: float
    explanation: str  # the operator types that moved most (orchestrator.profiles.ProfileDiff.explanation)
    comparable: bool  # both sides name operators the same way (same runtime's profiler)

    @property
    def timed_text(self) -> str:
        return "—" if self.timed_change_ms is None else signed_ms_text(self.timed_change_ms)

    @property
    def op_text(self) -> str:
        return signed_ms_text(self.op_change_ms)


@dataclasses.dataclass
class ModelProfiles:
    model: str
    figure: Figure
    providers: list[ProviderRow]
    vs_fp32: list[ChangeRow]
    vs_baseline: list[ChangeRow]


def profile_sections(results: Sequence[Mapping[str, Any]],
                     base_results: Sequence[Mapping[str, Any]] | None = None) -> list[ModelProfiles]:
    """One section per model with a profiled result (none: the run was measured without --profile)."""
    profiles = cell_profiles(results)
    bases = cell_profiles(base_results) if base_results else []
    sections = []
    models = sorted({p.model for p in profiles}, key=lambda m: row_sort_key("", m, ""))
    for index, model in enumerate(models):
        mine = sorted((p for p in profiles if p.model == model), key=lambda p: row_sort_key(p.board, p.model, p.variant))
        vs_fp32 = [_change(diff_profiles(b, n), "fp32") for b, n in pair_with_variant(mine, "fp32")]
        vs_base = [_change(diff_profiles(b, n), str(b.run_id)) for b, n in
                   pair_across_runs([b for b in bases if b.model == model], mine)]
        sections.append(ModelProfiles(model, _stacked_figure(index, model, mine), [_provider_row(p) for p in mine],
                                      vs_fp32, vs_base))
    return sections


def _provider_row(profile: CellProfile) -> ProviderRow:
    asked = profile.providers_requested[0] if profile.providers_requested else None
    partial = len(profile.providers) > 1 or (asked is not None and all(s.provider != asked for s in profile.providers))
    return ProviderRow(profile.board, profile.variant, profile.runtime or "", profile.fallback_text(), partial,
                       profile.runs, profile.wall_s, profile.cost_ratio, profile.coverage)


def _change(diff: ProfileDiff, against: str) -> ChangeRow:
    return ChangeRow(diff.new.board, diff.new.variant, against, diff.latency_change_ms, diff.op_change_ms,
                     diff.explanation(4), diff.same_profiler)


def _stacked_figure(index: int, model: str, profiles: Sequence[CellProfile]) -> Figure:
    """ms per inference per operator type, one bar per board × variant, stacked."""
    totals: dict[str, float] = {}
    for profile in profiles:
        for op_type, (ms, _) in profile.op_types().items():
            totals[op_type] = totals.get(op_type, 0.0) + ms
    named = [op for op, _ in sorted(totals.items(), key=lambda item: -item[1])[:TOP_TYPES]]
    bars = [label(f"{p.board} / {p.variant}") for p in profiles]
    data = []
    for colour_index, op_type in enumerate(named + ["other"]):
        values = []
        shares = []
        for profile in profiles:
            types = profile.op_types()
            if op_type == "other":
                ms = sum(v for op, (v, _) in types.items() if op not in named)
            else:
                ms = types.get(op_type, (0.0, 0))[0]
            values.append(round(ms, 4))
            shares.append(round(100.0 * ms / profile.op_ms, 1) if profile.op_ms else 0.0)
        if not any(values):
            continue
        data.append({
            "type": "bar", "name": label(op_type), "x": bars, "y": values, "customdata": shares,
            "marker": {"color": OTHER_COLOUR if op_type == "other" else PALETTE[colour_index % len(PALETTE)]},
            "hovertemplate": f"{label(op_type)}: %{{y:.3~g}} ms (%{{customdata}} %)<extra>%{{x}}</extra>",
        })
    layout = base_layout(360 + 12 * len(data), barmode="stack", xaxis=axis("board / variant"),
                         yaxis=axis("ms per inference (operator sum)"))
    return Figure(f"fig-ops-{index}", f"{model}: operator time per inference",
                  "each bar is one board × variant's profiling pass, stacked by operator type (the model's "
                  f"{len(named)} slowest types by name, the rest as other)", data, layout)


__all__ = ["ChangeRow", "ModelProfiles", "ProviderRow", "profile_sections"]
