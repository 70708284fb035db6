"""THE comparison engine: two sets of results, cell by cell: did latency or peak memory change?

`farm compare`, gating (orchestrator.gating), the report's colours and verdict columns
(orchestrator.report) and `farm history` all call `compare_records` / `compare_runs`, so they
give the same verdict for the same pair by construction.

Cells match by (board, model, variant), the model by its *name*: when the weights under a name
change between runs (a different `model_sha256`), the cells still match and `model_changed`
says so — catching what new weights do to a board is what comparing runs is for. What a result
ran on is part of its cell (record.IDENTITY_EXPORT_FIELDS: runtime, precision, provider, batch,
threads): onnxruntime's fp32 and OpenVINO's bf16 on one board are two cells, never a "−67 %".
When a run holds a cell under several settings, each new result is paired with the base result
of the same settings hash, else with the base's ok and newest result for the cell.

Per cell, both figures are tested with orchestrator.analysis:
* latency: when the new run re-measured the baseline's own model file beside the new one,
  interleaved (`--paired`), `compare_paired` on the per-round ratios (the machine's drift
  cancels); else `compare_samples` on the raw per-inference samples (a Mann-Whitney test AND a
  minimum effect on the medians, with a confidence interval), or, when both runs measured the
  cell in several fresh processes (`--repeats`), `compare_process_medians` on the processes'
  medians, so the drift between processes is in the test (`analysis.compare_latency` picks);
* peak memory (`peak_rss_bytes`, a single number per result): `compare_values`;
* energy per inference (`energy_mj_per_inference`: mean power × mean time per inference), only
  when both results measured it (boards with power sensors), with the latency threshold:
  `compare_energy` judges it on the latency comparison's interval scaled by the ratio of mean
  power, so a few slow outliers or the drift between processes do not fail a gate on energy
  where latency is unchanged.

The cell's verdict, first match wins:
1. `only-base` / `only-new`: the cell was measured in one run only;
2. `failed`: the job failed in either run (which one and why is in `reason`);
3. `regressed`: latency, memory or energy regressed;
4. `inconclusive`: latency or memory could not be decided (too noisy, too few samples, a value
   missing on one side);
5. `improved`: latency, memory or energy improved (and nothing regressed);
6. `unchanged`.
Memory missing in both runs (a board that cannot report it) leaves memory out of the verdict.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Mapping, Sequence

from orchestrator.analysis import (
    MIN_PROCESSES_TO_TEST, VERDICTS, Comparison, compare_energy, compare_latency, compare_paired, compare_values,
)
from orchestrator.errors import BadInputError
from orchestrator.record import (
    cell_label,
    energy_of,
    identity_of,
    identity_text,
    paired_base_p50s,
    power_of,
    process_p50s,
    same_cell,
    sweep_of,
)
from orchestrator.settings import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT_PCT, GATE_REPEATS
from orchestrator.units import mib_text

__all__ = ["CELL_VERDICTS", "CellComparison", "CellVerdict", "RunComparison", "compare_history", "compare_records",
           "compare_runs", "compare_to_reference"]

CellVerdict = Literal["improved", "unchanged", "regressed", "inconclusive", "failed", "only-base", "only-new"]
CELL_VERDICTS: tuple[str, ...] = ("regressed", "failed", "inconclusive", "improved", "unchanged", "only-base", "only-new")
CellKey = tuple[str, str, str]  # board, model, variant


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
    base_result_id: int | None = None
    new_result_id: int | None = None
    identity: str = ""  # what the cell ran on (runtime, precision, batch, threads): record.identity_text
    sweep: str = ""  # the cell's sweep point ("batch=8, threads=2"; record.sweep_of), "" outside a sweep
    base_energy_mj: float | None = None  # energy per inference (mJ), where the board has power sensors
    new_energy_mj: float | None = None
    energy_change_pct: float | None = None
    energy_verdict: str | None = None  # a Verdict, or None unless both runs measured energy

    @property
    def key(self) -> CellKey:
        return (self.board, self.model, self.variant)

    @property
    def label(self) -> str:
        """The variant, and its sweep point when there is one: `fp32 · threads=2`."""
        return cell_label(self.variant, self.sweep)

    @property
    def compared(self) -> bool:
        """Both runs measured the cell (ok on both sides), so it has figure verdicts."""
        return self.base_status == "ok" and self.new_status == "ok"

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

    def metric_counts(self, metric: str) -> dict[str, int]:
        """Compared cells per verdict of one figure: "latency", "memory" or "energy" (energy: only
        the cells both runs measured it in)."""
        found = dict.fromkeys(VERDICTS, 0)
        for cell in self.compared:
            if metric == "energy":
                if cell.energy_verdict is not None:
                    found[cell.energy_verdict] += 1
                continue
            verdict = cell.latency_verdict if metric == "latency" else cell.memory_verdict
            found[verdict or "inconclusive"] += 1
        return found

    def with_verdict(self, *verdicts: str) -> list[CellComparison]:
        return [cell for cell in self.cells if cell.verdict in verdicts]

    @property
    def compared(self) -> list[CellComparison]:
        return [cell for cell in self.cells if cell.compared]

    @property
    def regressed(self) -> list[CellComparison]:
        return self.with_verdict("regressed")

    def summary(self) -> str:
        """One line for the terminal and the report's header."""
        if not self.compared:
            text = f"no cell in common with {self.base_run_id}"
        else:
            latency, memory = self.metric_counts("latency"), self.metric_counts("memory")
            text = (f"{len(self.compared)} cell(s) compared with {self.base_run_id}: latency "
                    + ", ".join(f"{n} {v}" for v, n in latency.items() if n)
                    + "; peak memory " + ", ".join(f"{n} {v}" for v, n in memory.items() if n))
            energy = self.metric_counts("energy")
            if any(energy.values()):
                text += "; energy " + ", ".join(f"{n} {v}" for v, n in energy.items() if n)
        unmatched = len(self.cells) - len(self.compared)
        if unmatched:
            text += f"; {unmatched} not comparable (missing or failed on one side)"
        return text

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
    store: Any,
    base_run_id: str,
    new_run_id: str,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
    *,
    memory_min_effect_pct: float | None = None,
) -> RunComparison:
    """Compare every cell of `new_run_id` with `base_run_id`, reading both from a Store.

    Run ids may be full ids, unique prefixes, `latest` or `tag:NAME`. `min_effect_pct` is the
    smallest latency change (%) that counts, `memory_min_effect_pct` the smallest peak-memory
    change (default: the same); `alpha` is the rank test's significance level.
    """
    base_id = store.resolve_run_id(base_run_id)
    new_id = store.resolve_run_id(new_run_id)
    refuse_self_comparison(base_id, new_id, base_run_id, new_run_id)
    base = store.query_results(base_id, with_result_id=True)
    new = store.query_results(new_id, with_result_id=True)
    samples = store.latency_samples([r["result_id"] for r in (*base, *new) if r["status"] == "ok"])
    return compare_records(base, new, lambda rid: samples.get(rid) or [], base_run_id=base_id, new_run_id=new_id,
                           min_effect_pct=min_effect_pct, alpha=alpha, memory_min_effect_pct=memory_min_effect_pct)


def refuse_self_comparison(base_id: str, new_id: str, base_spec: str = "", new_spec: str = "") -> None:
    """A run compared with itself is always "unchanged": a silent pass. BadInputError instead
    (`farm compare RUN` compares RUN with `latest`, which may be RUN itself)."""
    if base_id == new_id:
        named = f" ({base_spec} and {new_spec} name the same run)" if base_spec != new_spec else ""
        raise BadInputError(f"run {new_id} would be compared with itself{named}: name an earlier baseline")


def compare_records(
    base_records: Sequence[Mapping[str, Any]],
    new_records: Sequence[Mapping[str, Any]],
    latencies_ms: Callable[[int], Sequence[float]],
    *,
    base_run_id: str,
    new_run_id: str,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
    memory_min_effect_pct: float | None = None,
) -> RunComparison:
    """Compare two runs' result records (flat export records or stored results, each with its
    `result_id`); `latencies_ms(result_id)` gives a result's raw samples."""
    memory_pct = min_effect_pct if memory_min_effect_pct is None else memory_min_effect_pct
    base_by_key, new_by_key = _by_key(base_records), _by_key(new_records)
    cells = []
    for key in sorted(set(base_by_key) | set(new_by_key)):
        bases, news = base_by_key.get(key, []), new_by_key.get(key, [])
        for base, new in _pairs(bases, news):
            cells.append(_compare_cell(key, base, new, latencies_ms, min_effect_pct, memory_pct, alpha))
    return RunComparison(base_run_id, new_run_id, float(min_effect_pct), float(memory_pct), float(alpha), tuple(cells))


def _pairs(bases: Sequence[Mapping[str, Any]], news: Sequence[Mapping[str, Any]]
           ) -> list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    """Pair one board × model × variant's results of the two runs. Results that ran on something
    else (another runtime, precision, provider, batch or thread count: record.identity_of) or
    were fed other input shapes (a `--shape` sweep's points) are other cells. Each new result takes the base result of the same settings hash, else the
    base's ok and newest one; base results no new one matches stand alone, one per identity."""
    pairs: list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
    matched: set[int] = set()
    for new in news:
        compatible = [b for b in bases if same_cell(b, new)]
        base = next((b for b in compatible if b.get("settings_hash") == new.get("settings_hash")), None)
        base = base or preferred_result(compatible)
        matched |= {id(b) for b in compatible}
        pairs.append((base, new))
    leftovers = [b for b in bases if id(b) not in matched]
    while leftovers:
        group = [b for b in leftovers if same_cell(b, leftovers[0])]
        pairs.append((preferred_result(group), None))
        leftovers = [b for b in leftovers if b not in group]
    return pairs


def compare_history(
    store: Any,
    entries: Sequence[Any],
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
    *,
    records: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[int, CellComparison]:
    """Each ok history entry (Store.cell_history, oldest first) compared by this engine with the
    previous ok entry of its series: the same board × model × variant that ran on the same
    runtime, precision, provider, batch, threads and input shapes. {result_id: comparison}; the
    first entry of a series has none. `records`: the entries' flat records by result id, when
    the caller has read them already (`history_records`)."""
    ok = [e for e in entries if e.status == "ok"]
    if records is None:
        records = history_records(store, ok)
    samples = store.latency_samples(list(records))
    found: dict[int, CellComparison] = {}
    previous: list[Mapping[str, Any]] = []  # the newest ok record of each series seen so far
    for entry in ok:
        record = records.get(entry.result_id)
        if record is None:
            continue
        key = (entry.board, entry.model, entry.variant)
        before = next((p for p in reversed(previous) if (p["board"], p["model"], p["variant"]) == key
                       and same_cell(p, record)), None)
        if before is not None:
            comparison = compare_records([before], [record], lambda rid: samples.get(rid) or [],
                                         base_run_id=before["run_id"], new_run_id=record["run_id"],
                                         min_effect_pct=min_effect_pct, alpha=alpha)
            found[entry.result_id] = comparison.cells[0]
            previous.remove(before)
        previous.append(record)
    return found


def history_records(store: Any, entries: Sequence[Any]) -> dict[int, dict[str, Any]]:
    """The flat records (with `result_id`) of history entries, by result id: one query."""
    return {r["result_id"]: r for r in store.query_results(result_ids=[e.result_id for e in entries],
                                                           with_result_id=True)}


def compare_to_reference(
    reference: Mapping[str, Any],
    record: Mapping[str, Any],
    latencies_ms: Callable[[int], Sequence[float]],
    *,
    min_effect_pct: float = DEFAULT_MIN_EFFECT_PCT,
    alpha: float = DEFAULT_ALPHA,
    memory_min_effect_pct: float | None = None,
) -> CellComparison:
    """One variant against its reference in the same run (int8 vs fp32 on the same board), judged
    exactly like a cell against its baseline: `reference` plays the base, `record` the new result,
    so "vs fp32" in the report and the summary carries the engine's verdict (`.latency` is its
    Comparison, `.memory_verdict` the peak-memory one), never a rule of thumb.

    Both are result records with their `result_id`; `latencies_ms(result_id)` gives raw samples.
    """
    key = (str(record["board"]), str(record["model"]), str(record["variant"]))
    memory_pct = min_effect_pct if memory_min_effect_pct is None else memory_min_effect_pct
    return _compare_cell(key, reference, record, latencies_ms, min_effect_pct, memory_pct, alpha)


def _by_key(records: Sequence[Mapping[str, Any]]) -> dict[CellKey, list[Mapping[str, Any]]]:
    found: dict[CellKey, list[Mapping[str, Any]]] = {}
    for record in records:
        found.setdefault((str(record["board"]), str(record["model"]), str(record["variant"])), []).append(record)
    return found


def preferred_result(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """A cell's result that stands for its run: an ok one before a failed one, then the newest."""
    if not records:
        return None
    return max(records, key=lambda r: (r["status"] == "ok", str(r.get("created_at") or "")))


def _error(record: Mapping[str, Any] | None) -> str | None:
    if record is None or record["status"] == "ok":
        return None
    return f"{record.get('error_kind') or 'failed'}: {record.get('error_message') or ''}".strip()


def _ratio(base: Any, new: Any) -> float | None:
    """new / base of two positive numbers, else None."""
    if isinstance(base, (int, float)) and isinstance(new, (int, float)) and base > 0 and new > 0:
        return float(new) / float(base)
    return None


def _compare_cell(
    key: CellKey,
    base: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    latencies_ms: Callable[[int], Sequence[float]],
    min_effect_pct: float,
    memory_pct: float,
    alpha: float,
) -> CellComparison:
    common: dict[str, Any] = dict(
        board=key[0], model=key[1], variant=key[2],
        base_status=None if base is None else base["status"],
        new_status=None if new is None else new["status"],
        base_error=_error(base), new_error=_error(new),
        base_model_sha256=None if base is None else base.get("model_sha256"),
        new_model_sha256=None if new is None else new.get("model_sha256"),
        base_peak_rss_bytes=None if base is None else base.get("peak_rss_bytes"),
        new_peak_rss_bytes=None if new is None else new.get("peak_rss_bytes"),
        settings_changed=bool(base and new and base.get("settings_hash") != new.get("settings_hash")),
        base_result_id=None if base is None else base.get("result_id"),
        new_result_id=None if new is None else new.get("result_id"),
        identity=identity_text(identity_of(new if new is not None else base or {})),
        sweep=sweep_of(new if new is not None else base or {}),
    )
    if base is None:
        return CellComparison(verdict="only-new", reason="not measured in the base run", **common)
    if new is None:
        return CellComparison(verdict="only-base", reason="not measured in the new run", **common)
    if new["status"] != "ok" or base["status"] != "ok":
        which = "new" if new["status"] != "ok" else "base"
        return CellComparison(verdict="failed", reason=f"failed in the {which} run: {_error(new if which == 'new' else base)}",
                              **common)

    base_samples = list(latencies_ms(int(base["result_id"])))
    new_samples = list(latencies_ms(int(new["result_id"])))
    latency: Comparison | None = None
    paired = paired_base_p50s(new, base.get("result_id"))
    if paired and len(paired) == len(process_p50s(new)):
        try:  # the baseline's own file was re-measured beside the new one: drift cancels
            latency = compare_paired(paired, process_p50s(new), min_effect_pct=min_effect_pct, alpha=alpha)
            latency_verdict, latency_reason = latency.verdict, f"latency {latency.reason}"
        except ValueError as exc:
            latency_verdict, latency_reason = "inconclusive", f"latency: no verdict: {exc}"
    elif base_samples and new_samples:
        try:
            latency = compare_latency(base_samples, new_samples, process_p50s(base), process_p50s(new),
                                      min_effect_pct=min_effect_pct, alpha=alpha)
            latency_verdict, latency_reason = latency.verdict, f"latency {latency.reason}"
            processes = (len(process_p50s(base)) or 1, len(process_p50s(new)) or 1)
            if min(processes) < MIN_PROCESSES_TO_TEST:  # samples of a few processes are not independent evidence
                latency_reason += (f" (a weak verdict: {processes[0]} vs {processes[1]} process(es); measure with "
                                   f"--repeats {GATE_REPEATS} for one that holds between processes)")
        except ValueError as exc:  # samples a test cannot use (not finite, not positive)
            latency_verdict, latency_reason = "inconclusive", f"latency: no verdict: {exc}"
    else:
        latency_verdict = "inconclusive"
        latency_reason = "latency: no raw samples stored in the " + ("base" if not base_samples else "new") + " run"

    memory_change, memory_verdict = None, None
    base_rss, new_rss = base.get("peak_rss_bytes"), new.get("peak_rss_bytes")
    reasons = [latency_reason]
    if base_rss is not None or new_rss is not None:
        memory_change, memory_verdict = compare_values(base_rss, new_rss, min_effect_pct=memory_pct)
        change = "" if memory_change is None else f" ({memory_change:+.1f}%, threshold {memory_pct:g}%)"
        reasons.append(f"peak memory {mib_text(base_rss)} -> {mib_text(new_rss)}{change}: {memory_verdict}")
    energy_change, energy_verdict = None, None
    base_energy, new_energy = energy_of(base), energy_of(new)
    if base_energy is not None and new_energy is not None:  # only boards with power sensors, both times
        energy_change, _ = compare_values(base_energy, new_energy, min_effect_pct=min_effect_pct)
        energy_verdict, why = compare_energy(latency, _ratio(power_of(base), power_of(new)),
                                             min_effect_pct=min_effect_pct)
        change = "" if energy_change is None else f" ({energy_change:+.1f}%, threshold {min_effect_pct:g}%)"
        reasons.append(f"energy {base_energy:.4g} -> {new_energy:.4g} mJ/inference{change}: {energy_verdict} ({why})")
    verdicts = {latency_verdict} | ({memory_verdict} if memory_verdict else set()) | (
        {energy_verdict} if energy_verdict else set())
    verdict = next((v for v in ("regressed", "inconclusive", "improved") if v in verdicts), "unchanged")
    if common["settings_changed"]:
        reasons.append("measured with different settings")
    if common["base_model_sha256"] and common["new_model_sha256"] and \
            common["base_model_sha256"] != common["new_model_sha256"]:
        reasons.append(f"weights changed ({common['base_model_sha256'][:12]} -> {common['new_model_sha256'][:12]})")
    return CellComparison(
        verdict=verdict, reason="; ".join(reasons), latency=latency,
        memory_change_pct=memory_change, memory_verdict=memory_verdict, base_energy_mj=base_energy,
        new_energy_mj=new_energy, energy_change_pct=energy_change, energy_verdict=energy_verdict, **common,
    )
