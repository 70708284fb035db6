"""Nightly gating: compare a run with a baseline, decide an exit status, write JUnit/Markdown.

    baseline = resolve_baseline(store, "latest", run_id)          # RUN_ID | latest | tag:NAME
    gate = evaluate_gate(store, run_id, baseline, fail_on_regression_pct=5.0)
    write_junit("farm-junit.xml", gate)
    for target in markdown_targets(markdown_option):               # + $GITHUB_STEP_SUMMARY
        write_markdown(target, gate)
    exit_code = gate.exit_status

Exit status precedence: BOARD_FAILURE (4) when any job of the run failed — its cells could not
be compared, so a clean comparison of the rest proves nothing; else REGRESSION (5) when any
cell regressed; else OK (0). Inconclusive cells do not fail the gate (they are reported).

A regression is latency OR peak memory worse by at least the threshold: latency with
significance (`compare_samples`: rank test at `alpha` AND the median change's 95 % interval
entirely above the threshold), peak memory — one number per result, nothing to test — when it
grew by at least `memory_pct`.
"""
from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from orchestrator.analysis import DEFAULT_ALPHA
from orchestrator.compare import CellComparison, RunComparison, compare_runs
from orchestrator.errors import BadInputError, ExitStatus
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

@dataclasses.dataclass(frozen=True)
class GateCell:
    """One board × model × variant of the gated run. `outcome`: passed | regressed | failed | skipped."""

    board: str
    model: str
    variant: str
    outcome: str
    message: str
    comparison: CellComparison | None = None  # None when there is no baseline for the cell

    def as_dict(self) -> dict[str, Any]:
        return {
            "board": self.board, "model": self.model, "variant": self.variant,
            "outcome": self.outcome, "message": self.message,
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

    @property
    def failed(self) -> list[GateCell]:
        return [c for c in self.cells if c.outcome == "failed"]

    @property
    def regressed(self) -> list[GateCell]:
        return [c for c in self.cells if c.outcome == "regressed"]

    @property
    def exit_status(self) -> ExitStatus:
        """BOARD_FAILURE if any job failed, else REGRESSION if any cell regressed, else OK."""
        if self.failed:
            return ExitStatus.BOARD_FAILURE
        if self.regressed:
            return ExitStatus.REGRESSION
        return ExitStatus.OK

    def counts(self) -> dict[str, int]:
        found = {"passed": 0, "regressed": 0, "failed": 0, "skipped": 0}
        for cell in self.cells:
            found[cell.outcome] += 1
        return found

    def summary_line(self) -> str:
        """One line for a terminal or a log."""
        counts = self.counts()
        against = f"against {self.baseline_run_id}" if self.baseline_run_id else "with no baseline"
        return (f"gate {self.run_id} {against}: {counts['passed']} passed, {counts['regressed']} regressed, "
                f"{counts['failed']} failed, {counts['skipped']} skipped (threshold latency "
                f"{self.latency_pct:g}%, memory {self.memory_pct:g}%) -> exit {int(self.exit_status)}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "baseline_run_id": self.baseline_run_id,
            "latency_pct": self.latency_pct, "memory_pct": self.memory_pct,
            "exit_status": int(self.exit_status), "counts": self.counts(),
            "cells": [cell.as_dict() for cell in self.cells],
        }


def resolve_baseline(store: Store, spec: str | None, current_run_id: str) -> str | None:
    """The baseline run id for `--baseline SPEC`, or None when there is nothing to compare with.

    SPEC: a run id (or unique prefix), `latest`, or `tag:NAME`. `latest` is the newest other run
    that finished (status `finished`), was created no later than the current run, and has an ok
    result for at least one (board, model, variant) the current run measured; None if there is
    none (the first nightly). An unknown run id or tag is a BadInputError, as is a baseline that
    is the current run itself.
    """
    current = store.resolve_run_id(current_run_id)
    if spec is None or not spec.strip():
        return None
    spec = spec.strip()
    if spec == "latest":
        return store.latest_run_sharing_cells(current)
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
) -> GateResult:
    """Gate `run_id` against `baseline_run_id` (None: only job failures can fail the gate).

    `fail_on_regression_pct`: smallest latency regression (%) that fails; `memory_pct`: smallest
    peak-memory growth (%) that fails (default: the same). Every cell of the gated run gets one
    GateCell: `failed` (its job failed), `regressed`, `passed` (improved, unchanged,
    inconclusive, or no baseline for it); cells only in the baseline are `skipped`.
    """
    run_id = store.resolve_run_id(run_id)
    memory = fail_on_regression_pct if memory_pct is None else memory_pct
    if baseline_run_id is None:
        cells = []
        for record in sorted(store.query_results(run_id), key=lambda r: (r["board"], r["model"], r["variant"])):
            if record["status"] != "ok":
                cells.append(GateCell(record["board"], record["model"], record["variant"], "failed",
                                      f"job failed: {record.get('error_kind')}: {record.get('error_message') or ''}".strip()))
            else:
                cells.append(GateCell(record["board"], record["model"], record["variant"], "passed",
                                      "no baseline to compare with"))
        return GateResult(run_id, None, float(fail_on_regression_pct), float(memory), tuple(cells))

    comparison = compare_runs(store, baseline_run_id, run_id, fail_on_regression_pct, alpha,
                              memory_min_effect_pct=memory)
    cells = [_gate_cell(cell) for cell in comparison.cells]
    return GateResult(run_id, comparison.base_run_id, float(fail_on_regression_pct), float(memory), tuple(cells),
                      comparison)


def _gate_cell(cell: CellComparison) -> GateCell:
    if cell.new_status == "failed":
        return GateCell(cell.board, cell.model, cell.variant, "failed", f"job failed: {cell.new_error}", cell)
    if cell.verdict == "only-base":
        return GateCell(cell.board, cell.model, cell.variant, "skipped", "in the baseline but not measured in this run",
                        cell)
    if cell.verdict == "only-new" or cell.base_status == "failed":
        why = "not in the baseline" if cell.verdict == "only-new" else f"failed in the baseline ({cell.base_error})"
        return GateCell(cell.board, cell.model, cell.variant, "passed", f"no comparison: {why}", cell)
    if cell.verdict == "regressed":
        return GateCell(cell.board, cell.model, cell.variant, "regressed", _numbers(cell), cell)
    return GateCell(cell.board, cell.model, cell.variant, "passed", f"{cell.verdict}: {_numbers(cell)}", cell)


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
    if cell.model_changed:
        parts.append(f"weights changed ({(cell.base_model_sha256 or '')[:12]} -> {(cell.new_model_sha256 or '')[:12]})")
    return "; ".join(parts) or cell.reason


# --------------------------------------------------------------------------- JUnit

_XML_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry most control characters (an error message may hold ANSI codes)."""
    return _XML_BAD_CHARS.sub("?", text)


def write_junit(path: Path | str, gate_result: GateResult) -> Path:
    """One <testcase> per board × model × variant: <failure> for regressions and failed jobs,
    <skipped> for cells only in the baseline. classname `farm.BOARD`, name `MODEL[VARIANT]`.
    """
    path = Path(path)
    counts = gate_result.counts()
    suite = ET.Element("testsuite", {
        "name": f"farm gate {gate_result.run_id}",
        "tests": str(len(gate_result.cells)),
        "failures": str(counts["regressed"] + counts["failed"]),
        "errors": "0",
        "skipped": str(counts["skipped"]),
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", gate_result.run_id), ("baseline_run_id", gate_result.baseline_run_id or ""),
                        ("latency_pct", f"{gate_result.latency_pct:g}"), ("memory_pct", f"{gate_result.memory_pct:g}")):
        ET.SubElement(properties, "property", {"name": name, "value": _xml_text(value)})
    for cell in gate_result.cells:
        case = ET.SubElement(suite, "testcase", {
            "classname": _xml_text(f"farm.{cell.board}"),
            "name": _xml_text(f"{cell.model}[{cell.variant}]"),
        })
        message = _xml_text(cell.message)
        if cell.outcome == "regressed":
            ET.SubElement(case, "failure", {"type": "regression", "message": message}).text = message
        elif cell.outcome == "failed":
            ET.SubElement(case, "failure", {"type": "job-failed", "message": message}).text = message
        elif cell.outcome == "skipped":
            ET.SubElement(case, "skipped", {"message": message})
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

_OUTCOME_MARK = {"regressed": "❌ regressed", "failed": "💥 failed", "skipped": "⏭ skipped", "passed": "✅"}


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
    """A short summary: the verdict line, then a table of the cells that need a look (failed,
    regressed), then passed cells when there are few; numbers in the table are medians (ms),
    peak memory (MiB) and changes (%)."""
    g = gate_result
    counts = g.counts()
    status = {ExitStatus.OK: "✅ passed", ExitStatus.REGRESSION: "❌ regression",
              ExitStatus.BOARD_FAILURE: "💥 job failure"}[g.exit_status]
    against = f"`{g.baseline_run_id}`" if g.baseline_run_id else "no baseline"
    lines = [
        f"### farm gate: {status}",
        "",
        f"Run `{g.run_id}` against {against} — {counts['passed']} passed, {counts['regressed']} regressed, "
        f"{counts['failed']} failed, {counts['skipped']} skipped (thresholds: latency {g.latency_pct:g}%, "
        f"memory {g.memory_pct:g}%).",
        "",
        "| board | model | variant | result | p50 ms | Δ p50 | peak MiB | Δ mem |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    order = {"failed": 0, "regressed": 1, "skipped": 2, "passed": 3}
    for cell in sorted(g.cells, key=lambda c: (order[c.outcome], c.board, c.model, c.variant)):
        cmp = cell.comparison
        lat = cmp.latency if cmp else None
        p50 = f"{lat.base_p50_ms:.3f} → {lat.new_p50_ms:.3f}" if lat else "—"
        d50 = f"{lat.change_pct:+.1f}%" if lat else "—"
        mem = (f"{mib_text(cmp.base_peak_rss_bytes, False)} → {mib_text(cmp.new_peak_rss_bytes, False)}"
               if cmp and cmp.memory_verdict is not None else "—")
        dmem = f"{cmp.memory_change_pct:+.1f}%" if cmp and cmp.memory_change_pct is not None else "—"
        result = _OUTCOME_MARK[cell.outcome]
        if cell.outcome == "failed":
            result += f": {cell.message.removeprefix('job failed: ')[:80]}"
        lines.append(f"| {_md(cell.board)} | {_md(cell.model)} | {_md(cell.variant)} | {_md(result)} | {p50} | {d50} "
                     f"| {mem} | {dmem} |")
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
