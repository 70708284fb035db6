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

Remote command shape (`run`): every argv element is `shlex.quote`d once for the
login shell, which hands them as positional parameters to a fixed wrapper script::

    cd <workdir> && exec [env K=V ...] sh -c '<WRAPPER>' farm-run <argv...>

The wrapper prints its pid as the first stdout line (never given to the caller), checks
that the program exists (if not: TransportError "missing-runtime", as LocalTransport
raises when it cannot start the program), starts
`"$@"` under `setsid` in its own session/process group, waits for it, kills what
is left of that group (no orphans after a normal exit either) and exits with the
command's status, so a command killed by SIGKILL (the OOM killer) reports 137
instead of a channel with no status. On timeout or any exception while waiting,
a second exec channel kills the wrapper's descendants and their process groups.

Connection failures become `TransportError` kinds: refused port, DNS failure,
no route -> "unreachable"; TCP connect, banner, key exchange or auth taking longer
than `board.connect_timeout_s` -> "timeout"; bad key -> "auth"; unknown or changed
host key -> "host-key"; connection lost mid-way -> "disconnected".
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import posixpath
import re
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import paramiko
from paramiko.hostkeys import HostKeyEntry, HostKeys, InvalidHostKey

from orchestrator.boards import Board
from orchestrator.errors import BadInputError, TransportError
from orchestrator.ssh_config import ResolvedSSH, resolve_ssh_settings
from orchestrator.transport.base import BoundedBuffer, CommandResult, LineCallback, LineSplitter

# paramiko logs tracebacks of failed handshakes from its own thread; farm reports the failure
# itself (with a kind), so keep them out of stderr unless the user configures logging.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
DEFAULT_WORKDIR = "~/.farm"
# Seconds to wait for the second channel that stops a timed-out command.
KILL_TIMEOUT_S = 5.0
# Seconds to wait for the wrapper's pid line when a command must be stopped before it came.
PID_WAIT_S = 2.0
# After the command's exit status arrives, how long to wait for its output to end
# (a background child may still hold stdout open) before killing what is left.
OUTPUT_GRACE_S = 2.0
# Longest wait for one SFTP reply before a stalled upload counts as a timeout.
MIN_SFTP_STALL_TIMEOUT_S = 30.0
# Hashing a staged file on the board (hundreds of MB on a slow SD card).
HASH_TIMEOUT_S = 300.0
KEEPALIVE_INTERVAL_S = 15
READ_CHUNK_BYTES = 65536

PID_MARKER = "__farm_pid__"
NOT_FOUND_MARKER = "__farm_not_found__"
_PID_LINE_RE = re.compile(rb"^" + PID_MARKER.encode() + rb" (\d+)\n")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# Runs the command in its own session, cleans up after. The pid line goes first on stdout: the
# same pipe as the command's output, so it always arrives before any of it (stderr could lag).
_WRAPPER = (
    f'echo "{PID_MARKER} $$"; '
    f'command -v "$1" >/dev/null 2>&1 || {{ echo "{NOT_FOUND_MARKER}" >&2; exit 127; }}; '
    'if command -v setsid >/dev/null 2>&1; then setsid "$@" & else "$@" & fi; '
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

# Prints the sha256 of $1, or "missing"; creates $1's folder. sha256sum, else the board's Python.
_HASH_SCRIPT = (
    'f=$1; mkdir -p -- "${f%/*}" || exit 1; '
    'if [ ! -f "$f" ]; then echo missing; exit 0; fi; '
    'if command -v sha256sum >/dev/null 2>&1; then sha256sum < "$f"; '
    'else "$2" -c "$3" "$f"; fi'
)
_PY_SHA256 = (
    "import hashlib,sys\n"
    "h=hashlib.sha256()\n"
    "with open(sys.argv[1],'rb') as f:\n"
    "    for b in iter(lambda: f.read(1<<20), b''): h.update(b)\n"
    "print(h.hexdigest())\n"
)

# Serialises appends to known_hosts files between threads of this process (flock covers processes).
_KNOWN_HOSTS_LOCK = threading.Lock()


class SSHTransport:
    """Runs commands on one board over SSH (see the module docstring).

    Connects lazily; one thread uses a transport at a time (the runner guarantees
    it), and any number of transports may run in parallel threads.
    """

    def __init__(self, board: Board) -> None:
        self.name = board.name
        self._board = board
        self._lock = threading.RLock()
        self._clients: list[paramiko.SSHClient] = []  # jump hosts first, the board last
        self._sftp: paramiko.SFTPClient | None = None
        self._workdir: str | None = None
        self._resolved: ResolvedSSH | None = None
        self._known_hosts = Path(os.path.expanduser(board.known_hosts_file or DEFAULT_KNOWN_HOSTS))
        self._connect_timeout_s = float(board.connect_timeout_s)
        # Wrapper pids of commands running now, so close() (Ctrl-C from another thread) can stop them.
        self._running: set[int] = set()
        self._running_lock = threading.Lock()

    # ------------------------------------------------------------------ public API

    @property
    def workdir(self) -> str:
        """The board's work directory, absolute as the board sees it (created on first use)."""
        with self._lock:
            if self._workdir is None:
                wanted = self._board.workdir or DEFAULT_WORKDIR
                command = " ".join(
                    ["sh", "-c", shlex.quote(_WORKDIR_SCRIPT), "farm-workdir", shlex.quote(wanted)]
                )
                result = self._exec(command, ("mkdir", wanted), 30.0, None, time.monotonic())
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
                self._workdir = path[0]
            return self._workdir

    def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        on_stdout_line: LineCallback | None = None,
    ) -> CommandResult:
        """Run `argv` in the work dir; see the Transport protocol and the module docstring."""
        argv = tuple(argv)
        if not argv:
            raise ValueError("run() needs a program to run")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        started = time.monotonic()
        workdir = self.workdir
        return self._exec(self._command_line(argv, workdir), argv, timeout_s, on_stdout_line, started)

    def stage_file(self, local_path: Path, remote_name: str, sha256: str) -> tuple[str, int]:
        """Put `local_path` at `<workdir>/<remote_name>` unless the board has it with this sha256.

        The board's copy is checked by hashing it on the board, never by name alone.
        Uploads go to a temporary name, are hashed on the board, then renamed into
        place atomically, so a half-written file never carries the final name.
        Returns (path on the board, bytes sent).
        """
        _check_remote_name(remote_name)
        want = sha256.strip().lower()
        if not _SHA256_RE.match(want):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        local_path = Path(local_path)
        try:
            size_bytes = local_path.stat().st_size
        except OSError as exc:
            raise BadInputError(f"cannot read {local_path}: {exc.strerror or exc}") from exc
        path = posixpath.join(self.workdir, remote_name)
        if self._remote_sha256(path) == want:
            return path, 0
        tmp = f"{path}.part-{secrets.token_hex(6)}"
        try:
            handle = open(local_path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise BadInputError(f"cannot read {local_path}: {exc.strerror or exc}") from exc
        try:
            sftp = self._sftp_client()
            reader = _HashingReader(handle)
            try:
                sftp.putfo(reader, tmp, file_size=size_bytes, confirm=True)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                if reader.read_error is not None:
                    raise BadInputError(f"cannot read {local_path}: {reader.read_error}") from exc
                raise self._upload_error(exc, path, size_bytes) from exc
            if reader.hexdigest() != want:
                raise BadInputError(
                    f"{local_path}: its sha256 is {reader.hexdigest()}, not the {want} it was staged as "
                    "(the file changed while farm was using it?)"
                )
            got = self._remote_sha256(tmp)
            if got != want:
                raise self._upload_error(None, path, size_bytes, detail=f"the board's copy hashes to {got}")
            self._rename(sftp, tmp, path)
        except BaseException:
            self._remove_quietly(tmp)
            raise
        finally:
            handle.close()
        return path, size_bytes

    def fetch_file(self, remote_path: str, local_path: Path) -> int:
        """Copy a board file (relative paths: inside the work dir) to `local_path`; returns bytes received.

        Written to a temporary name next to `local_path` and renamed, so a cut transfer
        never leaves a partial file under the final name.
        """
        if not posixpath.isabs(remote_path):
            remote_path = posixpath.join(self.workdir, remote_path)
        local_path = Path(local_path)
        tmp = local_path.with_name(f".{local_path.name}.part-{secrets.token_hex(6)}")
        try:
            sftp = self._sftp_client()
            try:
                with open(tmp, "wb") as handle:
                    sftp.getfo(remote_path, handle)
            except FileNotFoundError as exc:
                raise TransportError(f"{self.name}: cannot fetch {remote_path}: no such file on the board",
                                     kind="agent-error") from exc
            except (OSError, EOFError, paramiko.SSHException) as exc:
                if isinstance(exc, OSError) and exc.filename == str(tmp):
                    raise BadInputError(f"cannot write {local_path}: {exc.strerror or exc}") from exc
                if _is_timeout(exc) or not self._sftp_alive():
                    with self._lock:
                        self._drop_connection()
                    raise TransportError(
                        f"{self.name}: connection lost while fetching {remote_path}: {_describe(exc)}",
                        kind="timeout" if _is_timeout(exc) else "disconnected",
                    ) from exc
                raise TransportError(f"{self.name}: cannot fetch {remote_path}: {_describe(exc)}",
                                     kind="agent-error") from exc
            os.replace(tmp, local_path)
        finally:
            tmp.unlink(missing_ok=True)
        return local_path.stat().st_size

    def close(self) -> None:
        """Stop commands still running (Ctrl-C: no orphan agent or worker left on the board),
        then close the connection and the jump hosts'. Safe to call more than once, from any thread."""
        with self._running_lock:
            running = sorted(self._running)
        for pid in running:
            self._stop_remote(pid)
        with self._lock:
            self._drop_connection()

    # ------------------------------------------------------------------ connecting

    def _connection(self) -> paramiko.Transport:
        """The live paramiko transport to the board, connecting (again) when needed."""
        with self._lock:
            if self._clients:
                transport = self._clients[-1].get_transport()
                if transport is not None and transport.is_active():
                    return transport
                self._drop_connection()
            self._connect()
            transport = self._clients[-1].get_transport()
            assert transport is not None
            return transport

    def _connect(self) -> None:
        resolved = self._resolved or resolve_ssh_settings(self._board)
        self._resolved = resolved
        hops = [*resolved.jump_hosts, resolved]
        clients: list[paramiko.SSHClient] = []
        try:
            for index, hop in enumerate(hops):
                is_board = index == len(hops) - 1
                what = "board" if is_board else "jump host"
                sock = self._open_socket(hop, clients[-1] if clients else None, resolved, what)
                identity_files = list(hop.identity_files)
                if not is_board and not identity_files:
                    # A jump host with no IdentityFile of its own: try the board's key too.
                    identity_files = list(resolved.identity_files)
                clients.append(self._login(hop, sock, identity_files, what))
        except BaseException:
            for client in reversed(clients):
                client.close()
            raise
        board_transport = clients[-1].get_transport()
        if board_transport is not None:
            board_transport.set_keepalive(KEEPALIVE_INTERVAL_S)
        self._clients = clients

    def _open_socket(
        self,
        hop: ResolvedSSH,
        previous: paramiko.SSHClient | None,
        board: ResolvedSSH,
        what: str,
    ):
        """A TCP socket to the first hop, or a direct-tcpip channel through the previous hop."""
        timeout_s = self._connect_timeout_s
        where = f"{hop.hostname}:{hop.port}"
        if previous is not None:
            previous_transport = previous.get_transport()
            assert previous_transport is not None
            try:
                return previous_transport.open_channel(
                    "direct-tcpip", (hop.hostname, hop.port), ("127.0.0.1", 0), timeout=timeout_s
                )
            except paramiko.ChannelException as exc:
                raise TransportError(
                    f"{self.name}: the jump host could not reach {what} {where}: {exc.text or exc}",
                    kind="unreachable",
                ) from exc
            except (paramiko.SSHException, EOFError, OSError) as exc:
                kind = "timeout" if _is_timeout(exc) else "disconnected"
                raise TransportError(
                    f"{self.name}: opening a tunnel to {what} {where} through the jump host failed: "
                    f"{_describe(exc)}",
                    kind=kind,
                ) from exc
        if hop.proxy_command and not board.jump_hosts:
            try:
                return paramiko.ProxyCommand(hop.proxy_command)
            except (paramiko.SSHException, OSError) as exc:
                raise TransportError(
                    f"{self.name}: ProxyCommand {hop.proxy_command!r} failed: {exc}", kind="unreachable"
                ) from exc
        try:
            sock = socket.create_connection((hop.hostname, hop.port), timeout=timeout_s)
        except socket.gaierror as exc:
            raise TransportError(
                f"{self.name}: cannot resolve {what} host {hop.hostname!r}: {exc.strerror or exc}",
                kind="unreachable",
            ) from exc
        except TimeoutError as exc:
            raise TransportError(
                f"{self.name}: {what} {where} did not answer within {timeout_s:g} s (connect timeout)",
                kind="unreachable",
            ) from exc
        except OSError as exc:
            raise TransportError(
                f"{self.name}: cannot connect to {what} {where}: {exc.strerror or exc}", kind="unreachable"
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _login(self, hop: ResolvedSSH, sock, identity_files: list[str], what: str) -> paramiko.SSHClient:
        """SSH handshake, host key check and public key login over `sock`."""
        timeout_s = self._connect_timeout_s
        where = f"{hop.user}@{hop.hostname}:{hop.port}"
        client = paramiko.SSHClient()
        try:
            if os.path.isfile(SYSTEM_KNOWN_HOSTS):
                client.load_system_host_keys(SYSTEM_KNOWN_HOSTS)
            if self._known_hosts.is_file():
                client.load_host_keys(str(self._known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            _close_sock(sock)
            raise BadInputError(f"{self.name}: cannot read known hosts file {self._known_hosts}: {exc}") from exc
        client.set_missing_host_key_policy(
            _KnownHostsPolicy(self.name, self._known_hosts, self._board.accept_new_host_keys, what)
        )
        usable_keys = [path for path in identity_files if os.path.isfile(os.path.expanduser(path))]
        if identity_files and not usable_keys and self._board.identity_file:
            client.close()
            _close_sock(sock)
            raise TransportError(
                f"{self.name}: identity file {self._board.identity_file} not found", kind="auth"
            )

        def transport_factory(sock, **kwargs):  # noqa: ANN001, ANN202 - paramiko's hook
            transport = paramiko.Transport(sock, **kwargs)
            transport.handshake_timeout = timeout_s  # key exchange, not paramiko's default 15 s
            return transport

        login_started = time.monotonic()
        try:
            client.connect(
                hostname=hop.hostname,
                port=hop.port,
                username=hop.user,
                key_filename=[os.path.expanduser(p) for p in usable_keys] or None,
                look_for_keys=not usable_keys,
                allow_agent=True,
                timeout=timeout_s,
                banner_timeout=timeout_s,
                auth_timeout=timeout_s,
                channel_timeout=timeout_s,
                sock=sock,
                transport_factory=transport_factory,
            )
        except BaseException as exc:
            client.close()
            _close_sock(sock)
            if isinstance(exc, (TransportError, KeyboardInterrupt, SystemExit)):
                raise
            timed_out = time.monotonic() - login_started >= 0.95 * timeout_s
            raise self._login_error(exc, hop, where, what, timed_out) from exc
        return client

    def _login_error(
        self, exc: BaseException, hop: ResolvedSSH, where: str, what: str, timed_out: bool
    ) -> TransportError:
        timeout_s = self._connect_timeout_s
        if isinstance(exc, paramiko.BadHostKeyException):
            return TransportError(
                _changed_key_message(self.name, what, _lookup_name(hop.hostname, hop.port), exc.key,
                                     exc.expected_key, self._known_hosts),
                kind="host-key",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            if "timeout" in str(exc).lower():
                return TransportError(
                    f"{self.name}: {what} {where}: login took longer than {timeout_s:g} s", kind="timeout"
                )
            return TransportError(
                f"{self.name}: {what} {where} refused the login: {exc} "
                "(check user and identity_file in the inventory or ~/.ssh/config)",
                kind="auth",
            )
        if _is_timeout(exc) or (timed_out and isinstance(exc, (paramiko.SSHException, EOFError))):
            # paramiko gives up a stalled key exchange with "No existing session": the clock tells.
            return TransportError(
                f"{self.name}: {what} {where} accepted the connection but its SSH server did not answer "
                f"within {timeout_s:g} s",
                kind="timeout",
            )
        text = str(exc)
        if isinstance(exc, paramiko.SSHException) and "No authentication methods" in text:
            return TransportError(
                f"{self.name}: {what} {where}: no key to log in with (set identity_file)", kind="auth"
            )
        if isinstance(exc, (paramiko.SSHException, EOFError, OSError)):
            return TransportError(
                f"{self.name}: {what} {where} closed the connection during the SSH handshake: {_describe(exc)}",
                kind="disconnected",
            )
        return TransportError(f"{self.name}: {what} {where}: {_describe(exc)}", kind="unreachable")

    def _drop_connection(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self._sftp.close()
            self._sftp = None
        for client in reversed(self._clients):
            client.close()
        self._clients = []

    # ------------------------------------------------------------------ commands

    def _command_line(self, argv: tuple[str, ...], workdir: str) -> str:
        env_words = []
        for key, value in self._board.env.items():
            if not _ENV_NAME_RE.match(key):
                raise BadInputError(f"{self.name}: bad environment variable name {key!r}")
            env_words.append(shlex.quote(f"{key}={value}"))
        words = ["cd", shlex.quote(workdir), "&&", "exec"]
        if env_words:
            words += ["env", *env_words]
        words += ["sh", "-c", shlex.quote(_WRAPPER), "farm-run", *(shlex.quote(a) for a in argv)]
        return " ".join(words)

    def _open_session(self) -> paramiko.Channel:
        transport = self._connection()
        try:
            return transport.open_session(timeout=self._connect_timeout_s)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            with self._lock:
                self._drop_connection()
            raise TransportError(
                f"{self.name}: the connection broke while opening a channel: {_describe(exc)}",
                kind="timeout" if _is_timeout(exc) else "disconnected",
            ) from exc

    def _exec(
        self,
        command: str,
        argv: tuple[str, ...],
        timeout_s: float,
        on_stdout_line: LineCallback | None,
        started: float,
    ) -> CommandResult:
        deadline = started + timeout_s
        chan = self._open_session()
        streams = _Streams(on_stdout_line, on_pid=self._started)
        try:
            return self._finish(chan, streams, command, argv, timeout_s, started, deadline)
        finally:
            if streams.pid is not None:
                with self._running_lock:
                    self._running.discard(streams.pid)

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
            chan.close()
            if isinstance(exc, (paramiko.SSHException, EOFError, OSError)) and not streams.in_callback:
                raise TransportError(
                    f"{self.name}: the connection broke while running {argv[0]!r}: {_describe(exc)}",
                    kind="disconnected",
                ) from exc
            raise
        if finished == "timeout":
            self._stop_remote(_await_pid(chan, streams))
            chan.close()
            shown = " ".join(shlex.quote(a) for a in argv[:3])
            raise TransportError(
                f"{self.name}: command timed out after {timeout_s:g} s and was stopped: {shown}",
                kind="timeout",
            )
        if finished == "leftovers":
            # The command exited but something it started still holds its output open.
            self._stop_remote(streams.pid)
        exit_code = chan.exit_status if chan.exit_status_ready() and chan.exit_status != -1 else None
        chan.close()
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
        with self._lock:
            if not self._clients:
                return
            transport = self._clients[-1].get_transport()
        if transport is None or not transport.is_active():
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
                chan.close()
        except (paramiko.SSHException, EOFError, OSError):
            pass  # best effort: the caller is already reporting a failure

    # ------------------------------------------------------------------ staging

    def _remote_sha256(self, path: str) -> str | None:
        python = self._board.python or "python3"
        result = self.run(["sh", "-c", _HASH_SCRIPT, "farm-hash", path, python, _PY_SHA256], HASH_TIMEOUT_S)
        out = result.stdout.strip()
        if result.exit_code is None:
            raise TransportError(f"{self.name}: the connection dropped while checking {path}", kind="disconnected")
        if result.exit_code != 0:
            kind = "disk-full" if "No space left" in result.stderr else "agent-error"
            raise TransportError(
                f"{self.name}: cannot check {path} on the board: "
                f"{result.stderr.strip() or f'exit status {result.exit_code}'}",
                kind=kind,
            )
        if out == "missing":
            return None
        digest = out[:64].lower()
        if not _SHA256_RE.match(digest):
            raise TransportError(f"{self.name}: cannot hash {path} on the board: {out[:200]!r}", kind="agent-error")
        return digest

    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            transport = self._connection()
            if self._sftp is None or self._sftp.get_channel() is None or self._sftp.get_channel().closed:
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise TransportError(
                        f"{self.name}: cannot start SFTP on the board: {_describe(exc)}",
                        kind="timeout" if _is_timeout(exc) else "disconnected",
                    ) from exc
                assert self._sftp is not None
                self._sftp.get_channel().settimeout(max(MIN_SFTP_STALL_TIMEOUT_S, 3 * self._connect_timeout_s))
            return self._sftp

    def _upload_error(
        self, exc: BaseException | None, path: str, size_bytes: int, detail: str = ""
    ) -> TransportError:
        """Classify a failed upload: stalled, connection lost, board full, or something else."""
        reason = detail or _describe(exc)
        if exc is not None and _is_timeout(exc):
            with self._lock:
                self._drop_connection()
            return TransportError(f"{self.name}: upload of {path} stalled: {reason}", kind="timeout")
        lost = TransportError(f"{self.name}: connection lost while uploading {path}: {reason}", kind="disconnected")
        if not self._sftp_alive():
            with self._lock:
                self._drop_connection()
            return lost
        free = self._free_bytes(posixpath.dirname(path))
        if free is None and not self._sftp_alive():
            with self._lock:
                self._drop_connection()
            return lost
        if free is not None and free < size_bytes:
            return TransportError(
                f"{self.name}: no room for {path} ({size_bytes} bytes, {free} bytes free): {reason}",
                kind="disk-full",
            )
        return TransportError(f"{self.name}: upload of {path} failed: {reason}", kind="agent-error")

    def _sftp_alive(self) -> bool:
        """The connection and the SFTP channel are both still up (an SFTP status error, not a drop)."""
        transport = self._clients[-1].get_transport() if self._clients else None
        if transport is None or not transport.is_active():
            return False
        channel = self._sftp.get_channel() if self._sftp is not None else None
        return channel is not None and not channel.closed

    def _free_bytes(self, directory: str) -> int | None:
        try:
            result = self.run(["df", "-Pk", directory], 30.0)
            fields = result.stdout.strip().splitlines()[-1].split()
            return int(fields[3]) * 1024
        except (TransportError, IndexError, ValueError):
            return None

    def _rename(self, sftp: paramiko.SFTPClient, tmp: str, path: str) -> None:
        try:
            sftp.posix_rename(tmp, path)
            return
        except OSError:
            pass  # the server lacks posix-rename@openssh.com: mv is atomic within one filesystem too
        result = self.run(["mv", "-f", tmp, path], 60.0)
        if result.exit_code != 0:
            raise TransportError(
                f"{self.name}: cannot move {tmp} to {path}: {result.stderr.strip()}", kind="agent-error"
            )

    def _remove_quietly(self, path: str) -> None:
        try:
            if self._sftp is not None:
                self._sftp.remove(path)
        except (OSError, EOFError, paramiko.SSHException):
            pass


# ---------------------------------------------------------------------- host keys


class _KnownHostsPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown host key: refuse with a hint, or (accept_new) accept and append it to the file."""

    def __init__(self, board_name: str, known_hosts: Path, accept_new: bool, what: str) -> None:
        self._board_name = board_name
        self._known_hosts = known_hosts
        self._accept_new = accept_new
        self._what = what

    def missing_host_key(self, client, hostname, key) -> None:  # noqa: ANN001 - paramiko's signature
        fingerprint = _fingerprint(key)
        if not self._accept_new:
            raise TransportError(
                f"{self._board_name}: the {self._what} {hostname} is not in {self._known_hosts} "
                f"(it offered {key.get_name()} {fingerprint}). If this is the right machine, accept its key "
                "with --accept-new-host-keys or `accept_new_host_keys: true` in the inventory "
                "(a key that later changes is still refused).",
                kind="host-key",
            )
        _append_known_host(self._known_hosts, hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)


def _append_known_host(path: Path, lookup_name: str, key: paramiko.PKey) -> None:
    line = f"{lookup_name} {key.get_name()} {key.get_base64()}\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _KNOWN_HOSTS_LOCK, open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(handle.tell() - 1)
                if handle.read(1) != "\n":
                    handle.write("\n")
            handle.write(line)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lookup_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _known_host_lines(path: Path, lookup_name: str) -> list[int]:
    """Line numbers of `path` whose host patterns name `lookup_name` (plain or hashed)."""
    lines = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            entry = HostKeyEntry.from_line(raw, lineno)
        except (InvalidHostKey, paramiko.SSHException, ValueError, TypeError):
            continue
        if entry is None:
            continue
        for pattern in entry.hostnames:
            if pattern == lookup_name or (
                pattern.startswith("|1|") and HostKeys.hash_host(lookup_name, pattern) == pattern
            ):
                lines.append(lineno)
                break
    return lines


def _changed_key_message(
    board_name: str, what: str, lookup_name: str, got: paramiko.PKey, expected: paramiko.PKey, known_hosts: Path
) -> str:
    places = [f"{known_hosts}:{n}" for n in _known_host_lines(known_hosts, lookup_name)]
    system = Path(SYSTEM_KNOWN_HOSTS)
    places += [f"{system}:{n}" for n in _known_host_lines(system, lookup_name)]
    where = ", ".join(places) or str(known_hosts)
    return (
        f"{board_name}: the host key of the {what} {lookup_name} has CHANGED: it offered {got.get_name()} "
        f"{_fingerprint(got)}, but {where} records {expected.get_name()} {_fingerprint(expected)}. "
        "The board may have been reinstalled, or someone may be intercepting the connection. If you know "
        f"why it changed, delete the old entry (check {where}; "
        f"ssh-keygen -R {shlex.quote(lookup_name)} -f {shlex.quote(str(known_hosts))}) and connect again "
        "with --accept-new-host-keys. farm never replaces a changed key by itself."
    )


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


# ---------------------------------------------------------------------- helpers


class _HashingReader:
    """A file wrapper that hashes what SFTP reads from it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._hash = hashlib.sha256()
        self.read_error: OSError | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._handle.read(size)
        except OSError as exc:
            self.read_error = exc
            raise
        self._hash.update(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _check_remote_name(remote_name: str) -> None:
    parts = remote_name.split("/")
    if (
        not remote_name
        or remote_name.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(c in remote_name for c in "\0\n")
    ):
        raise ValueError(f"remote_name must be a relative path inside the work dir, got {remote_name!r}")


def _is_timeout(exc: BaseException | None) -> bool:
    """True when `exc`, or the error it was raised while handling, is a timeout."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return True
        if isinstance(exc, paramiko.SSHException) and "timed out" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_sock(sock) -> None:  # noqa: ANN001 - a socket, channel or ProxyCommand
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        sock.close()
