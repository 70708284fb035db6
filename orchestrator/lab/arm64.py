"""Emulated aarch64 boards: a Debian arm64 root file system run under qemu user emulation.

`farm lab up --arch arm64` (optional, slow; `lab_up(..., arch="arm64")`): every board of
such a lab runs a real Debian arm64 userland under qemu user emulation, reached over SSH
like any other board: `uname -m` says aarch64, python3 is Debian's aarch64 build, and
numpy/onnxruntime are absent until `farm inventory provision` installs aarch64 wheels into
its venv (the board then runs them: ~27x slower than native for onnxruntime, ~10x for pure
Python).

- Needs (root): `apt-get install qemu-user-static binfmt-support debootstrap`. `lab up`
  mounts binfmt_misc if needed and enables the qemu-aarch64 handler; it must have the
  F (fix-binary) flag, as Debian's qemu-user-static registers it, so it works in a chroot.
- The root file system: `debootstrap --arch=arm64 --variant=minbase --include=python3,procps
  bookworm` into `/var/lib/farm-lab-arm64/root` (env FARM_LAB_ARM64_ROOT; never under /tmp:
  sshd's ChrootDirectory wants every folder of the path owned by root and writable by no one
  else). Made once (~5 min measured on the 2-core VM, longer when it is busy; ~285 MB; deb.debian.org or
  env FARM_LAB_DEBIAN_MIRROR), then reused by every later `lab up`: the marker
  `<root>/.farm-lab-rootfs.json` records what was made. It lives outside the lab folder, so
  `lab down --purge` keeps it; delete it by hand to make it again.
- Login: a separate user `farmboard-arm64` (host account, and the same uid in the root's
  /etc/passwd). Each board's own sshd has `ChrootDirectory <root>` and `AllowUsers
  farmboard-arm64`: sshd itself is the host's x86 binary, the session's shell and everything
  it starts are aarch64 programs inside the root. SFTP is sshd's internal-sftp (in the chroot).
- In the root: /proc is mounted (the agent samples /proc/<pid>/status), /sys is not
  (onnxruntime's cpuinfo crashes under qemu when it sees the host's /sys CPU lists next to
  the host's x86 /proc/cpuinfo; see `ensure_root_mounts`), while any arm64 lab is up (labs register in `/var/lib/farm-lab-arm64/labs/`; the last
  `lab down` unmounts them). The board's workdir is `/farm-lab/<lab id>/<board>` inside the
  root (`lab down --purge` removes it).
- Boards are named `<profile>-arm64-<n>` (default profile `unlimited`; cgroup profiles work
  as for native boards), the inventory tags them `arch: aarch64`, `emulated: qemu-user`,
  `bare: "true"`, and their `python` is the default `python3`, so a provisioned venv is used.
- Measured memory includes qemu's own (the emulator is the process); latencies say nothing
  about a real Arm core's speed. The point is a real foreign userland: arch-specific wheels,
  provisioning from nothing, an agent on another Python build.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from orchestrator.lab.errors import LabError
from orchestrator.lab.locks import locked
from orchestrator.lab.mounts import mountpoints, unmount_under

ARM64_ROOT_ENV = "FARM_LAB_ARM64_ROOT"
DEFAULT_ARM64_ROOT = Path("/var/lib/farm-lab-arm64/root")
DEBIAN_MIRROR_ENV = "FARM_LAB_DEBIAN_MIRROR"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
ROOTFS_PACKAGES = ("python3", "procps")
ROOTFS_MARKER = ".farm-lab-rootfs.json"
ROOTFS_VERSION = 1
DEBOOTSTRAP_TIMEOUT_S = 1800.0
QEMU_AARCH64 = "/usr/bin/qemu-aarch64-static"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_AARCH64 = BINFMT_DIR / "qemu-aarch64"
BOARD_WORK_ROOT = "/farm-lab"  # emulated boards' workdirs, inside the root file system
ARCH_ALIASES = {"arm64": "aarch64", "aarch64": "aarch64", "x86_64": "x86_64", "amd64": "x86_64"}


def default_arm64_root() -> Path:
    """$FARM_LAB_ARM64_ROOT, else /var/lib/farm-lab-arm64/root."""
    value = os.environ.get(ARM64_ROOT_ENV, "").strip()
    return Path(value) if value else DEFAULT_ARM64_ROOT


def normalize_arch(arch: str) -> str:
    """`arm64`/`aarch64` -> aarch64, `amd64`/`x86_64` -> x86_64 (what `uname -m` says)."""
    value = ARCH_ALIASES.get(arch.strip().lower())
    if value is None:
        raise LabError(f"unknown architecture {arch!r}: choose {platform.machine()} (native) or arm64 (emulated)")
    return value


def missing_emulation_prerequisites(root: Path | None = None) -> list[str]:
    """What this machine lacks for emulated arm64 boards (beyond `missing_prerequisites`)."""
    root = Path(root or default_arm64_root()).absolute()
    problems = []
    if platform.machine() != "x86_64":
        problems.append(f"emulated arm64 boards are made on an x86_64 host, this one is {platform.machine()}")
    if not os.access(QEMU_AARCH64, os.X_OK):
        problems.append(
            f"{QEMU_AARCH64} not found: install qemu user emulation "
            "(`apt-get install -y qemu-user-static binfmt-support`)."
        )
    if _read_rootfs_marker(root) is None and shutil.which("debootstrap") is None:
        problems.append("debootstrap not found: install it (`apt-get install -y debootstrap`).")
    problems += chroot_path_problems(root)
    return problems


def ensure_arm64_root(root: Path | None = None, mirror: str | None = None) -> tuple[Path, str]:
    """The arm64 root file system, made by debootstrap once and reused (see the module docstring).

    Returns (root, note): the note says whether it was reused or made, and how long that took.
    """
    root = Path(root or default_arm64_root()).absolute()
    problems = missing_emulation_prerequisites(root)
    if problems:
        raise LabError("\n".join(problems))
    root.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(root.parent, 0o755)
    with locked(root.parent, ".rootfs.lock"):
        marker = _read_rootfs_marker(root)
        if marker is not None:
            return root, (f"arm64 root {root}: reused (debootstrapped {marker.get('created_at', '?')} in "
                          f"{marker.get('debootstrap_s', 0):.0f} s)")
        if root.exists():
            unmount_under(root)
            if any(root.iterdir()):
                raise LabError(
                    f"{root} exists but was not made by farm lab (no {ROOTFS_MARKER}): move it away, or set "
                    f"{ARM64_ROOT_ENV} to another folder"
                )
            root.rmdir()
        partial = root.with_name(root.name + ".partial")
        if partial.exists():  # an earlier debootstrap that did not finish
            unmount_under(partial)
            shutil.rmtree(partial)
        ensure_binfmt()  # debootstrap's second stage runs the root's aarch64 programs
        mirror = mirror or os.environ.get(DEBIAN_MIRROR_ENV, "").strip() or DEFAULT_DEBIAN_MIRROR
        argv = ["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
                DEBIAN_SUITE, str(partial), mirror]
        started = time.monotonic()
        log_path = root.parent / "debootstrap.log"
        try:
            with open(log_path, "wb") as log:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=DEBOOTSTRAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            unmount_under(partial)
            raise LabError(f"debootstrap took over {DEBOOTSTRAP_TIMEOUT_S:g} s (log: {log_path})") from None
        finally:
            unmount_under(partial)  # debootstrap mounts /proc and /sys in the target while it runs
        if done.returncode != 0:
            tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-4:])
            raise LabError(
                f"debootstrap of the arm64 root failed (status {done.returncode}; log {log_path}): {tail}. "
                f"It needs the Debian mirror {mirror} (env {DEBIAN_MIRROR_ENV}) and a working qemu-aarch64 "
                "binfmt handler."
            )
        elapsed_s = time.monotonic() - started
        with contextlib.suppress(OSError):
            for deb in (partial / "var" / "cache" / "apt" / "archives").glob("*.deb"):
                deb.unlink()
        marker = {
            "version": ROOTFS_VERSION,
            "suite": DEBIAN_SUITE,
            "arch": "arm64",
            "variant": "minbase",
            "packages": list(ROOTFS_PACKAGES),
            "mirror": mirror,
            "debootstrap_s": round(elapsed_s, 1),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (partial / ROOTFS_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        os.chmod(partial, 0o755)
        os.rename(partial, root)
    return root, f"arm64 root {root}: debootstrapped in {elapsed_s:.0f} s"


def _read_rootfs_marker(root: Path) -> dict | None:
    """What `ensure_arm64_root` recorded in `root`, or None when the root is not (wholly) there."""
    try:
        marker = json.loads((root / ROOTFS_MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("version") != ROOTFS_VERSION:
        return None
    if not os.access(root / "usr" / "bin" / "python3", os.F_OK):
        return None
    return marker


def chroot_path_problems(root: Path) -> list[str]:
    """sshd's ChrootDirectory: every folder of the path owned by root, writable by no one else."""
    if root == Path("/tmp") or Path("/tmp") in root.parents:
        return [(f"the arm64 root {root} must not be under /tmp: set {ARM64_ROOT_ENV} to a folder such as "
                 f"{DEFAULT_ARM64_ROOT}")]
    problems = []
    for folder in [*reversed(root.parents), root]:
        try:
            info = folder.stat()
        except FileNotFoundError:
            break  # made later, root-owned and 0755
        except OSError as exc:
            return [f"cannot check {folder}: {exc.strerror}"]
        if info.st_uid != 0 or info.st_mode & 0o022:
            problems.append(
                f"sshd's ChrootDirectory needs {folder} owned by root and writable by no one else "
                f"(it is uid {info.st_uid}, mode {info.st_mode & 0o7777:o}): choose another {ARM64_ROOT_ENV}"
            )
    return problems


def ensure_binfmt() -> None:
    """binfmt_misc mounted and the qemu-aarch64 handler enabled with the fix-binary (F) flag."""
    if not (BINFMT_DIR / "register").exists():
        done = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise LabError(f"cannot mount binfmt_misc on {BINFMT_DIR}: {done.stderr.strip()} "
                           f"(run `mount binfmt_misc -t binfmt_misc {BINFMT_DIR}` as root)")
    if not BINFMT_AARCH64.exists() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, text=True, timeout=60)
    try:
        text = BINFMT_AARCH64.read_text()
    except OSError:
        raise LabError(
            "no qemu-aarch64 handler in binfmt_misc: install `qemu-user-static binfmt-support` and run "
            "`update-binfmts --enable qemu-aarch64`"
        ) from None
    if not text.startswith("enabled"):
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, text=True, timeout=60)
        text = BINFMT_AARCH64.read_text()
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), "")
    if not text.startswith("enabled") or "F" not in flags:
        raise LabError(
            f"the qemu-aarch64 binfmt handler is {'enabled' if text.startswith('enabled') else 'disabled'} with "
            f"flags {flags!r}: it must be enabled with F (fix-binary) to work inside a chroot, as Debian's "
            "qemu-user-static registers it (`update-binfmts --enable qemu-aarch64`)"
        )


def board_workdir(lab_id: str, board: str) -> str:
    """An emulated board's workdir, as the board (chrooted into the root) sees it."""
    return f"{BOARD_WORK_ROOT}/{lab_id}/{board}"


def lab_workdirs(root: Path, lab_id: str) -> Path:
    """Where the workdirs of lab `lab_id`'s emulated boards lie on this machine."""
    return root / BOARD_WORK_ROOT.lstrip("/") / lab_id


def _labs_registry(root: Path) -> Path:
    return root.parent / "labs"


def register_arm64_lab(root: Path, lab_id: str) -> None:
    """Note that lab `lab_id` uses `root`, so no other lab's `down` unmounts its /proc."""
    registry = _labs_registry(root)
    registry.mkdir(parents=True, exist_ok=True)
    (registry / lab_id).write_text(str(root) + "\n")


def unregister_arm64_lab(root: Path, lab_id: str) -> None:
    """Forget this lab; the last arm64 lab to go unmounts /proc and /sys in the root."""
    registry = _labs_registry(root)
    with locked(root.parent, ".rootfs.lock"):
        (registry / lab_id).unlink(missing_ok=True)
        if registry.is_dir() and any(registry.iterdir()):
            return
        for name in ("sys", "proc"):
            point = root / name
            if str(point) in mountpoints():
                unmount_under(point)


def ensure_root_mounts(root: Path) -> None:
    """/proc inside the root: the agent samples /proc/<pid>/status, the transport uses pgrep.

    /sys is deliberately NOT mounted: onnxruntime's cpuinfo library (aarch64 build) crashes
    with SIGSEGV at import under qemu-user when it finds the host's CPU lists in
    /sys/devices/system/cpu next to the host's x86 /proc/cpuinfo (checked with onnxruntime
    1.32.0, qemu 7.2); with either one absent it only warns and runs. The host's /sys would
    describe the x86 machine anyway, not the emulated board.
    """
    with locked(root.parent, ".rootfs.lock"):
        if str(root / "sys") in mountpoints():
            unmount_under(root / "sys")  # mounted by an older farm lab
        point = root / "proc"
        if str(point) in mountpoints():
            return
        point.mkdir(exist_ok=True)
        done = subprocess.run(["mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(point)],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise LabError(f"cannot mount /proc in the arm64 root ({point}): {done.stderr.strip()}")
