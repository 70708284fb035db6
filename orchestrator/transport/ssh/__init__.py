"""SSH boards: one paramiko connection per transport, opened on first use.

Why paramiko's `SSHClient` directly and not fabric's `Connection`:

- Host keys. fabric's `Connection` always installs `AutoAddPolicy` (trust any new
  key, silently). farm refuses unknown keys unless told to accept new ones, appends
  accepted keys to the known_hosts file itself (SSHClient.save_host_keys would
  rewrite the whole file) and always refuses a changed key, naming the file and line.
- Sockets and timeouts. We create the socket (connect timeout, TCP_NODELAY: an exec
  round trip drops from ~44 ms to ~2 ms on loopback) or use a `direct-tcpip` channel
  of the previous hop as the socket, and give paramiko the banner/auth/channel
  timeouts. fabric's gateway chain and `connect_timeout` have been seen to wait 60 s
  on an unreachable host.
- Commands. A timeout must stop the remote command *and its children*; fabric's
  runner only closes the channel and leaves the process running on the board. Our
  own read loop also streams stdout lines to the caller as they arrive.

One module a job; `SSHTransport` only composes them:

- config.py: where a board is (inventory settings completed from ~/.ssh/config, ProxyJump).
- connect.py: the socket, the jump hosts, the login, and which failure is which kind.
- host_keys.py: known_hosts checks (unknown key refused or appended, changed key refused).
- exec.py: the remote command shape (the wrapper script and its pid line), streaming
  output, timeouts and killing the command's whole process tree.
- sftp.py: staging by content hash verified on the board, fetching, free space, rename;
  over exec channels where the board has no SFTP.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import paramiko

from orchestrator.boards import Board
from orchestrator.transport.base import CommandResult, LineCallback
from orchestrator.transport.ssh.connect import BoardConnection
from orchestrator.transport.ssh.exec import CommandRunner, SSHStream
from orchestrator.transport.ssh.sftp import BoardFiles

__all__ = ["SSHTransport"]

DEFAULT_WORKDIR = "~/.farm"


class SSHTransport:
    """Runs commands on one board over SSH (see the module docstring).

    Connects lazily; one thread uses a transport at a time (the runner guarantees
    it), and any number of transports may run in parallel threads.
    """

    def __init__(self, board: Board) -> None:
        self.name = board.name
        self._board = board
        self._workdir: str | None = None
        self._conn = BoardConnection(board)
        self._commands = CommandRunner(self._conn, board)
        self._files = BoardFiles(self._conn, self, board.python or "python3")

    @property
    def workdir(self) -> str:
        """The board's work directory, absolute as the board sees it (created on first use)."""
        with self._conn.lock:
            if self._workdir is None:
                self._workdir = self._commands.create_workdir(self._board.workdir or DEFAULT_WORKDIR)
            return self._workdir

    def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        on_stdout_line: LineCallback | None = None,
    ) -> CommandResult:
        """Run `argv` in the work dir; see the Transport protocol and exec.py's docstring."""
        argv = tuple(argv)
        if not argv:
            raise ValueError("run() needs a program to run")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        started = time.monotonic()
        workdir = self.workdir
        command = self._commands.command_line(argv, workdir)
        return self._commands.execute(command, argv, timeout_s, on_stdout_line, started)

    @property
    def known_workdir(self) -> str | None:
        """The work dir's real path once known (never runs a command to find it)."""
        with self._conn.lock:
            return self._workdir

    def learn_workdir(self, path: str) -> None:
        """The work dir's real path, from whoever created it (the agent session): no command needed."""
        with self._conn.lock:
            if self._workdir is None:
                self._workdir = path

    def open_stream(self, argv: Sequence[str]) -> SSHStream:
        """Start `argv` (in the work dir when it is known, else in the login directory) and keep
        its stdin open; see transport.base.Stream."""
        argv = tuple(argv)
        if not argv:
            raise ValueError("open_stream() needs a program to run")
        with self._conn.lock:
            workdir = self._workdir
        return self._commands.open_stream(argv, workdir)

    def put_file(self, local_path: Path, remote_name: str) -> int:
        """Copy `local_path` to `<workdir>/<remote_name>` as it is (SFTP, else an exec channel)."""
        return self._files.put(local_path, remote_name)

    @property
    def sftp_missing(self) -> bool:
        """The board's SSH server refused SFTP: files go over exec channels."""
        return self._files.sftp_missing

    def stage_file(self, local_path: Path, remote_name: str, sha256: str) -> tuple[str, int]:
        """Put `local_path` at `<workdir>/<remote_name>` unless the board has it with this sha256
        (checked on the board); returns (path on the board, bytes sent). See sftp.py."""
        return self._files.stage(local_path, remote_name, sha256)

    def fetch_file(self, remote_path: str, local_path: Path) -> int:
        """Copy a board file (relative paths: inside the work dir) to `local_path`; returns bytes received."""
        return self._files.fetch(remote_path, local_path)

    def drop_connection(self) -> None:
        """Close the connection now, without trying to stop commands through it (it is dead: a
        half-open link); the next use connects again."""
        self._commands.forget_all()
        with self._conn.lock:
            self._conn.drop()

    def close(self) -> None:
        """Stop commands still running (Ctrl-C: no orphan agent or worker left on the board),
        then close the connection and the jump hosts'. Safe to call more than once, from any thread."""
        self._commands.stop_all()
        with self._conn.lock:
            self._conn.drop()

    # The live connection, for tests that look at its socket and its hops.

    def _connection(self) -> paramiko.Transport:
        return self._conn.transport()

    @property
    def _clients(self) -> list[paramiko.SSHClient]:
        return self._conn.clients
