"""The built-in `local` board: the agent runs as a subprocess of the controller."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Sequence

from orchestrator.errors import TransportError
from orchestrator.transport.base import BoundedBuffer, CommandResult, LineCallback, LineSplitter


class LocalTransport:
    """Runs commands on this machine. Staged files are used in place (no copy)."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self._workdir = Path(workdir)
        self._env = env
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._closed = False  # after close() (Ctrl-C) nothing new starts

    @property
    def workdir(self) -> str:
        self._workdir.mkdir(parents=True, exist_ok=True)
        return str(self._workdir)

    def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        on_stdout_line: LineCallback | None = None,
    ) -> CommandResult:
        started = time.monotonic()
        env = None
        if self._env:
            env = {**os.environ, **self._env}
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self.workdir,
                start_new_session=True,  # its own process group: we can stop it and its worker
            )
        except OSError as exc:
            raise TransportError(f"{self.name}: cannot start {argv[0]!r}: {exc}", kind="missing-runtime") from exc
        with self._lock:
            self._running.add(proc)
            closed = self._closed
        if closed:  # closed while it was starting: stop it before it measures anything
            _kill_group(proc)
        stderr = BoundedBuffer()
        stderr_thread = threading.Thread(target=_pump, args=(proc.stderr, stderr.feed), daemon=True)
        stderr_thread.start()
        stdout = LineSplitter(on_stdout_line)
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(timeout_s, on_timeout)
        timer.start()
        try:
            assert proc.stdout is not None
            _pump(proc.stdout, stdout.feed)
            stdout.finish()
            proc.wait(timeout=max(1.0, timeout_s))
        except BaseException:
            _kill_group(proc)
            proc.wait(timeout=10)
            raise
        finally:
            timer.cancel()
            stderr_thread.join(timeout=10)
            self._running.discard(proc)
        duration_s = time.monotonic() - started
        if timed_out.is_set():
            raise TransportError(
                f"{self.name}: command timed out after {timeout_s:.0f} s: {argv[0]} {' '.join(argv[1:3])}",
                kind="timeout",
            )
        return CommandResult(
            argv=tuple(argv),
            exit_code=proc.returncode,
            stdout=stdout.text(),
            stderr=stderr.text(),
            duration_s=duration_s,
        )

    def stage_file(self, local_path: Path, remote_name: str, sha256: str) -> tuple[str, int]:
        return str(Path(local_path).resolve()), 0

    def fetch_file(self, remote_path: str, local_path: Path) -> int:
        import shutil

        try:
            shutil.copyfile(remote_path, local_path)
        except OSError as exc:
            raise TransportError(f"{self.name}: cannot fetch {remote_path}: {exc.strerror or exc}", kind="agent-error") from exc
        return Path(local_path).stat().st_size

    def close(self) -> None:
        """Stop whatever is still running and start nothing more (used on Ctrl-C: no orphan agent
        or worker left, and no cell that was about to start runs after it)."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for proc in running:
            _kill_group(proc)


def _pump(stream, feed) -> None:
    """Read a pipe in chunks until EOF (never a whole line at once: lines may be huge)."""
    fd = stream.fileno()
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            return
        feed(data)


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the command and everything it started (the agent and its worker)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
