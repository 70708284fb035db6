"""The built-in `local` board: the agent runs as a subprocess of the controller."""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Sequence

from orchestrator.errors import TransportError
from orchestrator.transport.base import BoundedBuffer, CommandResult, LineCallback, LineSplitter

READ_CHUNK_BYTES = 65536


class LocalTransport:
    """Runs commands on this machine. Staged files are used in place (no copy)."""

    # The agent reads the controller's files where they are: nothing to upload or check.
    shares_files = True

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

    def put_file(self, local_path: Path, remote_name: str) -> int:
        target = Path(self.workdir) / remote_name
        shutil.copyfile(local_path, target)
        return target.stat().st_size

    def learn_workdir(self, path: str) -> None:
        pass  # the local work dir is known from the start

    def open_stream(self, argv: Sequence[str]) -> "LocalStream":
        env = {**os.environ, **self._env} if self._env else None
        try:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                cwd=self.workdir, start_new_session=True,
            )
        except OSError as exc:
            raise TransportError(f"{self.name}: cannot start {argv[0]!r}: {exc}", kind="missing-runtime") from exc
        self._running.add(proc)
        return LocalStream(self.name, proc, on_end=self._running.discard)

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
    """Stop the command and everything it started (the agent and its workers, which lead process
    groups of their own)."""
    for pid in [proc.pid, *_descendants(proc.pid)]:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: parent pids), listed before any is killed."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo and len(found) < 10_000:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


class LocalStream:
    """A running local command we talk to (see transport.base.Stream)."""

    def __init__(self, name: str, proc: subprocess.Popen, on_end) -> None:  # noqa: ANN001
        self.name = name
        self.proc = proc
        self._on_end = on_end
        self._stderr = BoundedBuffer()
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._stdout_fd = proc.stdout.fileno()
        self._stdin_fd = proc.stdin.fileno()
        self._stderr_thread = threading.Thread(target=_pump, args=(proc.stderr, self._stderr.feed), daemon=True)
        self._stderr_thread.start()
        self._send_lock = threading.Lock()

    def send(self, data: bytes, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        view = memoryview(data)
        with self._send_lock:
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransportError(f"{self.name}: the agent stopped reading its input", kind="disconnected")
                try:
                    _, writable, _ = select.select([], [self._stdin_fd], [], remaining)
                    if writable:
                        view = view[os.write(self._stdin_fd, view[:READ_CHUNK_BYTES]):]
                except (OSError, ValueError) as exc:
                    raise TransportError(f"{self.name}: the agent is gone ({exc})", kind="disconnected") from exc

    def receive(self, timeout_s: float) -> bytes | None:
        try:
            readable, _, _ = select.select([self._stdout_fd], [], [], max(0.0, timeout_s))
            if not readable:
                return b""
            data = os.read(self._stdout_fd, READ_CHUNK_BYTES)
        except (OSError, ValueError):
            return None
        return data or None

    def close_input(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout_s: float) -> int | None:
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._stderr_thread.join(timeout=2)
        self._on_end(self.proc)
        return code

    def stop(self) -> None:
        _kill_group(self.proc)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._on_end(self.proc)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass

    def stderr_text(self) -> str:
        return self._stderr.text()
