"""Each board's own OpenSSH server: its config, starting it, waiting until it listens, stopping it.

A board is a real `/usr/sbin/sshd -D -e -f <its config>` listening on its own loopback
address (127.0.0.11, .12, ... port 2222 by default; never anything outside 127.0.0.0/8),
with its own ed25519 host key, public-key login only (`PasswordAuthentication no`,
`UsePAM no`, `StrictModes no`) as the board user. Its files live in
`<lab dir>/boards/<name>/` (sshd_config, host key, sshd.pid, sshd.log).

Readiness is the sshd's own "Server listening on ADDRESS port PORT" log line, not a probe
connection (which could reach some other program on that port). Stopping kills the sshd
and everything that came in through it (see orchestrator.lab.processes), then removes
the board's cgroups.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from orchestrator.lab.accounts import BOARD_USER
from orchestrator.lab.cgroups import cgroup_dir, cgroup_pids, remove_cgroup, write
from orchestrator.lab.errors import LabError
from orchestrator.lab.processes import (
    CHILDREN,
    STOP_TIMEOUT_S,
    descendants,
    is_board_sshd,
    kill,
    sessions_of,
    terminate,
    wait_gone,
)
from orchestrator.lab.records import BoardRecord, BoardSpec, Emulation

SSHD = "/usr/sbin/sshd"
SSHD_READY_TIMEOUT_S = 10.0


def board_dir(lab_dir: Path, name: str) -> Path:
    """The folder of the board's sshd files (and, for a native board, its `work/`)."""
    return lab_dir / "boards" / name


def sshd_config(
    spec: BoardSpec, host_key: Path, board_dir: Path, authorized_keys: Path, emulation: Emulation | None = None
) -> str:
    """The board's sshd_config: its address, host key and login user, key-only."""
    # An emulated board: sshd (this machine's) chroots the session into the arm64 root, whose
    # /bin/sh and everything after it run under qemu-aarch64 (binfmt_misc, fix-binary flag).
    chroot = [f"ChrootDirectory {emulation.root}"] if emulation else []
    return "\n".join(
        [
            f"# farm lab board {spec.name} ({spec.profile}); written by `farm lab up`, rewritten each time",
            f"ListenAddress {spec.address}:{spec.port}",
            f"HostKey {host_key}",
            f"PidFile {board_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            f"AllowUsers {emulation.user if emulation else BOARD_USER}",
            *chroot,
            "PermitRootLogin no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "AllowTcpForwarding yes",
            "X11Forwarding no",
            "MaxStartups 64:30:128",
            "MaxSessions 64",
            "ClientAliveInterval 15",
            "ClientAliveCountMax 4",
            "Subsystem sftp internal-sftp",
            "LogLevel INFO",
            "",
        ]
    )


def start_board(lab_dir: Path, record: BoardRecord, limits_enforced: bool) -> int:
    """Start the board's sshd detached, put it in its cgroups, wait until it accepts."""
    config = record.config
    check = subprocess.run([SSHD, "-t", "-f", config], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise LabError(f"sshd rejects the config of board {record.name} ({config}): {check.stderr.strip()}")
    log_path = board_dir(lab_dir, record.name) / "sshd.log"
    with open(log_path, "ab") as log:
        log_offset = log.tell()
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", config],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    CHILDREN[proc.pid] = proc
    try:
        if limits_enforced:
            for controller, path in record.cgroups.items():
                write(cgroup_dir(controller, path) / "cgroup.procs", str(proc.pid))
        _wait_until_listening(proc, record, log_path, log_offset)
    except BaseException:
        terminate(proc.pid)
        raise
    return proc.pid


def _wait_until_listening(proc: subprocess.Popen, record: BoardRecord, log_path: Path, log_offset: int) -> None:
    """Wait for *this* sshd's "Server listening on ADDRESS port PORT" (a probe connection could
    reach some other program on that port), or its exit."""
    ready_line = f"Server listening on {record.address} port {record.port}".encode()
    deadline = time.monotonic() + SSHD_READY_TIMEOUT_S
    delay_s = 0.002
    while True:
        with open(log_path, "rb") as log:
            log.seek(log_offset)
            if ready_line in log.read() and proc.poll() is None:
                return
        if proc.poll() is not None:
            with open(log_path, "rb") as log:
                log.seek(log_offset)
                tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
            hint = ""
            if any("Address already in use" in line for line in tail):
                hint = (
                    f" Something else listens on {record.address}:{record.port}: stop it, or start the lab "
                    "on other addresses."
                )
            raise LabError(
                f"sshd of board {record.name} exited at start (status {proc.returncode}): "
                + " | ".join(tail)
                + hint
            )
        if time.monotonic() >= deadline:
            raise LabError(
                f"sshd of board {record.name} did not listen on {record.address}:{record.port} "
                f"within {SSHD_READY_TIMEOUT_S:g} s (see {log_path})"
            )
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


def stop_board(lab_dir: Path, record: BoardRecord) -> None:
    """Kill the board's sshd and everything that came in through it; remove its cgroups."""
    pids: set[int] = set()
    sshd_pid = record.pid
    if sshd_pid and is_board_sshd(sshd_pid, record.config):
        pids |= descendants(sshd_pid)
    else:
        sshd_pid = None
    # A pid file left by an sshd we lost track of (state written before a crash).
    pid_file = board_dir(lab_dir, record.name) / "sshd.pid"
    with contextlib.suppress(OSError, ValueError):
        other = int(pid_file.read_text().strip())
        if other != sshd_pid and is_board_sshd(other, record.config):
            pids |= descendants(other)
            pids.add(other)
    for controller, path in record.cgroups.items():
        pids |= cgroup_pids(cgroup_dir(controller, path))
    pids |= sessions_of(record.address, record.port, record.user)
    if sshd_pid:
        pids.add(sshd_pid)
    pids.discard(os.getpid())
    for pid in pids:
        kill(pid, signal.SIGKILL)
    wait_gone(pids, STOP_TIMEOUT_S)
    for controller, path in record.cgroups.items():
        remove_cgroup(cgroup_dir(controller, path))


def board_alive(record: BoardRecord) -> bool:
    """True when the board's recorded sshd still runs (a recycled pid does not count)."""
    if not record.pid:
        return False
    return is_board_sshd(record.pid, record.config)
