"""cgroup v1 groups that hold a board to its profile's CPU, memory and core limits.

The board's sshd pid goes into `cgroup.procs` of the board's cpu, memory and cpuset
cgroups (`/farm-lab/<lab id>/<board>` in each hierarchy), so every session and every
process a benchmark starts inherits the limits, and shows up in `/proc/self/cgroup`: an
agent reads its limits from `/sys/fs/cgroup/cpu/<path>/cpu.cfs_quota_us` +
`cpu.cfs_period_us`, `/sys/fs/cgroup/memory/<path>/memory.limit_in_bytes` and
`/sys/fs/cgroup/cpuset/<path>/cpuset.cpus`. Setting them needs root.

Without cgroup v1 (or without write access to it) the boards run without limits and
`lab_status` says so in `LabState.limits_note` (`cgroup_problem()` gives the reason).
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from pathlib import Path

from orchestrator.lab.errors import LabError
from orchestrator.lab.processes import STOP_TIMEOUT_S, kill
from orchestrator.lab.profiles import CPU_PERIOD_US, BoardLimits

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_CONTROLLERS = ("cpu", "memory", "cpuset")
CGROUP_PARENT = "farm-lab"


def cgroup_problem() -> str:
    """'' when cgroup v1 cpu/memory/cpuset can be used, else why not (boards then run unlimited)."""
    if os.geteuid() != 0:
        return "not root: boards run without CPU/memory limits"
    missing = [c for c in CGROUP_CONTROLLERS if not (CGROUP_ROOT / c / "cgroup.procs").is_file()]
    if missing or not (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").is_file():
        return (
            f"cgroup v1 controllers {', '.join(missing) or 'cpu'} are not mounted under {CGROUP_ROOT}: boards run "
            "without CPU/memory limits (farm lab's profiles need cgroup v1 cpu, memory and cpuset)"
        )
    probe = CGROUP_ROOT / "cpu" / CGROUP_PARENT
    try:
        probe.mkdir(exist_ok=True)
    except OSError as exc:
        return f"cannot create cgroups under {CGROUP_ROOT} ({exc.strerror}): boards run without CPU/memory limits"
    return ""


def host_cpus() -> list[int]:
    """The cores boards may be pinned to: the root cpuset's, else this process's affinity."""
    text = ""
    with contextlib.suppress(OSError):
        text = (CGROUP_ROOT / "cpuset" / "cpuset.cpus").read_text().strip()
    cpus = _parse_cpu_list(text) if text else sorted(os.sched_getaffinity(0))
    return cpus or [0]


def _parse_cpu_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            cpus.extend(range(int(low), int(high) + 1))
        else:
            cpus.append(int(part))
    return cpus


def cgroup_dir(controller: str, path: str) -> Path:
    """Where the cgroup `path` (as `/proc/self/cgroup` names it) of `controller` lies."""
    return CGROUP_ROOT / controller / path.lstrip("/")


def make_cgroups(lab_id: str, board: str, limits: BoardLimits) -> dict[str, str]:
    """The board's cgroups with `limits` written; returns controller -> path in its hierarchy."""
    relative = f"/{CGROUP_PARENT}/{lab_id}/{board}"
    paths = {}
    for controller in CGROUP_CONTROLLERS:
        root = CGROUP_ROOT / controller
        current = root
        for part in (CGROUP_PARENT, lab_id, board):
            parent = current
            current = current / part
            current.mkdir(exist_ok=True)
            if controller == "cpuset":
                # A cpuset cgroup takes no process until it has cpus and mems of its own.
                for name in ("cpuset.cpus", "cpuset.mems"):
                    if not _read(current / name):
                        write(current / name, _read(parent / name))
        paths[controller] = relative
    cpu = cgroup_dir("cpu", relative)
    write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
    write(cpu / "cpu.cfs_quota_us", str(limits.cpu_quota_us if limits.cpu_quota_us is not None else -1))
    memory = cgroup_dir("memory", relative)
    if limits.memory_limit_bytes is not None:
        # Raising a limit needs memsw raised first, lowering needs it lowered after: try both orders.
        memsw = memory / "memory.memsw.limit_in_bytes"
        with contextlib.suppress(OSError):
            write(memsw, "-1")
        write(memory / "memory.limit_in_bytes", str(limits.memory_limit_bytes))
        with contextlib.suppress(OSError):
            write(memsw, str(limits.memory_limit_bytes))
    else:
        with contextlib.suppress(OSError):
            write(memory / "memory.memsw.limit_in_bytes", "-1")
        write(memory / "memory.limit_in_bytes", "-1")
    cpuset = cgroup_dir("cpuset", relative)
    write(cpuset / "cpuset.cpus", limits.cpuset_cpus or _read(cpuset.parent / "cpuset.cpus"))
    return paths


def cgroup_pids(path: Path) -> set[int]:
    """The processes in the cgroup at `path` (none when it is gone)."""
    try:
        return {int(x) for x in (path / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def remove_cgroup(path: Path) -> None:
    """Remove the cgroup at `path`, killing what is left in it, within STOP_TIMEOUT_S."""
    if not path.is_dir():
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    delay_s = 0.002
    while True:
        try:
            path.rmdir()
            return
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise LabError(f"cannot remove cgroup {path}: {exc.strerror} (processes left: "
                               f"{sorted(cgroup_pids(path))})") from exc
        for pid in cgroup_pids(path):
            kill(pid, signal.SIGKILL)
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)


def remove_lab_cgroup_parents(lab_id: str) -> None:
    """The lab's own cgroup folders, and farm-lab/ itself when no other lab uses it."""
    for controller in CGROUP_CONTROLLERS:
        lab_group = CGROUP_ROOT / controller / CGROUP_PARENT / lab_id
        for path in (lab_group, lab_group.parent):
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty: another lab may still use farm-lab/


def _read(path: Path) -> str:
    return path.read_text().strip()


def write(path: Path, value: str) -> None:
    """Write a cgroup file in one write() (the kernel takes each write as one value)."""
    with open(path, "w") as handle:
        handle.write(value)
