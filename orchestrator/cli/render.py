"""Rich rendering for the terminal: summary tables and the bench progress display."""
from __future__ import annotations

import threading
from typing import Any, Iterable, Mapping

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

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


def _fps(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def summary_table(rows: Iterable[Mapping[str, Any]]) -> Table:
    """board × model × variant with the numbers people look at first; fits 80 columns."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for name, justify in (("board", "left"), ("model", "left"), ("variant", "left"), ("runs", "right"),
                          ("p50 ms", "right"), ("p99 ms", "right"), ("FPS", "right"),
                          ("RSS MiB", "right"), ("size MiB", "right")):
        numeric = justify == "right"
        table.add_column(name, justify=justify, overflow="fold", no_wrap=numeric)
    for row in rows:
        if row.get("status") != "ok":
            table.add_row(escape(row["board"]), escape(row["model"]), escape(row["variant"]),
                          f"[red]{escape(str(row.get('error_kind')))}[/red]", "", "", "", "", _mib(row.get("model_size_bytes")))
            continue
        table.add_row(
            escape(row["board"]), escape(row["model"]), escape(row["variant"]), _fmt(row.get("runs")),
            _fmt(row.get("latency_ms_p50"), 3), _fmt(row.get("latency_ms_p99"), 3), _fps(row.get("fps")),
            _mib(row.get("peak_rss_bytes")), _mib(row.get("model_size_bytes")),
        )
    return table


def runs_table(runs: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for name in ("run id", "created (UTC)", "status", "results", "failed"):
        table.add_column(name, justify="right" if name in ("results", "failed") else "left")
    for run in runs:
        table.add_row(run["run_id"], run["created_at"][:19].replace("T", " "), run["status"],
                      str(run["results"]), str(run["failed"]))
    return table


class BenchProgress:
    """A progress bar over all jobs, with the current phase per board. Writes to stderr."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        )
        self._task = None
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
                self._task = self._progress.add_task(f"run {info['run_id']}", total=info["jobs"])
                return
            if self._task is None:
                return
            board = info.get("board")
            if kind == "job_phase":
                self._boards[board] = f"{info['model']}/{info['variant']}: {info['phase']}"
            elif kind in ("job_finished", "job_failed"):
                self._progress.advance(self._task)
                self._boards.pop(board, None)
                if kind == "job_failed":
                    self._progress.console.print(
                        f"[red]✗[/red] {escape(board)} {escape(info['model'])}/{escape(info['variant'])}: "
                        f"{escape(info['kind'])}", highlight=False)
            elif kind == "board_connecting":
                self._boards[board] = "connecting"
            status = "; ".join(f"{escape(b)}: {escape(s)}" for b, s in sorted(self._boards.items())[:3])
            self._progress.update(self._task, description=status or "running")
