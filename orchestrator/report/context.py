"""Gather what a report shows from the store, as plain data (no HTML here).

`build_context` reads one run (and optionally a baseline run and the earlier runs of the same
cells), and hands the template dataclasses and plain dicts: the overview rows, the charts as
plotly JSON, the comparison, the environment and the failures.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Mapping, Sequence

from orchestrator.report import charts, timeseries
from orchestrator.report.charts import ResultSeries
from orchestrator.analysis import DEFAULT_MIN_EFFECT_PCT
from orchestrator.compare import RunComparison, compare_records, refuse_self_comparison
from orchestrator.record import identity_of
from orchestrator.report.comparison import attach_to_rows, settings_changes
from orchestrator.report.figures import Figure
from orchestrator.report.history import DEFAULT_HISTORY_RUNS, latency_history
from orchestrator.report.matrix import build_matrices
from orchestrator.report.overview import (
    METRICS,
    OverviewRow,
    build_rows,
    export_of,
    finite_or_none,
    row_sort_key,
)
from orchestrator.report.profiles import profile_sections
from orchestrator.store import Store

#: Board facts shown in the environment table, in this order (all facts are in the details).
#: Cores and memory come first, as the job saw them (BoardEnvironment.cpu_text / memory_text).
BOARD_FACTS = (
    ("arch", "arch"), ("cpu_model", "CPU"), ("os", "OS"), ("kernel", "kernel"), ("python_version", "Python"),
    ("numpy_version", "numpy"), ("onnxruntime_version", "onnxruntime"), ("onnxruntime_providers", "providers"),
    ("governors", "governor"), ("throttle", "throttle state"), ("agent_version", "agent"),
)


@dataclasses.dataclass
class BoardEnvironment:
    name: str
    facts: dict[str, Any]
    providers_used: list[str]  # execution providers the jobs ran on (details.provider)
    results: int
    failed: int

    @property
    def memory_text(self) -> str:
        """The memory a job could use: the board's cgroup limit when it has one below the
        machine's RAM (a lab board reports 1 GiB on a 24 GiB host), else the RAM."""
        return memory_text(self.facts)

    @property
    def cpu_text(self) -> str:
        """Cores a job could use: a cgroup CPU quota, else the usable (affinity) cores, of all."""
        return cpu_text(self.facts)


def _limits(facts: Mapping[str, Any]) -> Mapping[str, Any]:
    limits = facts.get("cgroup_limits")
    return limits if isinstance(limits, dict) else {}


def memory_text(facts: Mapping[str, Any]) -> str:
    from orchestrator.units import human_bytes

    total = finite_or_none(facts.get("mem_total_bytes"))
    limit = finite_or_none(_limits(facts).get("memory_limit_bytes"))
    if limit is not None and (total is None or limit < total):
        host = f"; machine {human_bytes(total)}" if total is not None else ""
        return f"{human_bytes(limit)} (cgroup limit{host})"
    return "—" if total is None else human_bytes(total)


def cpu_text(facts: Mapping[str, Any]) -> str:
    cores = facts.get("cpu_cores")
    usable = facts.get("cpu_cores_available")
    quota = finite_or_none(_limits(facts).get("cpu_quota_cores"))
    of = f" of {cores}" if cores else ""
    if quota is not None and (usable is None or quota < float(usable)):
        return f"{quota:g} (cgroup quota){of}"
    if usable is not None and cores is not None and usable != cores:
        return f"{usable} usable{of}"
    return "—" if cores is None else str(cores)


@dataclasses.dataclass
class Failure:
    board: str
    model: str
    variant: str
    kind: str
    reason: str


@dataclasses.dataclass
class VariantInfo:
    """What was done to make a variant (the manifest `details.variant` records)."""

    model: str
    variant: str
    size_bytes: float | None
    gzip_bytes: float | None
    sparsity: float | None
    fidelity_cosine: float | None
    actions: list[str]


@dataclasses.dataclass
class Highlight:
    """The pick per board × model: fastest, smallest, most accurate, and the Pareto set."""

    board: str
    model: str
    fastest: OverviewRow | None
    smallest: OverviewRow | None
    most_accurate: OverviewRow | None
    pareto: list[str]


def build_context(
    store: Store,
    run_id: str,
    compare_run_id: str | None = None,
    history: int = DEFAULT_HISTORY_RUNS,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Everything the template needs for one run (and its comparison with `compare_run_id`).

    `history` is how many runs (this one included) the history charts go back; 0 turns them off.
    `thresholds` are orchestrator.compare.compare_records' min_effect_pct / memory_min_effect_pct
    / alpha (default: farm's), so a report shows the verdicts its gate used.
    """
    run = store.get_run(run_id)
    results = store.results(run["run_id"])
    series = load_series(store, results)
    rows = build_rows(results, lambda rid: series[rid].latency_ms if rid in series else (), thresholds)

    comparison: RunComparison | None = None
    base_run = None
    base_results: list[dict[str, Any]] | None = None
    if compare_run_id is not None:
        base_run = store.get_run(compare_run_id)
        refuse_self_comparison(base_run["run_id"], run["run_id"])
        base_results = store.results(base_run["run_id"])
        comparison = compare_records(
            base_results, results, lambda rid: series[rid].latency_ms if rid in series else store.series(rid)[0],
            base_run_id=base_run["run_id"], new_run_id=run["run_id"], **(thresholds or {}),
        )
        attach_to_rows(rows, comparison)

    ok_rows = [r for r in rows if r.ok]
    results_by_id = {r["result_id"]: r for r in results}
    lines = {(r.board, r.model, r.label): (r.variant, identity_of(results_by_id[r.result_id])) for r in ok_rows}
    past = latency_history(store, run, lines, history) if history else {}
    thermal = timeseries.has_thermal_data(series)
    profiles = profile_sections(results, base_results)  # farm bench --profile: where the time went
    figures: dict[str, list[Figure]] = {
        "comparison": [f for f in [charts.comparison_figure(comparison)] if f] if comparison else [],
        "latency": charts.latency_figures(rows, series),
        "tradeoff": charts.tradeoff_figures(rows),
        "energy": charts.energy_figures(rows),
        "memory": timeseries.memory_cpu_figures(rows, series),
        "thermal": timeseries.thermal_figures(rows, series) if thermal else [],
        "history": charts.history_figures(past, run["run_id"]),
        "profiles": [section.figure for section in profiles],
    }
    return {
        "run": run,
        "results": results,
        "ok_results": [r for r in results if r["status"] == "ok"],
        "failed_results": [r for r in results if r["status"] != "ok"],
        "boards": board_facts(results),
        "settings": run_settings(run["settings"]),
        "controller": run["controller"],
        "rows": rows,
        "matrices": build_matrices(rows),
        "profiles": profiles,
        "min_effect_pct": float((thresholds or {}).get("min_effect_pct", DEFAULT_MIN_EFFECT_PCT)),
        "metrics": METRICS,
        "accuracy_measured": any(r.values["accuracy"] is not None for r in ok_rows),
        "energy_measured": any(r.values["energy"] is not None for r in ok_rows),
        "comparison": comparison,
        "base_run": base_run,
        "settings_changes": settings_changes(base_run["settings"], run["settings"]) if base_run else [],
        "figures": figures,
        "figure_specs": [f.spec() for section in figures.values() for f in section],
        "thermal_reported": thermal,
        "thermal_flags": timeseries.thermal_flags(rows, results_by_id),
        "environments": board_environments(results),
        "board_fact_columns": BOARD_FACTS,
        "failures": failures(results),
        "variants": variant_infos(results),
        "highlights": highlights(rows),
        "history_runs": len({p.run_id for points in past.values() for p in points}),
        "counts": {
            "boards": len({r.board for r in rows}),
            "models": len({r.model for r in rows}),
            "variants": len({r.variant for r in rows}),
            "results": len(rows),
            "ok": len(ok_rows),
            "failed": len(rows) - len(ok_rows),
        },
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def load_series(store: Store, results: Sequence[Mapping[str, Any]]) -> dict[int, ResultSeries]:
    """Raw latencies, sampler rows and phase marks of every ok result."""
    loaded = {}
    for result in results:
        if result["status"] != "ok":
            continue
        latency_ms, samples = store.series(result["result_id"])
        marks = (result.get("details") or {}).get("phase_marks") or []
        loaded[result["result_id"]] = ResultSeries(
            [float(x) for x in latency_ms if x is not None],
            [s for s in samples if isinstance(s, dict)],
            [m for m in marks if isinstance(m, dict)],
        )
    return loaded


def run_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The run's settings as the report lists them: the plan (boards, models, variants) is shown
    above, except the lists a sweep measured (orchestrator.sweep), which are settings too."""
    shown = {k: v for k, v in settings.items() if k != "plan"}
    sweep = ((settings.get("plan") or {}).get("sweep") or {})
    for name, values in sweep.items():
        if len(values or []) > 1:
            shown[f"sweep {name}"] = [",".join(v) if isinstance(v, list) else v for v in values]
    return shown


def board_facts(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Board name -> the facts its first job recorded ({} when it could not be reached)."""
    boards: dict[str, dict[str, Any]] = {}
    for result in results:
        if result["facts"] and result["board"] not in boards:
            boards[result["board"]] = result["facts"]
    for result in results:
        boards.setdefault(result["board"], {})
    return boards


def board_environments(results: Sequence[Mapping[str, Any]]) -> list[BoardEnvironment]:
    environments: dict[str, BoardEnvironment] = {}
    for name, facts in board_facts(results).items():
        environments[name] = BoardEnvironment(name, facts, [], 0, 0)
    for result in results:
        env = environments[result["board"]]
        env.results += 1
        env.failed += result["status"] != "ok"
        provider = (result.get("details") or {}).get("provider")
        if provider and provider not in env.providers_used:
            env.providers_used.append(str(provider))
    return sorted(environments.values(), key=lambda e: row_sort_key(e.name, "", ""))


def failures(results: Sequence[Mapping[str, Any]]) -> list[Failure]:
    """Failed jobs with their kind and reason, then jobs whose accuracy could not be measured."""
    found = [
        Failure(r["board"], r["model"], r["variant"], str(r.get("error_kind") or "failed"), str(r.get("error_message") or ""))
        for r in results if r["status"] != "ok"
    ]
    for r in results:
        error = export_of(r).get("accuracy_error")
        if r["status"] == "ok" and error:
            found.append(Failure(r["board"], r["model"], r["variant"], "accuracy", str(error)))
    return found


def variant_infos(results: Sequence[Mapping[str, Any]]) -> list[VariantInfo]:
    """One record per model × variant (the manifest is the same on every board)."""
    infos: dict[tuple[str, str], VariantInfo] = {}
    for r in results:
        key = (r["model"], r["variant"])
        if key in infos:
            continue
        manifest = (r.get("details") or {}).get("variant") or {}
        fidelity = manifest.get("fidelity") if isinstance(manifest.get("fidelity"), dict) else {}
        actions = manifest.get("actions") if isinstance(manifest.get("actions"), list) else []
        infos[key] = VariantInfo(
            r["model"], r["variant"], finite_or_none(manifest.get("size_bytes", r.get("model_size_bytes"))),
            finite_or_none(manifest.get("gzip_bytes")), finite_or_none(manifest.get("sparsity")),
            finite_or_none(fidelity.get("cosine")), [str(a) for a in actions],
        )
    return sorted(infos.values(), key=lambda v: row_sort_key("", v.model, v.variant))


def highlights(rows: Sequence[OverviewRow]) -> list[Highlight]:
    """Per board × model with at least two measured variants: which one wins what."""
    groups: dict[tuple[str, str], list[OverviewRow]] = {}
    for row in rows:
        if row.ok:
            groups.setdefault((row.board, row.model), []).append(row)
    picks = []
    for (board, model), group in groups.items():
        if len(group) < 2:
            continue
        picks.append(Highlight(board, model, _first_best(group, "p50"), _first_best(group, "size"),
                               _first_best(group, "accuracy"), [r.variant for r in group if r.pareto]))
    return picks


def _first_best(group: Sequence[OverviewRow], key: str) -> OverviewRow | None:
    return next((r for r in group if key in r.best), None)
