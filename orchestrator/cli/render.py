"""Rich rendering for the terminal: summary tables and the bench progress display."""
from __future__ import annotations

import threading
from typing import Any, Iterable, Mapping

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.runtimes import mixes_runtimes, runtime_label
from orchestrator.units import fps_text, human_bytes

__all__ = ["BenchProgress", "escape", "summary_table", "runs_table"]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _mib(value: int | None) -> str:
    if value is None:
        return "—"
    mib = value / 1048576
    return f"{mib:,.2f}" if mib < 10 else f"{mib:,.1f}"


def summary_table(rows: Iterable[Mapping[str, Any]]) -> Group:
    """One table per model: board × variant with latency, FPS, memory, size and accuracy.

    Shaped like the studies' tables (variant × board, change vs fp32) and fits 80 columns.
    """
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    tables = []
    for model, model_rows in by_model.items():
        has_accuracy = any(_export(r).get("accuracy_metric") for r in model_rows)
        has_runtimes = mixes_runtimes(model_rows, lambda r: runtime_label(_export(r)))
        table = Table(title=f"[bold]{escape(model)}[/bold]", title_justify="left", box=box.SIMPLE_HEAD,
                      show_edge=False, pad_edge=False, collapse_padding=True)
        columns = [("board", "left"), ("variant", "left"), ("p50\nms", "right"), ("p99\nms", "right"),
                   ("FPS", "right"), ("peak\nRSS", "right"), ("size", "right")]
        if has_accuracy:
            metric = next(_export(r)["accuracy_metric"] for r in model_rows if _export(r).get("accuracy_metric"))
            columns += [(escape(metric), "right"), ("Δ vs\nfp32", "right")]
        for name, justify in columns:
            table.add_column(name, justify=justify, overflow="fold", no_wrap=justify == "right")
        for row in model_rows:
            cells = [escape(row["board"]), escape(row["variant"])]
            if row.get("status") != "ok":
                cells += [f"[red]{escape(str(row.get('error_kind')))}[/red]", "", "", "", human_bytes(row.get("model_size_bytes"))]
            else:
                cells += [_fmt(row.get("latency_ms_p50"), 3), _fmt(row.get("latency_ms_p99"), 3), fps_text(row.get("fps")),
                          human_bytes(row.get("peak_rss_bytes")), human_bytes(row.get("model_size_bytes"))]
            if has_accuracy:
                export = _export(row)
                delta = export.get("accuracy_delta")
                colour = "" if not delta else ("green" if delta > 0 else "red")
                cells += [_fmt(export.get("accuracy"), 3),
                          f"[{colour}]{delta:+.3f}[/{colour}]" if colour else _fmt(delta, 3)]
            table.add_row(*cells)
        if has_runtimes:
            table.caption = escape(_runtimes_caption(model_rows))
            table.caption_justify = "left"
        tables.append(table)
    return Group(*tables)


def _runtimes_caption(rows: Iterable[Mapping[str, Any]]) -> str:
    """`ran on: onnxruntime (fp32); openvino bf16 (openvino-ir)`: which variants each runtime ran."""
    variants: dict[str, list[str]] = {}
    for row in rows:
        label = runtime_label(_export(row))
        if label and row["variant"] not in variants.setdefault(label, []):
            variants[label].append(row["variant"])
    return "ran on: " + "; ".join(f"{label} ({', '.join(names)})" for label, names in variants.items())


def _export(row: Mapping[str, Any]) -> Mapping[str, Any]:
    return (row.get("details") or {}).get("export") or {}


def runs_table(runs: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for name in ("run id", "created (UTC)", "status", "results", "failed"):
        table.add_column(name, justify="right" if name in ("results", "failed") else "left")
    for run in runs:
        table.add_row(run["run_id"], run["created_at"][:19].replace("T", " "), run["status"],
                      str(run["results"]), str(run["failed"]))
    return table


class BenchProgress:
    """A progress bar over all cells, with the current phase per board. Writes to stderr."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        )
        self._task = None
        self.run_id: str | None = None
        self._lock = threading.Lock()
        self._boards: dict[str, str] = {}

    def __enter__(self) -> "BenchProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def on_event(self, kind: str, info: dict[str, Any]) -> None:
        with self._lock:
            if kind == "run_started":
                self.run_id = info["run_id"]
                self._task = self._progress.add_task(f"run {info['run_id']}", total=info["cells"])
                return
            if self._task is None:
                return
            board = info.get("board")
            if kind == "cell_phase":
                self._boards[board] = f"{info['model']}/{info['variant']}: {info['phase']}"
            elif kind in ("cell_finished", "cell_failed"):
                self._progress.advance(self._task)
                self._boards.pop(board, None)
                if kind == "cell_failed":
                    self._progress.console.print(
                        f"[red]✗[/red] {escape(board)} {escape(info['model'])}/{escape(info['variant'])}: "
                        f"{escape(info['kind'])}", highlight=False)
            elif kind == "board_connecting":
                self._boards[board] = "connecting"
            elif kind == "board_waiting":
                self._boards[board] = f"waiting {info['waited_s']:.0f} s: {info['lease']}"
            status = "; ".join(f"{escape(b)}: {escape(s)}" for b, s in sorted(self._boards.items())[:3])
            self._progress.update(self._task, description=status or "running")
