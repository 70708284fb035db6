"""A `farm` CLI in a child process whose progress lines a test waits on (never on the clock)."""
from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time


class FarmProcess:
    """`python -m orchestrator.cli ARGS` with stderr read line by line on a thread, so a test can
    wait for a progress line (piped, farm prints one per cell start and end) with a deadline."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, fragment: str, timeout_s: float) -> str:
        """The first stderr line containing `fragment`; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {fragment!r} within {timeout_s} s: {''.join(self.stderr)}") from None
            if line is None:
                raise AssertionError(f"farm ended before printing {fragment!r}: {''.join(self.stderr)}")
            self.stderr.append(line)
            if fragment in line:
                return line

    def finish(self, timeout_s: float = 180) -> tuple[int, str]:
        """Wait for the process; (exit code, all of stderr)."""
        try:
            self.proc.wait(timeout=timeout_s)
        finally:
            self.proc.kill()
        while True:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.stderr.append(line)
        return self.proc.returncode, "".join(self.stderr)
