"""What `farm bench` says while it runs, from the runner's progress events, on stderr.

In a terminal: a rich progress display (cells done of all, processes measured, elapsed and
time left for the run; one line per busy board with its cell, phase, round and that cell's
time against the board's average so far). Anywhere else (a pipe, a CI log, a file): plain
timestamped lines, one as each cell starts and ends, for lease waits (every
WAIT_LINE_EVERY_S at most), retries and failures, each written and flushed at once, so a log
shows what farm is doing while it does it, not at the end.

Both read the same events (`run_started`, `board_connecting`, `board_waiting`, `board_takeover`,
`board_ready`, `board_retry`, `cell_started`, `cell_staged`, `cell_phase`, `cell_finished`, `cell_failed`,
`run_finished`) and keep no state the runner needs: a display that fails never stops a run.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from orchestrator.units import ms_text

#: A board waiting for another controller's lease gets a line at most this often (seconds).
WAIT_LINE_EVERY_S = 10.0


def takeover_text(info: dict[str, Any]) -> str:
    """`rpi4-01: took the board over (held by bob@ci-9 …); killed 4242; its run r… is abandoned`."""
    text = f"{info.get('board', '')}: took the board over ({info.get('previous')})"
    if info.get("killed"):
        text += f"; killed what it left running: {', '.join(str(pid) for pid in info['killed'])}"
    if info.get("abandoned_run"):
        text += f"; its run {info['abandoned_run']} is now abandoned"
    return text


def _cell(info: dict[str, Any]) -> str:
    rounds = info.get("rounds") or 1
    text = f"{info['board']} {info['model']}/{info['variant']}"
    return text + (f" (process {info.get('round')}/{rounds})" if rounds > 1 else "")


class BenchProgress:
    """Picks the display: rich in a terminal, plain lines elsewhere. Use as a context manager
    and pass `on_event` to the runner; `run_id` is known once the run started."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self._display: _RichProgress | PlainProgress = (
            _RichProgress(console, clock) if console.is_terminal else PlainProgress(console, clock))

    @property
    def run_id(self) -> str | None:
        return self._display.run_id

    def __enter__(self) -> "BenchProgress":
        self._display.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._display.stop()

    def on_event(self, kind: str, info: dict[str, Any]) -> None:
        self._display.on_event(kind, info)


class PlainProgress:
    """One timestamped line per thing that happened: `12:04:05 rpi4-01 yolov8n/int8: started`."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.clock = clock
        self.run_id: str | None = None
        self._lock = threading.Lock()
        self._started: dict[tuple[str, str, str], float] = {}
        self._last_wait: dict[str, float] = {}
        self._done = 0
        self._cells = 0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def line(self, text: str) -> None:
        """Write one line now (flushed: a pipe sees it at once)."""
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        stream = self.console.file
        stream.write(f"{stamp} {text}\n")
        stream.flush()

    def on_event(self, kind: str, info: dict[str, Any]) -> None:
        with self._lock:
            text = self._text(kind, info)
            if text:
                self.line(text)

    def _text(self, kind: str, info: dict[str, Any]) -> str | None:
        board = info.get("board", "")
        if kind == "run_started":
            self.run_id, self._cells = info["run_id"], info["cells"]
            return f"run {info['run_id']}: {info['cells']} cell(s) to measure"
        if kind == "board_connecting":
            return f"{board}: connecting"
        if kind == "board_waiting":
            now = self.clock()
            if now - self._last_wait.get(board, -WAIT_LINE_EVERY_S) < WAIT_LINE_EVERY_S:
                return None
            self._last_wait[board] = now
            return f"{board}: waiting for the board ({info['waited_s']:.0f} s so far): {info['lease']}"
        if kind == "board_takeover":
            return takeover_text(info)
        if kind == "board_ready":
            return f"{board}: ready"
        if kind == "board_retry":
            return (f"{board}: {info['what']}: {info['kind']}, retry {info['attempt']} in "
                    f"{info['delay_s']:.0f} s")
        key = (board, str(info.get("model")), str(info.get("variant")))
        if kind == "cell_started":
            self._started[key] = self.clock()
            return f"{_cell(info)}: started"
        if kind == "cell_finished":
            self._done += 1
            took = self.clock() - self._started.pop(key, self.clock())
            p50 = ms_text((info.get("row") or {}).get("latency_ms_p50"))
            return f"{_cell(info)}: done in {took:.1f} s, p50 {p50} ms [{self._done}/{self._cells}]"
        if kind == "cell_failed":
            self._done += 1
            self._started.pop(key, None)
            return f"{_cell(info)}: FAILED {info['kind']}: {info.get('message', '')} [{self._done}/{self._cells}]"
        if kind == "run_finished":
            return f"run {info['run_id']}: {info['status']}"
        return None


class _RunTimeLeft(TimeRemainingColumn):
    """Time left for the run's bar only (a board's line has no total: it says its cell's ETA)."""

    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


class _RichProgress:
    """The whole run as one bar with time left, and a line per busy board with its cell's time
    against the average cell time on that board (the ETA of the cell)."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=16), TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(), _RunTimeLeft(compact=True), console=console, transient=True,
        )
        self.run_id: str | None = None
        self._lock = threading.Lock()
        self._run: TaskID | None = None
        self._boards: dict[str, TaskID] = {}
        self._cell_start: dict[str, float] = {}
        self._cell_times: dict[str, list[float]] = {}
        self._processes = 0
        self._done = 0
        self._cells = 0

    def start(self) -> None:
        self._progress.__enter__()

    def stop(self) -> None:
        self._progress.__exit__(None, None, None)

    def _board(self, board: str) -> TaskID:
        if board not in self._boards:
            self._boards[board] = self._progress.add_task(escape(board), total=None, extra="")
        return self._boards[board]

    def on_event(self, kind: str, info: dict[str, Any]) -> None:
        with self._lock:
            if kind == "run_started":
                self.run_id = info["run_id"]
                self._cells = info["cells"]
                self._run = self._progress.add_task(f"run {info['run_id']}", total=info["cells"],
                                                    extra=f"0/{info['cells']} cells")
                return
            if self._run is None:
                return
            board = info.get("board")
            if kind == "cell_started":
                self._cell_start[board] = self.clock()
                self._status(board, f"{info['model']}/{info['variant']}", info)
            elif kind in ("cell_phase", "cell_staged"):
                phase = info.get("phase") or "staged"
                self._status(board, f"{info['model']}/{info['variant']}: {phase}", info)
            elif kind in ("cell_finished", "cell_failed"):
                started = self._cell_start.pop(board, None)
                if kind == "cell_finished" and started is not None:
                    self._cell_times.setdefault(board, []).append(self.clock() - started)
                self._processes += int(info.get("rounds") or 1) if kind == "cell_finished" else 0
                self._done += 1
                self._progress.update(self._run, advance=1,
                                      extra=f"{self._done}/{self._cells} cells, {self._processes} process(es)")
                self._progress.update(self._board(board), description=f"{escape(board)}: idle", extra="")
                if kind == "cell_failed":
                    self._progress.console.print(
                        f"[red]✗[/red] {escape(board)} {escape(info['model'])}/{escape(info['variant'])}: "
                        f"{escape(info['kind'])}", highlight=False)
            elif kind == "board_connecting":
                self._progress.update(self._board(board), description=f"{escape(board)}: connecting", extra="")
            elif kind == "board_waiting":
                self._progress.update(self._board(board), description=(
                    f"{escape(board)}: waiting {info['waited_s']:.0f} s for {escape(str(info['lease']))}"), extra="")
            elif kind == "board_takeover":
                self._progress.console.print(escape(takeover_text(info)), highlight=False)
            elif kind == "board_retry":
                self._progress.update(self._board(board), description=(
                    f"{escape(board)}: {escape(str(info['kind']))}, retry {info['attempt']}"), extra="")

    def _status(self, board: str, text: str, info: dict[str, Any]) -> None:
        rounds = info.get("rounds") or 1
        if rounds > 1:
            text += f" ({info.get('round')}/{rounds})"
        times = self._cell_times.get(board) or []
        started = self._cell_start.get(board)
        eta = ""
        if started is not None and times:
            eta = f"{self.clock() - started:.0f} of ~{sum(times) / len(times):.0f} s"
        self._progress.update(self._board(board), description=f"{escape(board)}: {escape(text)}", extra=eta)


__all__ = ["BenchProgress", "PlainProgress", "WAIT_LINE_EVERY_S"]
