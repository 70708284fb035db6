"""Finding and killing a board's processes, read from /proc, with every wait bounded.

A board's sshd is started detached (its own session), so `lab down` cannot rely on a
process group: it finds what to kill by ancestry (the sshd's descendants), by the
board user's SSH_CONNECTION (sessions that came in on the board's address and port) and,
where limits are enforced, by cgroup membership. pids are checked against the sshd's
command line and state before any signal, so a recycled pid is never killed.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

from orchestrator.lab.accounts import BOARD_USER
from orchestrator.lab.errors import LabError

STOP_TIMEOUT_S = 5.0

# sshd servers started by this process, kept so they can be reaped (no zombies in a long-lived caller).
CHILDREN: dict[int, subprocess.Popen] = {}


def is_board_sshd(pid: int, config: str) -> bool:
    """True when `pid` is a live sshd started with `config` (not a recycled pid)."""
    # sshd's listener rewrites its title ("sshd: /usr/sbin/sshd -D -e -f CFG [listener] ..."),
    # so look for the config path anywhere in the command line, and at the executable.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        exe = os.readlink(f"/proc/{pid}/exe")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    named = bool(config) and (config.encode() + b" ") in cmdline + b" "
    return state != "Z" and os.path.basename(exe) == "sshd" and named


def _process_table() -> dict[int, int]:
    """pid -> parent pid of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            table[int(entry.name)] = int(fields[1])
    return table


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children, ...), not `pid` itself."""
    children: dict[int, list[int]] = {}
    for child, parent in _process_table().items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def sessions_of(address: str, port: int, user: str = BOARD_USER) -> set[int]:
    """Processes of the board user whose SSH_CONNECTION says they came in on address:port."""
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return set()
    suffix = f" {address} {port}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid != uid:
                continue
            for item in (entry / "environ").read_bytes().split(b"\0"):
                if item.startswith(b"SSH_CONNECTION=") and item.endswith(suffix):
                    found.add(int(entry.name))
                    break
    return found


def kill(pid: int, sig: int) -> None:
    """Send `sig` to `pid`; one already gone (or not ours) is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def terminate(pid: int) -> None:
    """SIGKILL `pid` and wait (bounded) until it is gone."""
    kill(pid, signal.SIGKILL)
    wait_gone({pid}, STOP_TIMEOUT_S)


def _alive(pid: int) -> bool:
    child = CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del CHILDREN[pid]
            return False
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout_s: float) -> None:
    """Wait until every pid has exited (our own children reaped); LabError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    left = set(pids)
    delay_s = 0.002
    while left:
        left = {pid for pid in left if _alive(pid)}
        if not left:
            return
        if time.monotonic() >= deadline:
            raise LabError(f"processes {sorted(left)} did not stop within {timeout_s:g} s after SIGKILL")
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)
