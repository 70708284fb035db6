"""Moving files to and from a board: staging by content hash, fetching outputs.

Files go over SFTP where the board's SSH server has it, else over an exec channel (`cat >
<temporary name>` with the bytes on stdin; `cat <file>` to fetch), chosen automatically as
Ansible does: dropbear (common on Yocto images) and OpenSSH configs without a `Subsystem sftp`
line refuse the SFTP subsystem, and the first refusal switches this connection to exec.

A staged file is checked by hashing it on the board, never trusted by name alone, and
arrives under a temporary name that is renamed into place only once its hash is right.
A failed upload is told apart: stalled ("timeout"), connection lost ("disconnected"),
board full ("disk-full"), anything else ("agent-error").
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import secrets
import shlex
from pathlib import Path
from typing import BinaryIO

import paramiko

from orchestrator.errors import BadInputError, TransportError
from orchestrator.transport.base import Transport
from orchestrator.transport.ssh.connect import BoardConnection, close_quietly
from orchestrator.transport.ssh.failures import describe, is_timeout

# Longest wait for one SFTP reply before a stalled upload counts as a timeout.
MIN_SFTP_STALL_TIMEOUT_S = 30.0
# Hashing a staged file on the board (hundreds of MB on a slow SD card).
HASH_TIMEOUT_S = 300.0
# Seconds allowed for `df` (free space after a failed upload) and for `mv` (rename without SFTP's).
DF_TIMEOUT_S = 30.0
MOVE_TIMEOUT_S = 60.0

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
EXEC_CHUNK_BYTES = 256 * 1024

# Without SFTP: write stdin to $1 (creating its folder), or print $1.
_EXEC_PUT = 'mkdir -p -- "${1%/*}" && cat > "$1"'
_EXEC_GET = 'cat -- "$1"'

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


class BoardFiles:
    """Stages and fetches files over `conn`'s SFTP session, which it opens and keeps.

    `board` is the board's transport: its work directory, and `run` for the commands
    that check what SFTP did (hashing, free space, `mv`).
    """

    def __init__(self, conn: BoardConnection, board: Transport, python: str) -> None:
        self.name = conn.name
        self._conn = conn
        self._board = board
        self._python = python
        self._sftp: paramiko.SFTPClient | None = None
        self.sftp_missing = False  # the server refused the SFTP subsystem: files go over exec channels
        conn.on_drop(self._close_sftp)

    def stage(self, local_path: Path, remote_name: str, sha256: str) -> tuple[str, int]:
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
        path = posixpath.join(self._board.workdir, remote_name)
        if self._remote_sha256(path) == want:
            return path, 0
        tmp = f"{path}.part-{secrets.token_hex(6)}"
        try:
            handle = open(local_path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise BadInputError(f"cannot read {local_path}: {exc.strerror or exc}") from exc
        try:
            reader = _HashingReader(handle)
            self._put(reader, tmp, size_bytes, local_path)
            if reader.hexdigest() != want:
                raise BadInputError(
                    f"{local_path}: its sha256 is {reader.hexdigest()}, not the {want} it was staged as "
                    "(the file changed while farm was using it?)"
                )
            got = self._remote_sha256(tmp)
            if got != want:
                raise self._upload_error(None, path, size_bytes, detail=f"the board's copy hashes to {got}")
            self._rename(tmp, path)
        except BaseException:
            self._remove_quietly(tmp)
            raise
        finally:
            handle.close()
        return path, size_bytes

    def put(self, local_path: Path, remote_name: str) -> int:
        """Copy `local_path` to `<workdir>/<remote_name>` as it is (the caller checks and renames
        it on the board: the agent session does); returns the bytes sent."""
        _check_remote_name(remote_name)
        local_path = Path(local_path)
        try:
            size_bytes = local_path.stat().st_size
            handle = open(local_path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise BadInputError(f"cannot read {local_path}: {exc.strerror or exc}") from exc
        with handle:
            self._put(_HashingReader(handle), posixpath.join(self._board.workdir, remote_name), size_bytes,
                      local_path)
        return size_bytes

    def _put(self, reader: "_HashingReader", path: str, size_bytes: int, local_path: Path) -> None:
        """Write what `reader` reads to `path` on the board: over SFTP, else over an exec channel."""
        sftp = self._sftp_client()
        try:
            if sftp is not None:
                sftp.putfo(reader, path, file_size=size_bytes, confirm=True)
            else:
                self._exec_put(reader, path)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if reader.read_error is not None:
                raise BadInputError(f"cannot read {local_path}: {reader.read_error}") from exc
            raise self._upload_error(exc, path, size_bytes) from exc

    def _exec_put(self, reader: "_HashingReader", path: str) -> None:
        """`cat > path` with the file on stdin (no SFTP on the board)."""
        chan = self._exec(_EXEC_PUT, path)
        try:
            for data in iter(lambda: reader.read(EXEC_CHUNK_BYTES), b""):
                chan.sendall(data)
            chan.shutdown_write()
            status, stderr = self._exec_status(chan)
        finally:
            close_quietly(chan)
        if status != 0:
            raise OSError(stderr.strip() or f"cat exited with status {status}")

    def _exec(self, script: str, path: str) -> paramiko.Channel:
        chan = self._conn.open_session()
        chan.settimeout(self._stall_timeout_s())
        chan.exec_command(" ".join(["exec", "sh", "-c", shlex.quote(script), "farm-file", shlex.quote(path)]))
        return chan

    def _exec_status(self, chan: paramiko.Channel) -> tuple[int | None, str]:
        """The exit status of an exec channel whose output has been read (None: it did not come)."""
        stderr = b""
        if not chan.status_event.wait(self._stall_timeout_s()):
            raise TimeoutError("no exit status from the board")
        while chan.recv_stderr_ready() and len(stderr) < 65536:
            stderr += chan.recv_stderr(65536)
        return chan.exit_status, stderr.decode("utf-8", errors="replace")

    def _stall_timeout_s(self) -> float:
        return max(MIN_SFTP_STALL_TIMEOUT_S, 3 * self._conn.connect_timeout_s)

    def fetch(self, remote_path: str, local_path: Path) -> int:
        """Copy a board file (relative paths: inside the work dir) to `local_path`; returns bytes received.

        Written to a temporary name next to `local_path` and renamed, so a cut transfer
        never leaves a partial file under the final name.
        """
        if not posixpath.isabs(remote_path):
            remote_path = posixpath.join(self._board.workdir, remote_path)
        local_path = Path(local_path)
        tmp = local_path.with_name(f".{local_path.name}.part-{secrets.token_hex(6)}")
        try:
            sftp = self._sftp_client()
            try:
                with open(tmp, "wb") as handle:
                    if sftp is not None:
                        sftp.getfo(remote_path, handle)
                    else:
                        self._exec_get(remote_path, handle)
            except FileNotFoundError as exc:
                raise TransportError(f"{self.name}: cannot fetch {remote_path}: no such file on the board",
                                     kind="agent-error") from exc
            except (OSError, EOFError, paramiko.SSHException) as exc:
                if isinstance(exc, OSError) and exc.filename == str(tmp):
                    raise BadInputError(f"cannot write {local_path}: {exc.strerror or exc}") from exc
                if is_timeout(exc) or not self._sftp_alive():
                    with self._conn.lock:
                        self._conn.drop()
                    raise TransportError(
                        f"{self.name}: connection lost while fetching {remote_path}: {describe(exc)}",
                        kind="timeout" if is_timeout(exc) else "disconnected",
                    ) from exc
                raise TransportError(f"{self.name}: cannot fetch {remote_path}: {describe(exc)}",
                                     kind="agent-error") from exc
            os.replace(tmp, local_path)
        finally:
            tmp.unlink(missing_ok=True)
        return local_path.stat().st_size

    def _exec_get(self, remote_path: str, handle: BinaryIO) -> None:
        """`cat remote_path` into `handle` (no SFTP on the board)."""
        chan = self._exec(_EXEC_GET, remote_path)
        try:
            chan.shutdown_write()
            for data in iter(lambda: chan.recv(EXEC_CHUNK_BYTES), b""):
                handle.write(data)
            status, stderr = self._exec_status(chan)
        finally:
            close_quietly(chan)
        if status != 0:
            if "No such file" in stderr:
                raise FileNotFoundError(remote_path)
            raise TransportError(f"{self.name}: cannot fetch {remote_path}: {stderr.strip() or status}",
                                 kind="agent-error")

    # ------------------------------------------------------------------ the SFTP session

    def _sftp_client(self) -> paramiko.SFTPClient | None:
        """The SFTP session (opened on first use), or None when the board's server has no SFTP."""
        with self._conn.lock:
            transport = self._conn.transport()
            if self.sftp_missing:
                return None
            if self._sftp is None or self._sftp.get_channel() is None or self._sftp.get_channel().closed:
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    if self._conn.active_transport() is not None and not is_timeout(exc):
                        # the connection is fine: the server refused the subsystem (no SFTP there)
                        self.sftp_missing = True
                        self._sftp = None
                        return None
                    raise TransportError(
                        f"{self.name}: cannot start SFTP on the board: {describe(exc)}",
                        kind="timeout" if is_timeout(exc) else "disconnected",
                    ) from exc
                assert self._sftp is not None
                stall_timeout_s = max(MIN_SFTP_STALL_TIMEOUT_S, 3 * self._conn.connect_timeout_s)
                self._sftp.get_channel().settimeout(stall_timeout_s)
            return self._sftp

    def _sftp_alive(self) -> bool:
        """The connection and the SFTP channel are both still up (an SFTP status error, not a drop)."""
        if self._conn.active_transport() is None:
            return False
        if self.sftp_missing:
            return True  # exec channels: the connection is all there is
        channel = self._sftp.get_channel() if self._sftp is not None else None
        return channel is not None and not channel.closed

    def _close_sftp(self) -> None:
        """Run by the connection's drop, before it closes."""
        if self._sftp is not None:
            close_quietly(self._sftp)
            self._sftp = None

    # ------------------------------------------------------------------ checks on the board

    def _remote_sha256(self, path: str) -> str | None:
        result = self._board.run(
            ["sh", "-c", _HASH_SCRIPT, "farm-hash", path, self._python, _PY_SHA256], HASH_TIMEOUT_S
        )
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

    def _upload_error(
        self, exc: BaseException | None, path: str, size_bytes: int, detail: str = ""
    ) -> TransportError:
        """Classify a failed upload: stalled, connection lost, board full, or something else."""
        reason = detail or describe(exc)
        if exc is not None and is_timeout(exc):
            with self._conn.lock:
                self._conn.drop()
            return TransportError(f"{self.name}: upload of {path} stalled: {reason}", kind="timeout")
        lost = TransportError(f"{self.name}: connection lost while uploading {path}: {reason}", kind="disconnected")
        if not self._sftp_alive():
            with self._conn.lock:
                self._conn.drop()
            return lost
        free = self._free_bytes(posixpath.dirname(path))
        if free is None and not self._sftp_alive():
            with self._conn.lock:
                self._conn.drop()
            return lost
        if free is not None and free < size_bytes:
            return TransportError(
                f"{self.name}: no room for {path} ({size_bytes} bytes, {free} bytes free): {reason}",
                kind="disk-full",
            )
        return TransportError(f"{self.name}: upload of {path} failed: {reason}", kind="agent-error")

    def _free_bytes(self, directory: str) -> int | None:
        try:
            result = self._board.run(["df", "-Pk", directory], DF_TIMEOUT_S)
            fields = result.stdout.strip().splitlines()[-1].split()
            return int(fields[3]) * 1024
        except (TransportError, IndexError, ValueError):
            return None

    def _rename(self, tmp: str, path: str) -> None:
        sftp = self._sftp if not self.sftp_missing else None
        if sftp is not None:
            try:
                sftp.posix_rename(tmp, path)
                return
            except OSError:
                pass  # the server lacks posix-rename@openssh.com: mv is atomic within one filesystem too
        result = self._board.run(["mv", "-f", tmp, path], MOVE_TIMEOUT_S)
        if result.exit_code != 0:
            raise TransportError(
                f"{self.name}: cannot move {tmp} to {path}: {result.stderr.strip()}", kind="agent-error"
            )

    def _remove_quietly(self, path: str) -> None:
        try:
            if self._sftp is not None:
                self._sftp.remove(path)
            elif self.sftp_missing and self._conn.active_transport() is not None:
                self._board.run(["rm", "-f", path], MOVE_TIMEOUT_S)
        except (OSError, EOFError, paramiko.SSHException, TransportError):
            pass


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
