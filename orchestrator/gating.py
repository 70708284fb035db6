"""Nightly gating: compare a run with a baseline, decide an exit status, write JUnit/Markdown.

    baseline = resolve_baseline(store, "latest", run_id)          # RUN_ID | latest | tag:NAME
    gate = evaluate_gate(store, run_id, baseline, fail_on_regression_pct=5.0)
    write_junit("farm-junit.xml", gate)
    for target in markdown_targets(markdown_option):               # + $GITHUB_STEP_SUMMARY
        write_markdown(target, gate)
    exit_code = gate.exit_status

Every cell of the gated run gets one outcome, from the verdict of the one comparison engine
(orchestrator.compare):
* `regressed` — latency OR peak memory worse by at least the threshold (latency with
  significance and its 95 % interval entirely above the threshold; memory, one number per
  result, when it grew by at least `memory_pct`), or energy per inference up by at least the
  latency threshold where both runs measured it (boards with power sensors);
* `inconclusive` — the data cannot tell whether the change passes the threshold (too noisy,
  too few processes): shown as such (⚠️ in Markdown, a JUnit `skipped` with the reason), never
  as a pass; `fail_on_inconclusive` makes it fail the gate;
* `passed` — unchanged or improved;
* `failed` — the cell's job failed in this run;
* `skipped` — nothing to compare with: only in the baseline, not in the baseline, or failed there.

A regressed or inconclusive cell that both runs profiled (`farm bench --profile`) names, in its
JUnit and Markdown message, the operator types that moved most (orchestrator.profiles).

Exit status precedence: BOARD_FAILURE (4) when any job of the run failed — its cells could not
be compared, so a clean comparison of the rest proves nothing; else REGRESSION (5) when any
cell regressed (or was inconclusive with `fail_on_inconclusive`); else OK (0).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from orchestrator.analysis import DEFAULT_ALPHA
from orchestrator.compare import CellComparison, RunComparison, compare_runs
from orchestrator.errors import BadInputError, ExitStatus
from orchestrator.profiles import explain_pairs
from orchestrator.record import cell_label, sweep_of
from orchestrator.store import Store
from orchestrator.units import mib_text

__all__ = [
    "GITHUB_STEP_SUMMARY",
    "check_writable",
    "markdown_summary",
    "GateCell",
    "GateResult",
    "evaluate_gate",
    "markdown_targets",
    "resolve_baseline",
    "write_junit",
    "write_markdown",
]

GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"

GATE_OUTCOMES = ("failed", "regressed", "inconclusive", "skipped", "passed")


@dataclasses.dataclass(frozen=True)
class GateCell:
    """One board × model × variant of the gated run; `outcome` is one of GATE_OUTCOMES.
    `duration_s`: how long the cell's measurement took (its processes' measured phases)."""

    board: str
    model: str
    variant: str
    outcome: str
    message: str
    comparison: CellComparison | None = None  # None when there is no baseline for the cell
    duration_s: float = 0.0
    # The operator types that moved most, when both runs profiled the cell (farm bench --profile):
    # "DequantizeLinear +15.1 ms (new, 494 nodes), Conv +14.5 ms (NCHWc → default)". In `message`.
    operators: str = ""
    sweep: str = ""  # the cell's sweep point ("threads=2"), "" outside a sweep (record.sweep_of)

    @property
    def label(self) -> str:
        """The variant, and the sweep point when there is one: `fp32 · threads=2`."""
        return cell_label(self.variant, self.sweep)

    def as_dict(self) -> dict[str, Any]:
        return {
            "board": self.board, "model": self.model, "variant": self.variant, "sweep": self.sweep,
            "outcome": self.outcome, "message": self.message, "duration_s": self.duration_s,
            "operators": self.operators,
            "comparison": None if self.comparison is None else self.comparison.as_dict(),
        }


@dataclasses.dataclass(frozen=True)
class GateResult:
    run_id: str
    baseline_run_id: str | None
    latency_pct: float
    memory_pct: float
    cells: tuple[GateCell, ...]
    comparison: RunComparison | None = None
    fail_on_inconclusive: bool = False
    started_at: str = ""  # the gated run's start (ISO 8601 UTC), for JUnit's timestamp
    hostname: str = ""  # the controller that measured it

    def with_outcome(self, outcome: str) -> list[GateCell]:
        return [c for c in self.cells if c.outcome == outcome]

    @property
    def failed(self) -> list[GateCell]:
        return self.with_outcome("failed")

    @property
    def regressed(self) -> list[GateCell]:
        return self.with_outcome("regressed")

    @property
    def inconclusive(self) -> list[GateCell]:
        return self.with_outcome("inconclusive")

    @property
    def exit_status(self) -> ExitStatus:
        """BOARD_FAILURE if any job failed, else REGRESSION if any cell regressed (or was
        inconclusive, with fail_on_inconclusive), else OK."""
        if self.failed:
            return ExitStatus.BOARD_FAILURE
        if self.regressed or (self.fail_on_inconclusive and self.inconclusive):
            return ExitStatus.REGRESSION
        return ExitStatus.OK

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(GATE_OUTCOMES, 0)
        for cell in self.cells:
            found[cell.outcome] += 1
        return found

    def counts_text(self) -> str:
        counts = self.counts()
        return (f"{counts['passed']} passed, {counts['regressed']} regressed, {counts['inconclusive']} inconclusive, "
                f"{counts['failed']} failed, {counts['skipped']} skipped")

    def summary_line(self) -> str:
        """One line for a terminal or a log."""
        against = f"against {self.baseline_run_id}" if self.baseline_run_id else "with no baseline"
        energy = f", energy {self.latency_pct:g}%" if self.energy_judged else ""
        return (f"gate {self.run_id} {against}: {self.counts_text()} (threshold latency "
                f"{self.latency_pct:g}%, memory {self.memory_pct:g}%{energy}) -> exit {int(self.exit_status)}")

    @property
    def energy_judged(self) -> bool:
        """Some cell's energy per inference was compared (both runs measured it)."""
        return any(c.comparison is not None and c.comparison.energy_verdict is not None for c in self.cells)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "baseline_run_id": self.baseline_run_id,
            "latency_pct": self.latency_pct, "memory_pct": self.memory_pct,
            "fail_on_inconclusive": self.fail_on_inconclusive,
            "exit_status": int(self.exit_status), "counts": self.counts(),
            "cells": [cell.as_dict() for cell in self.cells],
        }


def resolve_baseline(store: Store, spec: str | None, current_run_id: str, *, optional: bool = False) -> str | None:
    """The baseline run id for `--baseline SPEC`.

    SPEC: a run id (or unique prefix), `latest`, or `tag:NAME`. `latest` is the newest other run
    that finished (status `finished`), was created no later than the current run, and has an ok
    result for at least one (board, model, variant) the current run measured. No such run is a
    BadInputError naming the database (a mistyped FARM_DB must not pass a gate silently) unless
    `optional` (`--baseline-optional`: the first nightly), then None. An unknown run id or tag is
    a BadInputError, as is a baseline that is the current run itself.
    """
    current = store.resolve_run_id(current_run_id)
    if spec is None or not spec.strip():
        return None
    spec = spec.strip()
    if spec == "latest":
        found = store.latest_run_sharing_cells(current)
        if found is None and not optional:
            raise BadInputError(
                f"--baseline latest: no earlier finished run in {store.safe_url} measured a cell of run {current}, "
                "so there is nothing to compare with; check --db / FARM_DB, or pass --baseline-optional for a "
                "first run")
        return found
    baseline = store.resolve_run_id(spec)
    if baseline == current:
        raise BadInputError(f"the baseline {spec!r} is the run being gated ({current}): pick an earlier run")
    return baseline


def evaluate_gate(
    store: Store,
    run_id: str,
    baseline_run_id: str | None,
    fail_on_regression_pct: float,
    *,
    memory_pct: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    fail_on_inconclusive: bool = False,
    baseline_optional: bool = False,
) -> GateResult:
    """Gate `run_id` against `baseline_run_id` (None: only job failures can fail the gate).

    `fail_on_regression_pct`: smallest latency regression (%) that fails; `memory_pct`: smallest
    peak-memory growth (%) that fails (default: the same). Every cell of the gated run gets one
    GateCell (see the module docstring). A baseline with no cell in common with the run is a
    BadInputError unless `baseline_optional`.
    """
    run = store.get_run(run_id)
    run_id = run["run_id"]
    memory = fail_on_regression_pct if memory_pct is None else memory_pct
    durations = _durations_s(store, run_id)
    result = functools.partial(GateResult, run_id, latency_pct=float(fail_on_regression_pct), memory_pct=float(memory),
                               fail_on_inconclusive=fail_on_inconclusive, started_at=str(run["created_at"]),
                               hostname=str((run.get("controller") or {}).get("hostname") or ""))
    if baseline_run_id is None:
        cells = []
        for record in sorted(store.query_results(run_id), key=lambda r: (*_key(r), sweep_of(r))):
            duration_s = durations.get((*_key(record), sweep_of(record)), 0.0)
            if record["status"] != "ok":
                cells.append(GateCell(record["board"], record["model"], record["variant"], "failed",
                                      f"job failed: {record.get('error_kind')}: {record.get('error_message') or ''}".strip(),
                                      duration_s=duration_s, sweep=sweep_of(record)))
            else:
                cells.append(GateCell(record["board"], record["model"], record["variant"], "skipped",
                                      "no baseline to compare with", duration_s=duration_s, sweep=sweep_of(record)))
        return result(baseline_run_id=None, cells=tuple(cells))

    comparison = compare_runs(store, baseline_run_id, run_id, fail_on_regression_pct, alpha,
                              memory_min_effect_pct=memory)
    in_both = [c for c in comparison.cells if c.base_status is not None and c.new_status is not None]
    if not in_both and not baseline_optional:
        raise BadInputError(
            f"run {run_id} and its baseline {comparison.base_run_id} have no cell (board × model × variant) in "
            f"common in {store.safe_url}: nothing was compared; pick another --baseline, or pass --baseline-optional")
    operators = _operator_explanations(store, comparison)
    cells = [_gate_cell(cell, durations.get((*cell.key, cell.sweep), 0.0),
                        operators.get((cell.base_result_id, cell.new_result_id), "")) for cell in comparison.cells]
    return result(baseline_run_id=comparison.base_run_id, cells=tuple(cells), comparison=comparison)


def _operator_explanations(store: Store, comparison: RunComparison) -> dict[tuple[Any, Any], str]:
    """(base result id, new result id) -> the operator types that explain the change, for the
    regressed and inconclusive cells both runs profiled (orchestrator.profiles); read only when
    there is such a cell."""
    flagged = [(c.base_result_id, c.new_result_id) for c in comparison.cells
               if c.verdict in ("regressed", "inconclusive") and c.compared]
    if not flagged:
        return {}
    return explain_pairs(store.results(comparison.base_run_id), store.results(comparison.new_run_id), flagged)


def _key(record: dict[str, Any]) -> tuple[str, str, str]:
    return (record["board"], record["model"], record["variant"])


def _durations_s(store: Store, run_id: str) -> dict[tuple[str, str, str, str], float]:
    """Seconds each cell (board, model, variant, sweep point) of the run spent in its measured
    phase (all its processes)."""
    found: dict[tuple[str, str, str, str], float] = {}
    for result in store.results(run_id):
        measure_s = (result.get("details") or {}).get("measure_s")
        if isinstance(measure_s, (int, float)):
            key = (*_key(result), sweep_of(result))
            found[key] = found.get(key, 0.0) + float(measure_s)
    return found


def _gate_cell(cell: CellComparison, duration_s: float, operators: str = "") -> GateCell:
    def gate(outcome: str, message: str) -> GateCell:
        return GateCell(cell.board, cell.model, cell.variant, outcome, message, cell, duration_s, operators,
                        cell.sweep)

    if cell.new_status == "failed":
        return gate("failed", f"job failed: {cell.new_error}")
    if cell.verdict == "only-base":
        return gate("skipped", "in the baseline but not measured in this run")
    if cell.verdict == "only-new" or cell.base_status == "failed":
        why = "not in the baseline" if cell.verdict == "only-new" else f"failed in the baseline ({cell.base_error})"
        return gate("skipped", f"no comparison: {why}")
    if cell.verdict in ("regressed", "inconclusive"):
        return gate(cell.verdict, _numbers(cell) + (f"; operators: {operators}" if operators else ""))
    return gate("passed", f"{cell.verdict}: {_numbers(cell)}")


def _numbers(cell: CellComparison) -> str:
    """The figures behind a verdict, in words a person checks at a glance."""
    parts = []
    lat = cell.latency
    if lat is not None:
        ci = ""
        if lat.change_ci_low_pct is not None and lat.change_ci_high_pct is not None:
            ci = f", 95% CI {lat.change_ci_low_pct:+.1f}% to {lat.change_ci_high_pct:+.1f}%"
        parts.append(f"latency p50 {lat.base_p50_ms:.3f} -> {lat.new_p50_ms:.3f} ms ({lat.change_pct:+.1f}%{ci}, "
                     f"p={lat.p_value:.2g}, n={lat.base_runs}/{lat.new_runs}): {lat.verdict}")
    elif cell.latency_verdict is None and cell.verdict not in ("failed", "only-base", "only-new"):
        parts.append("latency: no raw samples")
    if cell.memory_verdict is not None:
        change = "" if cell.memory_change_pct is None else f" ({cell.memory_change_pct:+.1f}%)"
        parts.append(f"peak memory {mib_text(cell.base_peak_rss_bytes, False)} -> {mib_text(cell.new_peak_rss_bytes, False)} MiB{change}: "
                     f"{cell.memory_verdict}")
    if cell.energy_verdict is not None:
        change = "" if cell.energy_change_pct is None else f" ({cell.energy_change_pct:+.1f}%)"
        parts.append(f"energy {cell.base_energy_mj:.4g} -> {cell.new_energy_mj:.4g} mJ/inference{change}: "
                     f"{cell.energy_verdict}")
    if cell.model_changed:
        parts.append(f"weights changed ({(cell.base_model_sha256 or '')[:12]} -> {(cell.new_model_sha256 or '')[:12]})")
    return "; ".join(parts) or cell.reason


# --------------------------------------------------------------------------- JUnit

_XML_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _junit_timestamp(iso: str) -> str:
    """JUnit's timestamp: ISO 8601 to the second, no zone (the run's start, UTC)."""
    return iso[:19] if iso else ""


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry most control characters (an error message may hold ANSI codes)."""
    return _XML_BAD_CHARS.sub("?", text)


def write_junit(path: Path | str, gate_result: GateResult) -> Path:
    """One <testcase> per cell (classname `farm.BOARD`, name `MODEL[VARIANT]`, or
    `MODEL[VARIANT][POINT]` for a sweep's point; `time` = seconds measured): <failure> for
    regressions and failed jobs, <skipped> with the
    reason for inconclusive cells (a <failure type="inconclusive"> with fail_on_inconclusive) and
    for cells with nothing to compare with. The suite carries the run's timestamp and the
    controller's hostname."""
    path = Path(path)
    counts = gate_result.counts()
    inconclusive_fails = gate_result.fail_on_inconclusive
    failures = counts["regressed"] + counts["failed"] + (counts["inconclusive"] if inconclusive_fails else 0)
    skipped = counts["skipped"] + (0 if inconclusive_fails else counts["inconclusive"])
    suite = ET.Element("testsuite", {
        "name": f"farm gate {gate_result.run_id}",
        "tests": str(len(gate_result.cells)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": f"{sum(c.duration_s for c in gate_result.cells):.3f}",
        "timestamp": _junit_timestamp(gate_result.started_at),
        "hostname": _xml_text(gate_result.hostname or "unknown"),
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", gate_result.run_id), ("baseline_run_id", gate_result.baseline_run_id or ""),
                        ("latency_pct", f"{gate_result.latency_pct:g}"), ("memory_pct", f"{gate_result.memory_pct:g}"),
                        ("fail_on_inconclusive", str(inconclusive_fails).lower())):
        ET.SubElement(properties, "property", {"name": name, "value": _xml_text(value)})
    for cell in gate_result.cells:
        case = ET.SubElement(suite, "testcase", {
            "classname": _xml_text(f"farm.{cell.board}"),
            "name": _xml_text(f"{cell.model}[{cell.variant}]" + (f"[{cell.sweep}]" if cell.sweep else "")),
            "time": f"{cell.duration_s:.3f}",
        })
        message = _xml_text(cell.message)
        if cell.outcome == "regressed":
            ET.SubElement(case, "failure", {"type": "regression", "message": message}).text = message
        elif cell.outcome == "failed":
            ET.SubElement(case, "failure", {"type": "job-failed", "message": message}).text = message
        elif cell.outcome == "inconclusive" and inconclusive_fails:
            ET.SubElement(case, "failure", {"type": "inconclusive", "message": message}).text = message
        elif cell.outcome in ("inconclusive", "skipped"):
            ET.SubElement(case, "skipped", {"message": f"{cell.outcome}: {message}"})
        else:
            ET.SubElement(case, "system-out").text = message
    tree = ET.ElementTree(ET.Element("testsuites"))
    tree.getroot().append(suite)
    ET.indent(tree)
    check_writable(path)
    try:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise BadInputError(f"cannot write the JUnit file {path}: {exc.strerror or exc}") from exc
    return path


# --------------------------------------------------------------------------- Markdown

_OUTCOME_MARK = {"regressed": "❌ regressed", "failed": "💥 failed", "inconclusive": "⚠️ inconclusive",
                 "skipped": "⏭ skipped", "passed": "✅"}


def markdown_targets(path_option: Path | str | None) -> list[Path]:
    """Where the Markdown summary goes: the given path, and $GITHUB_STEP_SUMMARY when set.

    `write_markdown` appends to the GitHub step summary (other steps write there too) and
    replaces any other file. The same file is listed once.
    """
    targets: list[Path] = []
    if path_option is not None and str(path_option):
        targets.append(Path(path_option))
    summary = os.environ.get(GITHUB_STEP_SUMMARY)
    if summary:
        summary_path = Path(summary)
        if not any(_same_file(summary_path, t) for t in targets):
            targets.append(summary_path)
    return targets


def _same_file(a: Path, b: Path) -> bool:
    return a.expanduser().absolute() == b.expanduser().absolute()


def markdown_summary(gate_result: GateResult) -> str:
    """A short summary: the verdict line, then a table of every cell, the ones that need a look
    first (failed, regressed, inconclusive); numbers are medians (ms), peak memory (MiB) and
    changes (%) with the 95 % interval of the latency change, and the energy change where both
    runs measured energy."""
    g = gate_result
    if g.exit_status == ExitStatus.OK:
        status = "⚠️ passed, with inconclusive cells" if g.inconclusive else "✅ passed"
    else:
        status = {ExitStatus.REGRESSION: "❌ regression", ExitStatus.BOARD_FAILURE: "💥 job failure"}[g.exit_status]
    against = f"`{g.baseline_run_id}`" if g.baseline_run_id else "no baseline"
    lines = [
        f"### farm gate: {status}",
        "",
        f"Run `{g.run_id}` against {against} — {g.counts_text()} (thresholds: latency {g.latency_pct:g}%, "
        f"memory {g.memory_pct:g}%{f', energy {g.latency_pct:g}%' if g.energy_judged else ''}).",
        "",
    ]
    energy = g.energy_judged
    lines += ["| board | model | variant | result | p50 ms | Δ p50 (95% CI) | peak MiB | Δ mem |"
              + (" mJ/inf | Δ energy |" if energy else ""),
              "|---|---|---|---|---:|---:|---:|---:|" + ("---:|---:|" if energy else "")]
    order = {outcome: index for index, outcome in enumerate(GATE_OUTCOMES)}
    for cell in sorted(g.cells, key=lambda c: (order[c.outcome], c.board, c.model, c.variant, c.sweep)):
        cmp = cell.comparison
        lat = cmp.latency if cmp else None
        p50 = f"{lat.base_p50_ms:.3f} → {lat.new_p50_ms:.3f}" if lat else "—"
        d50 = f"{lat.change_pct:+.1f}%" if lat else "—"
        if lat and lat.change_ci_low_pct is not None and lat.change_ci_high_pct is not None:
            d50 += f" ({lat.change_ci_low_pct:+.0f}…{lat.change_ci_high_pct:+.0f}%)"
        mem = (f"{mib_text(cmp.base_peak_rss_bytes, False)} → {mib_text(cmp.new_peak_rss_bytes, False)}"
               if cmp and cmp.memory_verdict is not None else "—")
        dmem = f"{cmp.memory_change_pct:+.1f}%" if cmp and cmp.memory_change_pct is not None else "—"
        result = _OUTCOME_MARK[cell.outcome]
        if cell.operators:
            result += f": {cell.operators}"
        if cell.outcome == "failed":
            result += f": {cell.message.removeprefix('job failed: ')[:80]}"
        elif cell.outcome == "skipped":
            result += f": {cell.message.removeprefix('no comparison: ')[:60]}"
        line = (f"| {_md(cell.board)} | {_md(cell.model)} | {_md(cell.label)} | {_md(result)} | {p50} | {d50} "
                f"| {mem} | {dmem} |")
        if energy:
            measured = cmp is not None and cmp.energy_verdict is not None
            line += (f" {cmp.base_energy_mj:.3g} → {cmp.new_energy_mj:.3g} |" if measured else " — |")
            line += (f" {cmp.energy_change_pct:+.1f}% |" if measured and cmp.energy_change_pct is not None else " — |")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell (GitHub renders inline HTML: escape < and >)."""
    text = _XML_BAD_CHARS.sub("", text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def write_markdown(path: Path | str, gate_result: GateResult, *, append: bool | None = None) -> Path:
    """Write the summary to `path`; `append` defaults to True only for $GITHUB_STEP_SUMMARY."""
    path = Path(path)
    if append is None:
        summary = os.environ.get(GITHUB_STEP_SUMMARY)
        append = bool(summary) and _same_file(path, Path(summary))
    check_writable(path)
    text = markdown_summary(gate_result)
    try:
        with path.open("a" if append else "w", encoding="utf-8") as handle:
            if append and path.exists() and path.stat().st_size > 0:
                handle.write("\n")
            handle.write(text)
    except OSError as exc:
        raise BadInputError(f"cannot write the Markdown summary {path}: {exc.strerror or exc}") from exc
    return path


def check_writable(path: Path | str) -> None:
    """Fail before measuring when a report file cannot be written (call it up front)."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path} is a directory; give a file name")
    if not path.parent.exists():
        raise BadInputError(f"cannot write {path}: the folder {path.parent} does not exist")
