"""The one interface the runner uses to reach a board, local or remote.

Like invoke's `Local` and fabric's `Remote`: the rest of the code never knows
which transport it holds. Commands are argument lists, never shell strings.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

LineCallback = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a finished command gave back. `exit_code` is None when the channel died with no status."""

    argv: tuple[str, ...]
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float


@runtime_checkable
class Stream(Protocol):
    """A command on the board that we talk to while it runs (the agent session): its stdin is ours
    to write, its stdout ours to read. Made by `Transport.open_stream`.

    - `send(data, timeout_s)` writes to the command's stdin; TransportError("disconnected") when
      the command or the connection is gone, or the write stalls for `timeout_s`.
    - `receive(timeout_s)` returns what the command wrote to stdout since the last call, b"" when
      nothing came within `timeout_s`, None once stdout has ended. Never more than one read's worth.
    - `close_input()` ends the command's stdin (it reads end-of-file).
    - `wait(timeout_s)` the exit status after stdout ended (None: unknown, or not within timeout_s).
    - `stop()` kills the command and everything it started; `stderr_text()` the last of stderr.
    """

    def send(self, data: bytes, timeout_s: float) -> None: ...

    def receive(self, timeout_s: float) -> bytes | None: ...

    def close_input(self) -> None: ...

    def wait(self, timeout_s: float) -> int | None: ...

    def stop(self) -> None: ...

    def stderr_text(self) -> str: ...


@runtime_checkable
class Transport(Protocol):
    """How farm reaches one board.

    - `run` executes `argv` on the board (no shell; each element reaches the program as
      one argument), waits at most `timeout_s`, and calls `on_stdout_line` for each
      stdout line as it arrives (protocol messages are streamed this way). Raises
      `TransportError(kind="timeout")` when the timeout fires (after stopping the command)
      and `TransportError(kind=...)` for connection-level failures.
    - `stage_file` makes a local file available on the board under `remote_name`
      inside the board's work dir and returns the path the board sees. Files are named
      by content hash by the caller; an implementation skips the copy when the board
      already has a file with that name AND the same sha256. Returns (path, bytes_sent).
    - `fetch_file` copies a board file (e.g. dataset outputs) back to the controller.
    - `put_file` copies a local file to a path in the work dir as it is (no hash check, no
      rename: the agent session checks and renames it); returns the bytes sent.
    - `open_stream` starts `argv` (no shell, not in the work dir: it may not exist yet) and
      returns a `Stream` to talk to it while it runs.
    - `workdir` is the board's farm work directory (created on demand); `learn_workdir` tells
      the transport the work dir's real path when something else (the agent) created it.
    """

    name: str

    @property
    def workdir(self) -> str: ...

    def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        on_stdout_line: LineCallback | None = None,
    ) -> CommandResult: ...

    def stage_file(self, local_path: Path, remote_name: str, sha256: str) -> tuple[str, int]: ...

    def fetch_file(self, remote_path: str, local_path: Path) -> int:
        """Copy a file from the board to the controller; returns the bytes received."""
        ...

    def put_file(self, local_path: Path, remote_name: str) -> int: ...

    def open_stream(self, argv: Sequence[str]) -> Stream: ...

    def learn_workdir(self, path: str) -> None: ...

    def close(self) -> None: ...


# A board's output is untrusted: no line, and no transcript, may grow without bound.
MAX_LINE_BYTES = 8 * 1024 * 1024  # agent lines are ~1 MB at most: results stream in chunks
MAX_TRANSCRIPT_BYTES = 32 * 1024 * 1024
MAX_STDERR_BYTES = 256 * 1024
OVERSIZE_QUOTE_BYTES = 200


class LineSplitter:
    """Turns a byte stream into lines for a callback, never holding more than one bounded line.

    A line longer than MAX_LINE_BYTES is cut: the callback gets its first bytes followed by a
    marker (so the protocol layer refuses it, quoting them), and the rest of that line is
    dropped as it arrives. The transcript of delivered lines is capped as well.
    """

    MARKER = " …[farm: line over {limit} bytes cut]"

    def __init__(self, on_line: LineCallback | None, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.on_line = on_line
        self.max_line_bytes = max_line_bytes
        self._pending = bytearray()
        self._discarding = False
        self._lines: list[str] = []
        self._kept_bytes = 0

    def feed(self, data: bytes) -> None:
        while data:
            cut = data.find(b"\n")
            chunk, data = (data, b"") if cut < 0 else (data[: cut + 1], data[cut + 1:])
            if self._discarding:
                if cut >= 0:
                    self._discarding = False
                continue
            self._pending += chunk
            if cut >= 0:
                raw = bytes(self._pending)
                self._pending.clear()
                self.deliver(raw)
            elif len(self._pending) > self.max_line_bytes:
                quote = bytes(self._pending[:OVERSIZE_QUOTE_BYTES])
                self._pending.clear()
                self._discarding = True
                self.deliver(quote + self.MARKER.format(limit=self.max_line_bytes).encode() + b"\n")

    def finish(self) -> None:
        if self._pending and not self._discarding:
            raw = bytes(self._pending)
            self._pending.clear()
            self.deliver(raw)

    def deliver(self, raw: bytes) -> None:
        """Hand one complete line to the callback (subclasses may intercept, e.g. a pid line)."""
        line = raw.decode("utf-8", errors="replace")
        if self._kept_bytes < MAX_TRANSCRIPT_BYTES:
            self._lines.append(line)
            self._kept_bytes += len(raw)
        if self.on_line is not None:
            self.on_line(line)

    def text(self) -> str:
        return "".join(self._lines)


class BoundedBuffer:
    """Keeps the last `limit` bytes of a stream (stderr: the end says what went wrong)."""

    def __init__(self, limit: int = MAX_STDERR_BYTES) -> None:
        self.limit = limit
        self._data = bytearray()

    def feed(self, data: bytes) -> None:
        self._data += data
        if len(self._data) > self.limit:
            del self._data[: len(self._data) - self.limit]

    def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")
