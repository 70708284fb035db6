"""Mount points under a folder, read from /proc/self/mountinfo, and unmounting them.

A folder with a file system mounted inside it (an arm64 root's /proc, a debootstrap left
half-done) must never be deleted with rmtree: it would delete inside the mounted file
system. So `lab down --purge` and the arm64 root's clean-up ask here first.
"""
from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

from orchestrator.lab.errors import LabError


def mountpoints() -> list[str]:
    """Mount points of this mount namespace (octal escapes of /proc/self/mountinfo decoded)."""
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` (deepest first)."""
    base = str(Path(path).absolute())
    found = [p for p in mountpoints() if p == base or p.startswith(base.rstrip("/") + "/")]
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_under(path: Path) -> None:
    """Unmount everything at or below `path`, deepest first, so it can be deleted safely."""
    for point in mounts_under(path):
        done = subprocess.run(["umount", point], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, text=True, timeout=60)
    left = mounts_under(path)
    if left:
        raise LabError(f"cannot unmount {', '.join(left)}: unmount them by hand")
