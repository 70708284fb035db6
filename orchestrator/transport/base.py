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
    - `workdir` is the board's farm work directory (created on demand).
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

    def close(self) -> None: ...
