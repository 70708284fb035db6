"""Host keys: which machines farm trusts, checked against known_hosts files.

Unlike fabric's AutoAddPolicy (see the package docstring): an unknown key is refused
unless new keys are accepted, and an accepted key is appended to the known_hosts file
(never rewriting it); a changed key is always refused, naming the file and line.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shlex
import threading
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry, HostKeys, InvalidHostKey

from orchestrator.errors import BadInputError, TransportError

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"

# Serialises appends to known_hosts files between threads of this process (flock covers processes).
_KNOWN_HOSTS_LOCK = threading.Lock()


def known_hosts_path(configured: str | None) -> Path:
    """The user's known_hosts file: the inventory's `known_hosts_file`, else ~/.ssh/known_hosts."""
    return Path(os.path.expanduser(configured or DEFAULT_KNOWN_HOSTS))


def load_known_hosts(client: paramiko.SSHClient, board_name: str, known_hosts: Path) -> None:
    """Give `client` the system's and the user's known host keys (a missing file is empty).

    Raises BadInputError when a file exists but cannot be read or parsed.
    """
    try:
        if os.path.isfile(SYSTEM_KNOWN_HOSTS):
            client._system_host_keys = _parsed_host_keys(SYSTEM_KNOWN_HOSTS)  # what load_system_host_keys fills
        if known_hosts.is_file():
            client._host_keys = _parsed_host_keys(str(known_hosts))  # what load_host_keys fills
            client._host_keys_filename = str(known_hosts)
    except (OSError, paramiko.SSHException) as exc:
        raise BadInputError(f"{board_name}: cannot read known hosts file {known_hosts}: {exc}") from exc


# Parsed known_hosts files by (path, inode, size, mtime, ctime): every connection of a run (and of a
# fleet worker's life) checks the same file, and paramiko parses a 1,000-line one in ~85 ms
# (it builds a key object per line). A file that changes is parsed again.
_PARSED: dict[tuple[str, int, int, int, int], HostKeys] = {}
_PARSED_LOCK = threading.Lock()
_PARSED_KEEP = 8


def _parsed_host_keys(path: str) -> HostKeys:
    """A fresh HostKeys holding `path`'s entries, parsed once per version of the file."""
    stat = os.stat(path)
    version = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)  # ctime: no one can set it
    with _PARSED_LOCK:
        parsed = _PARSED.get(version)
    if parsed is None:
        parsed = HostKeys(path)
        with _PARSED_LOCK:
            for older in [v for v in _PARSED if v[0] == path]:
                del _PARSED[older]
            while len(_PARSED) >= _PARSED_KEEP:
                del _PARSED[next(iter(_PARSED))]  # the oldest file parsed
            _PARSED[version] = parsed
    copy = HostKeys()
    copy._entries = list(parsed._entries)  # farm only appends entries (KnownHostsPolicy), never edits one
    return copy


class KnownHostsPolicy(paramiko.MissingHostKeyPolicy):
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


def lookup_name(hostname: str, port: int) -> str:
    """The name a host's key is recorded under in known_hosts (`[host]:port` off port 22)."""
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


def changed_key_message(
    board_name: str, what: str, lookup_name: str, got: paramiko.PKey, expected: paramiko.PKey, known_hosts: Path
) -> str:
    """Why a changed host key is refused, where it is recorded, and how to clear it deliberately."""
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
