"""Rich rendering for the terminal: the bench summary table (and, re-exported, the progress)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from rich.console import Console, Group
from rich.markup import escape

from orchestrator.cli.layout import Column, fitted_table
from orchestrator.cli.progress import BenchProgress
from orchestrator.record import sweep_of
from orchestrator.runtimes import mixes_runtimes, runtime_label
from orchestrator.units import fps_text, human_bytes, ms_text

__all__ = ["BenchProgress", "escape", "human_bytes", "row_notes", "summary_table", "verdict_markup"]


Latencies = Callable[[int], Sequence[float]]

#: Terminal styles of the comparison engine's latency verdicts vs fp32.
VERDICT_STYLE = {"improved": "green", "regressed": "red", "inconclusive": "yellow", "unchanged": "dim"}

#: A cell's verdict (orchestrator.compare.CELL_VERDICTS) as `farm compare` and `farm history` print
#: it; only-base / only-new read as the two runs of `farm compare A B`.
CELL_VERDICT_MARKUP = {
    "regressed": "[bold red]regressed[/bold red]",
    "improved": "[green]improved[/green]",
    "unchanged": "unchanged",
    "inconclusive": "[yellow]inconclusive[/yellow]",
    "failed": "[red]failed[/red]",
    "only-base": "[dim]only in A[/dim]",
    "only-new": "[dim]only in B[/dim]",
}


def verdict_markup(verdict: str) -> str:
    """A cell's verdict in rich markup (CELL_VERDICT_MARKUP; an unknown one as plain text)."""
    return CELL_VERDICT_MARKUP.get(verdict) or escape(verdict)


def _export(row: Mapping[str, Any]) -> Mapping[str, Any]:
    return (row.get("details") or {}).get("export") or {}


def _own_size(row: Mapping[str, Any]) -> float | None:
    """The variant's own file size: a variant that could not be built has none (the stored
    column then holds fp32's, which is not this variant's)."""
    if row.get("status") == "ok" or row.get("variant") == "fp32":
        return row.get("model_size_bytes")
    return ((row.get("details") or {}).get("variant") or {}).get("size_bytes")


def row_notes(row: Mapping[str, Any]) -> list[str]:
    """The badges of a result (the report's too): fallback, throttled, clock drop, truncated, noisy;
    what computed when it was not the CPU (`gpu: Tensorrt`), and a TensorRT result's first
    inference (its engine build, unless cached), which its latency columns leave out."""
    export = _export(row)
    notes = []
    if export.get("provider_fallback"):
        notes.append(f"fallback: {export.get('provider') or '?'}".replace("ExecutionProvider", ""))
    elif export.get("accelerator") in ("gpu", "npu"):
        notes.append(f"{export['accelerator']}: {export.get('provider') or '?'}".replace("ExecutionProvider", ""))
    if export.get("provider") == "TensorrtExecutionProvider" and row.get("first_inference_ms") is not None:
        notes.append(f"first inference {ms_text(row['first_inference_ms'])} ms (engine build)")
    for field, text in (("throttled", "throttled"), ("freq_drop", "clock drop"), ("truncated", "truncated"),
                        ("noisy", "noisy")):
        if export.get(field):
            notes.append(text)
    return notes


def _vs_fp32(rows: Sequence[Mapping[str, Any]], latencies_ms: Latencies | None) -> dict[int, str]:
    """Row index -> the latency change vs fp32 on the same board, coloured by the engine's verdict
    (compare.compare_to_reference); uncoloured when no raw samples are at hand."""
    from orchestrator.compare import compare_to_reference

    found: dict[int, str] = {}
    references = {(r["board"], r["model"], sweep_of(r)): r for r in rows
                  if r["variant"] == "fp32" and r.get("status") == "ok"}
    for index, row in enumerate(rows):
        reference = references.get((row["board"], row["model"], sweep_of(row)))
        if row.get("status") != "ok" or reference is None or row is reference:
            continue
        if latencies_ms is not None and row.get("result_id") is not None and reference.get("result_id") is not None:
            latency = compare_to_reference(reference, row, latencies_ms).latency
            if latency is not None:
                style = VERDICT_STYLE[latency.verdict]
                found[index] = f"[{style}]{latency.change_pct:+.1f}%[/{style}]"
                continue
        base, new = reference.get("latency_ms_p50"), row.get("latency_ms_p50")
        if base and new is not None:
            found[index] = f"{(new - base) * 100.0 / base:+.1f}%"
    return found


def summary_table(rows: Iterable[Mapping[str, Any]], latencies_ms: Latencies | None = None,
                  console: Console | None = None) -> Group:
    """One table per model, boards in order and variants from the reference to the most invasive:
    p50, its change vs fp32 (the engine's verdict as colour when `latencies_ms(result_id)` gives
    raw samples), the badges, then p99, FPS, memory, size and accuracy as the width allows. A
    run that swept settings (orchestrator.sweep) has a `sweep` column naming each row's point,
    and one that measured batches of several images the latency per image (`ms/img`)."""
    from orchestrator.report.overview import row_sort_key

    console = console or Console(width=80)
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    ordered = sorted(rows, key=lambda r: row_sort_key(str(r["board"]), str(r["model"]), str(r["variant"])))
    for row in ordered:
        by_model.setdefault(row["model"], []).append(row)
    tables: list[Any] = []
    for model, model_rows in by_model.items():
        has_accuracy = any(_export(r).get("accuracy_metric") for r in model_rows)
        has_runtimes = mixes_runtimes(model_rows, lambda r: runtime_label(_export(r)))
        changes = _vs_fp32(model_rows, latencies_ms)
        swept = any(sweep_of(r) for r in model_rows)
        batched = any((_export(r).get("batch") or 1) > 1 for r in model_rows)
        columns = [Column("board"), Column("variant")]
        if swept:
            columns.append(Column("sweep"))
        columns += [Column("p50 ms", "right"), Column("vs fp32", "right", 1)]
        if batched:  # images per call: FPS (images per second) and the latency per image matter most
            columns.append(Column("ms/img", "right", 4))
        columns += [Column("p99 ms", "right", 6), Column("FPS", "right", 1 if batched else 5),
                    Column("peak RSS", "right", 3), Column("size", "right", 2)]
        energy = any(_export(r).get("energy_mj_per_inference") is not None for r in model_rows)
        if energy:  # boards with power sensors: energy per inference (per call)
            columns.append(Column("mJ/inf", "right", 2))
        if has_accuracy:
            metric = next(_export(r)["accuracy_metric"] for r in model_rows if _export(r).get("accuracy_metric"))
            columns += [Column(escape(str(metric)), "right", 2), Column("Δ acc", "right", 4)]
        columns.append(Column("notes", wrap=True, priority=1))
        cells = []
        for index, row in enumerate(model_rows):
            line = [escape(str(row["board"])), escape(str(row["variant"]))]
            if swept:
                line.append(escape(sweep_of(row)))
            if row.get("status") != "ok":
                line += ["[red]failed[/red]", ""] + [""] * batched + ["", "", "", human_bytes(_own_size(row))]
                line += [""] * energy
            else:
                line += [ms_text(row.get("latency_ms_p50")), changes.get(index, "ref" if row["variant"] == "fp32" else "")]
                if batched:
                    line.append(ms_text(_export(row).get("latency_ms_per_image_p50")))
                line += [ms_text(row.get("latency_ms_p99")), fps_text(row.get("fps")),
                         human_bytes(row.get("peak_rss_bytes")), human_bytes(row.get("model_size_bytes"))]
                if energy:
                    value = _export(row).get("energy_mj_per_inference")
                    line.append("—" if value is None else f"{value:.3g}")
            if has_accuracy:
                export = _export(row)
                accuracy, delta = export.get("accuracy"), export.get("accuracy_delta")
                line += ["—" if accuracy is None else f"{accuracy * 100:.1f}",
                         "" if delta is None else f"{delta * 100:+.1f}".replace("+0.0", "0.0")]
            line.append(escape(", ".join(row_notes(row))) if row.get("status") == "ok"
                        else f"[red]{escape(str(row.get('error_kind') or 'failed'))}[/red]")
            cells.append(line)
        table = fitted_table(console, columns, cells, title=f"[bold]{escape(str(model))}[/bold]", title_justify="left")
        if has_runtimes:
            table.caption = escape(_runtimes_caption(model_rows))
            table.caption_justify = "left"
        tables.append(table)
    if any(r["variant"] != "fp32" and r.get("status") == "ok" for r in ordered):
        tables.append("[dim]vs fp32: change of the median on the same board"
                      + (", coloured by the comparison engine's verdict (green faster, red slower, yellow cannot "
                         "tell)" if latencies_ms is not None else "") + "[/dim]")
    return Group(*tables)


def _runtimes_caption(rows: Iterable[Mapping[str, Any]]) -> str:
    """`ran on: onnxruntime (fp32); openvino bf16 (openvino-ir)`: which variants each runtime ran."""
    variants: dict[str, list[str]] = {}
    for row in rows:
        label = runtime_label(_export(row))
        if label and row["variant"] not in variants.setdefault(label, []):
            variants[label].append(row["variant"])
    return "ran on: " + "; ".join(f"{label} ({', '.join(names)})" for label, names in variants.items())
