"""Running commands on a board: the remote wrapper, streaming its output, stopping it.

Remote command shape (`run`): every argv element is `shlex.quote`d once for the
login shell, which hands them as positional parameters to a fixed wrapper script::

    cd <workdir> && exec [env K=V ...] sh -c '<WRAPPER>' farm-run <argv...>

The wrapper prints its pid as the first stdout line (never given to the caller), checks
that the program exists (if not: TransportError "missing-runtime", as LocalTransport
raises when it cannot start the program), starts
`"$@"` under `setsid` in its own session/process group (with the channel's stdin: a shell
gives a background job /dev/null unless told otherwise), waits for it, kills what
is left of that group (no orphans after a normal exit either) and exits with the
command's status, so a command killed by SIGKILL (the OOM killer) reports 137
instead of a channel with no status. On timeout or any exception while waiting,
a second exec channel kills the wrapper's descendants and their process groups.

`open_stream` runs a command the same way but keeps its stdin open and hands back an
`SSHStream` (transport.base.Stream): the agent session talks to the agent over it.
"""
from __future__ import annotations

import contextlib
import re
import select
import shlex
import threading
import time
from collections.abc import Callable

import paramiko

from orchestrator.boards import Board
from orchestrator.errors import BadInputError, TransportError
from orchestrator.transport.base import BoundedBuffer, CommandResult, LineCallback, LineSplitter
from orchestrator.transport.ssh.connect import BoardConnection, close_quietly
from orchestrator.transport.ssh.failures import describe

# Seconds to wait for the second channel that stops a timed-out command.
KILL_TIMEOUT_S = 5.0
# Seconds to wait for the wrapper's pid line when a command must be stopped before it came.
PID_WAIT_S = 2.0
# After the command's exit status arrives, how long to wait for its output to end
# (a background child may still hold stdout open) before killing what is left.
OUTPUT_GRACE_S = 2.0
READ_CHUNK_BYTES = 65536
# Seconds allowed for creating the work directory.
WORKDIR_TIMEOUT_S = 30.0

PID_MARKER = "__farm_pid__"
NOT_FOUND_MARKER = "__farm_not_found__"
_PID_LINE_RE = re.compile(rb"^" + PID_MARKER.encode() + rb" (\d+)\n")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Runs the command in its own session, cleans up after. The pid line goes first on stdout: the
# same pipe as the command's output, so it always arrives before any of it (stderr could lag).
_WRAPPER = (
    f'echo "{PID_MARKER} $$"; '
    f'command -v "$1" >/dev/null 2>&1 || {{ echo "{NOT_FOUND_MARKER}" >&2; exit 127; }}; '
    'if command -v setsid >/dev/null 2>&1; then setsid "$@" <&3 3<&- & else "$@" <&3 3<&- & fi 3<&0; '
    'p=$!; wait "$p"; s=$?; '
    'kill -KILL -- "-$p" 2>/dev/null; '
    'exit "$s"'
)

# Kills the wrapper ($1), all its descendants and every process group they lead.
# Descendants are listed before anything is killed, so none is re-parented away first.
_KILL_TREE = (
    'walk() { for c in $(pgrep -P "$1" 2>/dev/null); do walk "$c"; done; echo "$1"; }; '
    'all=$(walk "$1"); '
    'for p in $all; do kill -KILL -- "-$p" 2>/dev/null; done; '
    'for c in $(pgrep -P "$1" 2>/dev/null); do pkill -KILL -s "$c" 2>/dev/null; done; '
    'kill -KILL $all 2>/dev/null; exit 0'
)

# Creates the work directory (expanding a leading ~ on the board) and prints its real path.
_WORKDIR_SCRIPT = (
    'd=$1; case $d in "~") d=$HOME;; "~/"*) d=$HOME/${d#"~/"};; esac; '
    'mkdir -p -- "$d" && cd -- "$d" && pwd -P'
)


class CommandRunner:
    """Runs commands on one board over `conn` and remembers which are running, to stop them."""

    def __init__(self, conn: BoardConnection, board: Board) -> None:
        self.name = board.name
        self._conn = conn
        self._env = board.env
        # Wrapper pids of commands running now, so close() (Ctrl-C from another thread) can stop them.
        self._running: set[int] = set()
        self._running_lock = threading.Lock()

    def create_workdir(self, wanted: str) -> str:
        """Create the work directory `wanted` (~ expanded on the board); returns its real absolute path."""
        command = " ".join(["sh", "-c", shlex.quote(_WORKDIR_SCRIPT), "farm-workdir", shlex.quote(wanted)])
        result = self.execute(command, ("mkdir", wanted), WORKDIR_TIMEOUT_S, None, time.monotonic())
        path = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
        if result.exit_code is None:
            raise TransportError(
                f"{self.name}: the connection dropped while preparing the work directory",
                kind="disconnected",
            )
        if result.exit_code != 0 or not path or not path[0].startswith("/"):
            kind = "disk-full" if "No space left" in result.stderr else "agent-error"
            raise TransportError(
                f"{self.name}: cannot create the work directory {wanted!r} on the board: "
                f"{result.stderr.strip() or f'exit status {result.exit_code}'}",
                kind=kind,
            )
        return path[0]

    def command_line(self, argv: tuple[str, ...], workdir: str | None) -> str:
        """The login shell's command line that runs `argv` in `workdir` (None: the login
        directory) under the wrapper."""
        env_words = []
        for key, value in self._env.items():
            if not _ENV_NAME_RE.match(key):
                raise BadInputError(f"{self.name}: bad environment variable name {key!r}")
            env_words.append(shlex.quote(f"{key}={value}"))
        words = ["cd", shlex.quote(workdir), "&&", "exec"] if workdir is not None else ["exec"]
        if env_words:
            words += ["env", *env_words]
        words += ["sh", "-c", shlex.quote(_WRAPPER), "farm-run", *(shlex.quote(a) for a in argv)]
        return " ".join(words)

    def execute(
        self,
        command: str,
        argv: tuple[str, ...],
        timeout_s: float,
        on_stdout_line: LineCallback | None,
        started: float,
    ) -> CommandResult:
        """Run the shell `command` (for `argv`) until it ends or `started + timeout_s` passes."""
        deadline = started + timeout_s
        chan = self._conn.open_session()
        streams = _Streams(on_stdout_line, on_pid=self._started)
        try:
            return self._finish(chan, streams, command, argv, timeout_s, started, deadline)
        finally:
            if streams.pid is not None:
                with self._running_lock:
                    self._running.discard(streams.pid)

    def open_stream(self, argv: tuple[str, ...], workdir: str | None) -> "SSHStream":
        """Start `argv` under the wrapper with its stdin open; see SSHStream."""
        command = self.command_line(argv, workdir)
        chan = self._conn.open_session()
        try:
            chan.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            close_quietly(chan)
            raise TransportError(
                f"{self.name}: the connection broke while starting {argv[0]!r}: {describe(exc)}", kind="disconnected"
            ) from exc
        return SSHStream(self, chan, argv)

    def stop_all(self) -> None:
        """Stop every command still running (no orphan agent or worker left on the board)."""
        with self._running_lock:
            running = sorted(self._running)
        for pid in running:
            self._stop_remote(pid)

    def forget_all(self) -> None:
        """The connection is gone: nothing can be stopped through it any more."""
        with self._running_lock:
            self._running.clear()

    def _started(self, pid: int) -> None:
        with self._running_lock:
            self._running.add(pid)

    def _finish(
        self,
        chan: paramiko.Channel,
        streams: _Streams,
        command: str,
        argv: tuple[str, ...],
        timeout_s: float,
        started: float,
        deadline: float,
    ) -> CommandResult:
        try:
            chan.exec_command(command)
            chan.shutdown_write()  # no stdin: a program reading it sees end-of-file, not a hang
            finished = _pump(chan, streams, deadline)
        except BaseException as exc:
            self._stop_remote(_await_pid(chan, streams))
            close_quietly(chan)
            if isinstance(exc, (paramiko.SSHException, EOFError, OSError)) and not streams.in_callback:
                raise TransportError(
                    f"{self.name}: the connection broke while running {argv[0]!r}: {describe(exc)}",
                    kind="disconnected",
                ) from exc
            raise
        if finished == "timeout":
            self._stop_remote(_await_pid(chan, streams))
            close_quietly(chan)
            shown = " ".join(shlex.quote(a) for a in argv[:3])
            raise TransportError(
                f"{self.name}: command timed out after {timeout_s:g} s and was stopped: {shown}",
                kind="timeout",
            )
        if finished == "leftovers":
            # The command exited but something it started still holds its output open.
            self._stop_remote(streams.pid)
        exit_code = chan.exit_status if chan.exit_status_ready() and chan.exit_status != -1 else None
        close_quietly(chan)
        if exit_code == 127 and streams.stderr_text().startswith(NOT_FOUND_MARKER + "\n"):
            # As LocalTransport does when it cannot start the program: the board lacks it.
            raise TransportError(
                f"{self.name}: cannot start {argv[0]!r} on the board: not found (or not executable)",
                kind="missing-runtime",
            )
        return CommandResult(
            argv=argv,
            exit_code=exit_code,
            stdout=streams.stdout_text(),
            stderr=streams.stderr_text(),
            duration_s=time.monotonic() - started,
        )

    def _stop_remote(self, pid: int | None) -> None:
        """Kill the wrapper `pid`, its descendants and their groups, over a second channel."""
        if pid is None:
            return
        transport = self._conn.active_transport()
        if transport is None:
            return  # the board lost the connection; nothing can reach it now
        command = " ".join(["sh", "-c", shlex.quote(_KILL_TREE), "farm-kill", str(int(pid))])
        try:
            chan = transport.open_session(timeout=KILL_TIMEOUT_S)
            try:
                chan.settimeout(KILL_TIMEOUT_S)
                chan.exec_command(command)
                chan.shutdown_write()
                chan.status_event.wait(KILL_TIMEOUT_S)
            finally:
                close_quietly(chan)
        except (paramiko.SSHException, EOFError, OSError):
            pass  # best effort: the caller is already reporting a failure


class SSHStream:
    """A command on the board we talk to while it runs (transport.base.Stream), over one channel.

    The wrapper's pid line is taken out of stdout (and the pid registered, so the transport's
    close() stops the command); stderr is drained into a bounded buffer on every read, so a
    chatty stderr never stalls the channel.
    """

    def __init__(self, runner: CommandRunner, chan: paramiko.Channel, argv: tuple[str, ...]) -> None:
        self.name = runner.name
        self._runner = runner
        self._chan = chan
        self._argv = argv
        self._head = bytearray()  # stdout until the wrapper's pid line has been seen
        self.pid: int | None = None
        self._stderr = BoundedBuffer()
        self._send_lock = threading.Lock()

    def send(self, data: bytes, timeout_s: float) -> None:
        with self._send_lock:
            try:
                self._chan.settimeout(timeout_s)
                self._chan.sendall(data)
            except (paramiko.SSHException, EOFError, OSError) as exc:  # socket.timeout is an OSError
                raise TransportError(f"{self.name}: cannot write to {self._argv[0]!r} on the board: {describe(exc)}",
                                     kind="disconnected") from exc

    def receive(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        chan = self._chan
        try:
            while True:
                while chan.recv_stderr_ready():
                    self._stderr.feed(chan.recv_stderr(READ_CHUNK_BYTES))
                if chan.recv_ready():
                    return self._take_pid_line(chan.recv(READ_CHUNK_BYTES))
                if chan.eof_received or chan.closed:
                    if chan.recv_stderr_ready():
                        continue
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                select.select([chan], [], [], min(remaining, 0.5))
        except (paramiko.SSHException, EOFError, OSError):
            return None

    def _take_pid_line(self, data: bytes) -> bytes:
        if self.pid is not None:
            return data
        self._head += data
        cut = self._head.find(b"\n")
        if cut < 0:
            if len(self._head) > 200:  # no wrapper line: hand the bytes on as they are
                self.pid, data = 0, bytes(self._head)
                return data
            return b""
        line, rest = bytes(self._head[: cut + 1]), bytes(self._head[cut + 1:])
        self._head.clear()
        match = _PID_LINE_RE.match(line)
        if match:
            self.pid = int(match.group(1))
            self._runner._started(self.pid)
            return rest
        self.pid = 0
        return line + rest

    def close_input(self) -> None:
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            self._chan.shutdown_write()

    def wait(self, timeout_s: float) -> int | None:
        if not self._chan.status_event.wait(timeout_s):
            return None
        self._forget()
        code = self._chan.exit_status
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            while self._chan.recv_stderr_ready():
                self._stderr.feed(self._chan.recv_stderr(READ_CHUNK_BYTES))
        close_quietly(self._chan)
        return None if code == -1 else code

    def stop(self) -> None:
        """Kill the command's whole process tree (second channel), then close this one."""
        if self.pid:
            self._runner._stop_remote(self.pid)
        self._forget()
        close_quietly(self._chan)

    def _forget(self) -> None:
        if self.pid:
            with self._runner._running_lock:
                self._runner._running.discard(self.pid)

    def stderr_text(self) -> str:
        return self._stderr.text()


# ---------------------------------------------------------------------- reading a command's output


class _Streams(LineSplitter):
    """Collects a command's output: stdout split into bounded lines for the callback (the
    wrapper's pid line taken out first), stderr's last bytes."""

    def __init__(self, on_stdout_line: LineCallback | None, on_pid: Callable[[int], None] | None = None) -> None:
        super().__init__(on_stdout_line)
        self._on_pid = on_pid
        self._stderr = BoundedBuffer()
        self.pid: int | None = None
        self.in_callback = False  # an exception now is the caller's, not the connection's

    def feed_stdout(self, data: bytes) -> None:
        self.feed(data)

    def feed_stderr(self, data: bytes) -> None:
        self._stderr.feed(data)

    def mute(self) -> None:
        """Stop calling back (the command is being stopped)."""
        self.on_line = None

    def deliver(self, raw: bytes) -> None:
        if self.pid is None:
            match = _PID_LINE_RE.match(raw)
            if match:  # the wrapper's pid line, never the caller's
                self.pid = int(match.group(1))
                if self._on_pid is not None:
                    self._on_pid(self.pid)
                return
        self.in_callback = True
        super().deliver(raw)  # an exception from the callback leaves in_callback set, on purpose
        self.in_callback = False

    def stdout_text(self) -> str:
        return self.text()

    def stderr_text(self) -> str:
        return self._stderr.text()


def _await_pid(chan: paramiko.Channel, streams: _Streams, wait_s: float = PID_WAIT_S) -> int | None:
    """The wrapper's pid, reading (bounded) a little more output when it has not come yet."""
    streams.mute()
    deadline = time.monotonic() + wait_s
    with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
        while streams.pid is None and time.monotonic() < deadline:
            if chan.recv_ready():
                streams.feed_stdout(chan.recv(READ_CHUNK_BYTES))
            elif chan.recv_stderr_ready():
                streams.feed_stderr(chan.recv_stderr(READ_CHUNK_BYTES))
            elif chan.eof_received or chan.closed:
                break
            else:
                select.select([chan], [], [], min(0.1, max(0.0, deadline - time.monotonic())))
    return streams.pid


def _pump(chan: paramiko.Channel, streams: _Streams, deadline: float) -> str:
    """Read until the command ends. Returns "done", "timeout" or "leftovers".

    "leftovers": the exit status came but the output stayed open OUTPUT_GRACE_S
    longer (a background child holds it), so the caller kills what is left.
    """
    status_seen_at: float | None = None
    while True:
        while chan.recv_ready():
            streams.feed_stdout(chan.recv(READ_CHUNK_BYTES))
        while chan.recv_stderr_ready():
            streams.feed_stderr(chan.recv_stderr(READ_CHUNK_BYTES))
        now = time.monotonic()
        if chan.eof_received or chan.closed:
            if chan.recv_ready() or chan.recv_stderr_ready():
                continue
            streams.finish()
            if chan.status_event.wait(max(0.0, min(deadline - now, 1.0))):
                return "done"
            if time.monotonic() >= deadline:
                return "timeout"
            continue
        if now >= deadline:
            streams.finish()
            return "timeout"
        if chan.exit_status_ready():
            status_seen_at = status_seen_at or now
            if now - status_seen_at >= OUTPUT_GRACE_S:
                streams.finish()
                return "leftovers"
        wait_s = min(deadline - now, 0.5)
        select.select([chan], [], [], max(0.0, wait_s))
