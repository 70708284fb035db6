"""Simulated boards on this machine: `farm lab up / status / down`.

Each board is a real OpenSSH server (`/usr/sbin/sshd -D -e -f <its config>`) listening
on its own loopback address (127.0.0.11, .12, ... port 2222 by default; never anything
outside 127.0.0.0/8), with its own ed25519 host key, public-key login only
(`PasswordAuthentication no`, `UsePAM no`, `StrictModes no`) as the unprivileged user
`farmboard`. `farm bench -i <lab dir>/inventory.yaml` works as soon as `lab_up` returns.

Profiles (cgroup v1, root): the sshd's pid goes into `cgroup.procs` of the board's
cpu, memory and cpuset cgroups (`/farm-lab/<lab id>/<board>` in each hierarchy), so every
session and every process a benchmark starts inherits the limits, and shows up in
`/proc/self/cgroup`: an agent reads its limits from
`/sys/fs/cgroup/cpu/<path>/cpu.cfs_quota_us` + `cpu.cfs_period_us`,
`/sys/fs/cgroup/memory/<path>/memory.limit_in_bytes` and
`/sys/fs/cgroup/cpuset/<path>/cpuset.cpus`. The same numbers are written to
`<board workdir>/board.json` (the agent's working directory).

The numbers are for a 2-core, 24 GiB x86 host. An x86 core cannot be made to run at an
Arm core's speed, so the profiles keep the *ordering and rough ratios* of the real
boards' CPU inference speed, not their absolute speed, and scale RAM by 1/4 so three
boards fit next to everything else and the out-of-memory path is easy to reach:

| profile     | models                                          | CPU quota | pinned to | memory |
|-------------|-------------------------------------------------|-----------|-----------|--------|
| rpi4        | Raspberry Pi 4 B: 4x Cortex-A72 1.5 GHz, 4 GB   | 0.5 core  | 1 core    | 1 GiB  |
| jetson-nano | Jetson Nano: 4x Cortex-A57 1.43 GHz, 4 GB (GPU) | 0.4 core  | 1 core    | 1 GiB  |
| snapdragon  | Snapdragon devkit (RB5 class): 8x Kryo, 8 GB    | 1.5 cores | 2 cores   | 2 GiB  |
| unlimited   | this machine                                    | none      | none      | none   |
| bare        | a board whose Python lacks onnxruntime          | none      | none      | none   |

- rpi4 is the baseline: 0.5 core (`cfs_quota_us` 50000 / `cfs_period_us` 100000).
- jetson-nano: its A57 cores are ~20 % slower than the Pi's A72 on CPU inference; its
  GPU, the reason to buy one, is not simulated, so on farm's CPU runs it is a bit
  slower than the Pi (0.4 core), as a real one is with onnxruntime's CPU provider.
- snapdragon: a Kryo big core is ~3x an A72, so it gets 3x the Pi's quota (1.5 cores).
- Single-core profiles are pinned round-robin to the host's cores (rpi4 -> CPU 0,
  jetson-nano -> CPU 1); snapdragon spans both. Boards that run at the same time share
  cores, as on any shared host: compare boards from sequential runs.
- Memory is RAM / 4 (1, 1, 2 GiB): a process past it is OOM-killed (exit 137).
  The host has no swap; `memory.memsw.limit_in_bytes` is set too where it exists.
- `<profile>:bare` (or the `bare` profile) gives a board whose python is the system
  `/usr/bin/python3` without numpy/onnxruntime, for the missing-runtime path.

CPU quotas use the kernel's default 100 ms period (LAB.md: 50000/100000 doubles run time).
Work shorter than the quota slice can run at full speed and then stall, so a tiny model's
median barely moves while its p99 grows; models that run for tens of ms slow down evenly.

Without cgroup v1 (or without write access to it) the boards run without limits and
`lab_status` says so in `LabState.limits_note`. Creating the board user, starting sshd
servers and setting limits needs root: `lab_up` refuses to start otherwise and says
what to do (`missing_prerequisites()` lists every missing piece).

Files (all outside /root, which the board user cannot enter): `<lab dir>` (default
`/var/lib/farm-lab`, env FARM_LAB_DIR) holds `lab.json` (state), `inventory.yaml`,
`known_hosts`, `client_ed25519` (the controller's key, root only), `authorized_keys`,
`board-venv/` (python + numpy + onnxruntime at the controller's versions, made once and
reused) and `boards/<name>/` (sshd_config, host key, sshd.log, `work/` = the board's
workdir, owned by farmboard).

A real aarch64 board: `farm lab up --arch arm64` (optional, slow; `lab_up(..., arch="arm64")`)
----------------------------------------------------------------------------------------------
Every board of such a lab runs a real Debian arm64 userland under qemu user emulation,
reached over SSH like any other board: `uname -m` says aarch64, python3 is Debian's
aarch64 build, and numpy/onnxruntime are absent until `farm inventory provision` installs
aarch64 wheels into its venv (the board then runs them: ~27x slower than native for
onnxruntime, ~10x for pure Python).

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
  the host's x86 /proc/cpuinfo; see `_ensure_root_mounts`), while any arm64 lab is up (labs register in `/var/lib/farm-lab-arm64/labs/`; the last
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
import dataclasses
import errno
import fcntl
import hashlib
import ipaddress
import json
import os
import platform
import pwd
import re
import shutil
import signal
import subprocess
import time
from importlib import metadata
from pathlib import Path
from collections.abc import Iterator

import yaml

from orchestrator.errors import ExitStatus, FarmError

DEFAULT_LAB_DIR = Path("/var/lib/farm-lab")
LAB_DIR_ENV = "FARM_LAB_DIR"
VENV_DIR_ENV = "FARM_LAB_VENV"
BOARD_USER = "farmboard"
DEFAULT_FIRST_ADDRESS = "127.0.0.11"
DEFAULT_PORT = 2222
DEFAULT_PROFILES = ("rpi4", "jetson-nano", "snapdragon")
SSHD = "/usr/sbin/sshd"
SYSTEM_PYTHON = "/usr/bin/python3"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_CONTROLLERS = ("cpu", "memory", "cpuset")
CGROUP_PARENT = "farm-lab"
CPU_PERIOD_US = 100_000
STATE_VERSION = 1
MAX_BOARDS = 64
SSHD_READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
VENV_INSTALL_TIMEOUT_S = 900.0
CONNECT_TIMEOUT_S = 5.0
GIB = 1024**3

# Emulated aarch64 boards (see the module docstring).
ARM64_BOARD_USER = "farmboard-arm64"
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
DEFAULT_EMULATED_PROFILES = ("unlimited",)


class LabError(FarmError):
    """The lab cannot be brought up or down here; the message says what to install or do."""

    exit_status = ExitStatus.USAGE


@dataclasses.dataclass(frozen=True)
class Profile:
    """A simulated board type. None means "no limit" for that resource."""

    name: str
    models: str
    cpu_quota_cores: float | None
    pinned_cores: int | None
    memory_limit_bytes: int | None
    bare: bool = False


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("rpi4", "Raspberry Pi 4 Model B (4x Cortex-A72 @ 1.5 GHz, 4 GB)", 0.5, 1, 1 * GIB),
        Profile(
            "jetson-nano", "NVIDIA Jetson Nano (4x Cortex-A57 @ 1.43 GHz, 4 GB shared with the GPU)", 0.4, 1, 1 * GIB
        ),
        Profile("snapdragon", "Qualcomm Snapdragon devkit, RB5 class (8x Kryo 585, 8 GB)", 1.5, 2, 2 * GIB),
        Profile("unlimited", "this machine, no limits", None, None, None),
        Profile("bare", "this machine, no limits, system Python without onnxruntime", None, None, None, bare=True),
    )
}


@dataclasses.dataclass(frozen=True)
class BoardLimits:
    """The limits a board runs under, as written to its cgroups (None: not limited)."""

    cpu_quota_cores: float | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    cpuset_cpus: str | None = None
    memory_limit_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class LabBoard:
    """One simulated board. `cgroups` maps controller -> path inside its hierarchy."""

    name: str
    profile: str
    models: str
    address: str
    port: int
    python: str
    workdir: str
    bare: bool
    pid: int | None
    running: bool
    limits: BoardLimits
    cgroups: dict[str, str]
    arch: str = "x86_64"  # what `uname -m` says on the board
    user: str = BOARD_USER
    emulated: bool = False  # True: an aarch64 userland under qemu-user (see the module docstring)


@dataclasses.dataclass(frozen=True)
class LabState:
    """What the lab in `lab_dir` is and whether its boards run.

    `limits_enforced` is False when the boards run without cgroup limits;
    `limits_note` then says why. `started_now` names the boards this call started.
    """

    lab_dir: Path
    boards: tuple[LabBoard, ...]
    inventory_path: Path
    known_hosts_path: Path
    identity_file: Path
    limits_enforced: bool
    limits_note: str
    started_now: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. how the arm64 root file system was made or reused

    @property
    def running(self) -> tuple[LabBoard, ...]:
        return tuple(b for b in self.boards if b.running)


# ---------------------------------------------------------------------------------- public API


def default_lab_dir() -> Path:
    """$FARM_LAB_DIR, else /var/lib/farm-lab."""
    value = os.environ.get(LAB_DIR_ENV, "").strip()
    return Path(value) if value else DEFAULT_LAB_DIR


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run a lab, each with what to do; [] when all is there."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "farm lab needs root: it creates the 'farmboard' user, starts sshd servers and sets cgroup "
            "limits. Run it as root (e.g. `sudo farm lab up`)."
        )
    if not os.access(SSHD, os.X_OK):
        problems.append(f"{SSHD} not found: install OpenSSH's server (`apt-get install -y openssh-server`).")
    if shutil.which("ssh-keygen") is None:
        problems.append("ssh-keygen not found: install OpenSSH (`apt-get install -y openssh-client`).")
    if shutil.which("useradd") is None:
        problems.append("useradd not found: install `passwd` (`apt-get install -y passwd`).")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        problems.append(f"{SYSTEM_PYTHON} not found: install Python (`apt-get install -y python3 python3-venv`).")
    return problems


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
    if not _rootfs_ready(root) and shutil.which("debootstrap") is None:
        problems.append("debootstrap not found: install it (`apt-get install -y debootstrap`).")
    problems += _chroot_path_problems(root)
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
    with _locked(root.parent, ".rootfs.lock"):
        marker = _read_rootfs_marker(root)
        if marker is not None:
            return root, (f"arm64 root {root}: reused (debootstrapped {marker.get('created_at', '?')} in "
                          f"{marker.get('debootstrap_s', 0):.0f} s)")
        if root.exists():
            _unmount_under(root)
            if any(root.iterdir()):
                raise LabError(
                    f"{root} exists but was not made by farm lab (no {ROOTFS_MARKER}): move it away, or set "
                    f"{ARM64_ROOT_ENV} to another folder"
                )
            root.rmdir()
        partial = root.with_name(root.name + ".partial")
        if partial.exists():  # an earlier debootstrap that did not finish
            _unmount_under(partial)
            shutil.rmtree(partial)
        _ensure_binfmt()  # debootstrap's second stage runs the root's aarch64 programs
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
            _unmount_under(partial)
            raise LabError(f"debootstrap took over {DEBOOTSTRAP_TIMEOUT_S:g} s (log: {log_path})") from None
        finally:
            _unmount_under(partial)  # debootstrap mounts /proc and /sys in the target while it runs
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


def parse_profiles(specs: list[str] | tuple[str, ...]) -> list[tuple[Profile, bool]]:
    """`["rpi4", "jetson-nano:bare"]` -> [(profile, bare?)]. Raises LabError naming the choices."""
    parsed = []
    for raw in specs:
        spec = raw.strip()
        if not spec:
            continue
        name, _, option = spec.partition(":")
        if name not in PROFILES:
            raise LabError(f"unknown board profile {name!r}: choose from {', '.join(PROFILES)}")
        if option not in ("", "bare"):
            raise LabError(f"profile {spec!r}: the only option is ':bare' (system Python without onnxruntime)")
        profile = PROFILES[name]
        parsed.append((profile, profile.bare or option == "bare"))
    if not parsed:
        raise LabError(f"no board profile given: choose from {', '.join(PROFILES)}")
    return parsed


def lab_up(
    lab_dir: Path,
    profiles: list[str] | tuple[str, ...] = DEFAULT_PROFILES,
    count: int = 1,
    arch: str = "x86_64",
    *,
    first_address: str = DEFAULT_FIRST_ADDRESS,
    port: int = DEFAULT_PORT,
    venv_dir: Path | None = None,
    arm64_root: Path | None = None,
) -> LabState:
    """Start `count` boards of each profile in `lab_dir` (idempotent; see the module docstring).

    A lab already running there with the same boards is reported as it is (any board
    whose sshd died is started again); one with different boards must be taken down first.
    `venv_dir` (default `<lab_dir>/board-venv`, env FARM_LAB_VENV) is the boards' Python
    environment, made once and reused.

    `arch="arm64"` on an x86_64 host makes every board of this lab an emulated aarch64 board
    (qemu-user, a debootstrap root in `arm64_root`, default /var/lib/farm-lab-arm64/root or env
    FARM_LAB_ARM64_ROOT; see the module docstring). Its boards start bare: provision them.
    """
    problems = missing_prerequisites()
    if problems:
        raise LabError("\n".join(problems))
    if not 1 <= count <= MAX_BOARDS:
        raise LabError(f"--count must be between 1 and {MAX_BOARDS}, got {count}")
    host_arch = platform.machine()
    board_arch = normalize_arch(arch) if arch else host_arch
    emulated = board_arch != host_arch
    if emulated and not (board_arch == "aarch64" and host_arch == "x86_64"):
        raise LabError(
            f"lab boards run natively on this machine's architecture ({host_arch}); the only emulated one is "
            f"arm64 on an x86_64 host, not {arch}"
        )
    if emulated:
        arm64_root = Path(arm64_root or default_arm64_root()).absolute()
        problems = missing_emulation_prerequisites(arm64_root)
        if problems:
            raise LabError("\n".join(problems))
    parsed = parse_profiles(profiles)
    lab_dir = Path(lab_dir).absolute()
    if emulated and (arm64_root == lab_dir or lab_dir in arm64_root.parents):
        raise LabError(f"the arm64 root {arm64_root} must not be inside the lab folder {lab_dir}")
    venv_dir = Path(venv_dir or os.environ.get(VENV_DIR_ENV) or lab_dir / "board-venv").absolute()
    specs = _plan_boards(parsed, count, first_address, port, board_arch if emulated else None)
    spec_key = [_spec_json(s) for s in specs]

    lab_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(lab_dir, 0o755)
    with _locked(lab_dir):
        previous = _read_state_file(lab_dir)
        running = previous is not None and any(_board_alive(lab_dir, b) for b in previous.get("boards", []))
        if running and previous.get("spec") != spec_key:
            names = ", ".join(b["name"] for b in previous.get("boards", []))
            raise LabError(
                f"a lab with other boards is already running in {lab_dir} ({names}): "
                f"take it down first with `farm lab down --dir {lab_dir}`"
            )
        notes: list[str] = []
        emulation: dict | None = None
        if emulated:
            root, note = ensure_arm64_root(arm64_root)
            notes.append(note)
            _ensure_binfmt()
            _ensure_arm64_user(root)
            emulation = {"root": str(root), "user": ARM64_BOARD_USER}
            python = "python3"  # Debian's aarch64 python3 in the root; a provisioned venv is picked up
        else:
            _ensure_board_user()
            python = _ensure_board_venv(venv_dir)
        identity = _ensure_key(lab_dir / "client_ed25519", "farm lab controller")
        authorized = lab_dir / "authorized_keys"
        authorized.write_text(Path(f"{identity}.pub").read_text())
        os.chmod(authorized, 0o644)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        limits_note = _cgroup_problem()
        limits_enforced = limits_note == ""
        cpus = _host_cpus()
        lab_id = _lab_id(lab_dir)

        boards_json: list[dict] = []
        prepared: list[dict] = []  # boards whose files and cgroups this call made or refreshed
        started: list[str] = []
        previous_boards = {b["name"]: b for b in (previous or {}).get("boards", [])}
        if emulation is not None:
            _register_arm64_lab(Path(emulation["root"]), lab_id)
            _ensure_root_mounts(Path(emulation["root"]))
        try:
            pin_offset = 0
            for spec in specs:
                profile = PROFILES[spec.profile]
                cpuset = None
                if profile.pinned_cores is not None:
                    chosen = [cpus[(pin_offset + i) % len(cpus)] for i in range(min(profile.pinned_cores, len(cpus)))]
                    cpuset = ",".join(str(c) for c in sorted(set(chosen)))
                    pin_offset += profile.pinned_cores
                record = _prepare_board(lab_dir, lab_id, spec, profile, cpuset, python, limits_enforced, emulation)
                prepared.append(record)
                old = previous_boards.get(spec.name)
                if old is not None and old.get("pid") and _board_alive(lab_dir, old):
                    record["pid"] = old["pid"]
                else:
                    record["pid"] = _start_board(lab_dir, record, limits_enforced)
                    started.append(spec.name)
                boards_json.append(record)
        except BaseException:
            # Leave nothing half-started: stop what this call started, drop the cgroups it made.
            for record in prepared:
                old = previous_boards.get(record["name"])
                if record["name"] in started or not (old and _board_alive(lab_dir, old)):
                    _stop_board(lab_dir, record)
            _remove_lab_cgroup_parents(lab_id)
            if emulation is not None and not (previous and previous.get("emulation")):
                _unregister_arm64_lab(Path(emulation["root"]), lab_id)
            raise

        state = {
            "version": STATE_VERSION,
            "spec": spec_key,
            "identity_file": str(identity),
            "venv_dir": str(venv_dir),
            "limits_enforced": limits_enforced,
            "limits_note": limits_note,
            "emulation": emulation,
            "boards": boards_json,
        }
        _write_known_hosts(lab_dir, boards_json)
        _write_inventory(lab_dir, boards_json, identity, host_arch, limits_enforced, limits_note)
        _write_state_file(lab_dir, state)
    return _state_from_json(lab_dir, state, started_now=tuple(started), notes=tuple(notes))


def lab_status(lab_dir: Path) -> LabState:
    """The lab in `lab_dir` as it is now (an empty state when there is none)."""
    lab_dir = Path(lab_dir).absolute()
    state = _read_state_file(lab_dir)
    if state is None:
        return LabState(
            lab_dir=lab_dir,
            boards=(),
            inventory_path=lab_dir / "inventory.yaml",
            known_hosts_path=lab_dir / "known_hosts",
            identity_file=lab_dir / "client_ed25519",
            limits_enforced=False,
            limits_note=f"no lab in {lab_dir} (start one with `farm lab up`)",
        )
    return _state_from_json(lab_dir, state)


def lab_down(lab_dir: Path, *, remove_files: bool = False) -> LabState:
    """Stop every board of the lab in `lab_dir` and everything their sessions started.

    Kills each sshd, the sessions it forked and any process of the board user that
    came in through it (found by cgroup membership, process ancestry and
    SSH_CONNECTION), then removes the boards' cgroups. Keys, venv and inventory stay
    for the next `lab up` unless `remove_files` (then `lab_dir` is deleted, but only if it
    holds a lab). Returns the state after stopping.
    """
    lab_dir = Path(lab_dir).absolute()
    if not (lab_dir / "lab.json").is_file():
        # No lab ran here (perhaps a `lab up` that failed, and cleaned up after itself).
        status = lab_status(lab_dir)
        if remove_files and lab_dir.is_dir() and _looks_like_lab(lab_dir):
            shutil.rmtree(lab_dir)
        return status
    with _locked(lab_dir):
        state = _read_state_file(lab_dir) or {"boards": []}
        for record in state.get("boards", []):
            _stop_board(lab_dir, record)
            record["pid"] = None
        _write_state_file(lab_dir, state)
        _remove_lab_cgroup_parents(_lab_id(lab_dir))
        emulation = state.get("emulation")
        if emulation:
            root = Path(emulation["root"])
            if remove_files:
                work = root / BOARD_WORK_ROOT.lstrip("/") / _lab_id(lab_dir)
                if work.is_dir() and not _mounts_under(work):
                    shutil.rmtree(work)
            _unregister_arm64_lab(root, _lab_id(lab_dir))
        result = _state_from_json(lab_dir, state)
        if remove_files:
            mounted = _mounts_under(lab_dir)
            if mounted:
                raise LabError(f"not deleting {lab_dir}: file systems are mounted inside it ({', '.join(mounted)})")
            shutil.rmtree(lab_dir)
    return result


def _looks_like_lab(lab_dir: Path) -> bool:
    """Only a folder `lab up` made is deleted by `lab down --purge`: never an arbitrary path."""
    names = {p.name for p in lab_dir.iterdir()}
    return not names or "lab.json" in names or {".lock", "client_ed25519"} <= names


# ---------------------------------------------------------------------------------- planning


@dataclasses.dataclass(frozen=True)
class _BoardSpec:
    name: str
    profile: str
    bare: bool
    address: str
    port: int
    arch: str | None = None  # None: native; "aarch64": emulated


def _plan_boards(
    parsed: list[tuple[Profile, bool]], count: int, first_address: str, port: int, emulated_arch: str | None = None
) -> list[_BoardSpec]:
    try:
        first = ipaddress.IPv4Address(first_address)
    except ValueError:
        raise LabError(f"first address {first_address!r} is not an IPv4 address") from None
    if not 1 <= port <= 65535:
        raise LabError(f"port {port} must be from 1 to 65535")
    total = len(parsed) * count
    if total > MAX_BOARDS:
        raise LabError(f"{total} boards asked for; at most {MAX_BOARDS}")
    specs = []
    seen: set[str] = set()
    index = 0
    for profile, bare in parsed:
        for i in range(1, count + 1):
            base = profile.name if (profile.bare or not bare) else f"{profile.name}-bare"
            if emulated_arch is not None:
                base = f"{profile.name}-arm64"  # every emulated board starts bare
            name = f"{base}-{i}"
            if name in seen:
                raise LabError(f"profile {profile.name!r} is listed twice")
            seen.add(name)
            address = first + index
            if not address.is_loopback or int(address) & 0xFF in (0, 255):
                raise LabError(
                    f"board {name} would get address {address}: lab boards live on loopback only "
                    "(127.0.0.1 - 127.255.255.254); choose another first address"
                )
            if emulated_arch is not None:
                specs.append(_BoardSpec(name, profile.name, True, str(address), port, emulated_arch))
            else:
                specs.append(_BoardSpec(name, profile.name, bare, str(address), port))
            index += 1
    return specs


# ---------------------------------------------------------------------------------- one board


def _board_dir(lab_dir: Path, name: str) -> Path:
    return lab_dir / "boards" / name


def _spec_json(spec: _BoardSpec) -> dict:
    """The spec as lab.json keeps it (native boards keep the shape they always had)."""
    data = dataclasses.asdict(spec)
    if data.get("arch") is None:
        data.pop("arch", None)
    return data


def _prepare_board(
    lab_dir: Path,
    lab_id: str,
    spec: _BoardSpec,
    profile: Profile,
    cpuset: str | None,
    venv_python: str,
    limits_enforced: bool,
    emulation: dict | None = None,
) -> dict:
    """Files for one board (config, host key, workdir, board.json) and its cgroups.

    An emulated board's workdir is `/farm-lab/<lab id>/<name>` inside the arm64 root (the
    path the board sees; `host_workdir` is where it lies on this machine).
    """
    board_dir = _board_dir(lab_dir, spec.name)
    board_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(board_dir, 0o755)
    host_key = _ensure_key(board_dir / "ssh_host_ed25519_key", f"farm lab board {spec.name}")
    login = emulation["user"] if emulation else BOARD_USER
    user = pwd.getpwnam(login)
    if emulation:
        root = Path(emulation["root"])
        board_workdir = f"{BOARD_WORK_ROOT}/{lab_id}/{spec.name}"
        workdir = root / board_workdir.lstrip("/")
        for parent in (workdir.parent.parent, workdir.parent):
            parent.mkdir(exist_ok=True)
            os.chmod(parent, 0o755)
    else:
        workdir = board_dir / "work"
        board_workdir = str(workdir)
    workdir.mkdir(exist_ok=True)
    os.chown(workdir, user.pw_uid, user.pw_gid)
    os.chmod(workdir, 0o755)
    config = board_dir / "sshd_config"
    config.write_text(_sshd_config(spec, host_key, board_dir, lab_dir / "authorized_keys", emulation))
    python = venv_python if emulation else (SYSTEM_PYTHON if spec.bare else venv_python)

    limits = BoardLimits()
    cgroups: dict[str, str] = {}
    if limits_enforced:
        quota_us = None if profile.cpu_quota_cores is None else int(profile.cpu_quota_cores * CPU_PERIOD_US)
        limits = BoardLimits(
            cpu_quota_cores=profile.cpu_quota_cores,
            cpu_quota_us=quota_us,
            cpu_period_us=CPU_PERIOD_US if quota_us is not None else None,
            cpuset_cpus=cpuset,
            memory_limit_bytes=profile.memory_limit_bytes,
        )
        cgroups = _make_cgroups(lab_id, spec.name, limits)
    record = {
        **dataclasses.asdict(spec),
        "models": profile.models,
        "python": python,
        "workdir": board_workdir,
        "host_workdir": str(workdir),
        "user": login,
        "arch": spec.arch or platform.machine(),
        "emulated": emulation is not None,
        "config": str(config),
        "limits": dataclasses.asdict(limits),
        "cgroups": cgroups,
        "pid": None,
    }
    board_json = workdir / "board.json"
    board_json.write_text(
        json.dumps(
            {
                "farm_lab_board": 1,
                "name": spec.name,
                "profile": spec.profile,
                "models": profile.models,
                "limits_enforced": limits_enforced,
                "limits": dataclasses.asdict(limits),
                "cgroups": cgroups,
            },
            indent=2,
        )
        + "\n"
    )
    os.chmod(board_json, 0o644)
    return record


def _sshd_config(
    spec: _BoardSpec, host_key: Path, board_dir: Path, authorized_keys: Path, emulation: dict | None = None
) -> str:
    # An emulated board: sshd (this machine's) chroots the session into the arm64 root, whose
    # /bin/sh and everything after it run under qemu-aarch64 (binfmt_misc, fix-binary flag).
    chroot = [f"ChrootDirectory {emulation['root']}"] if emulation else []
    return "\n".join(
        [
            f"# farm lab board {spec.name} ({spec.profile}); written by `farm lab up`, rewritten each time",
            f"ListenAddress {spec.address}:{spec.port}",
            f"HostKey {host_key}",
            f"PidFile {board_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            f"AllowUsers {emulation['user'] if emulation else BOARD_USER}",
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


def _start_board(lab_dir: Path, record: dict, limits_enforced: bool) -> int:
    """Start the board's sshd detached, put it in its cgroups, wait until it accepts."""
    config = record["config"]
    check = subprocess.run([SSHD, "-t", "-f", config], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise LabError(f"sshd rejects the config of board {record['name']} ({config}): {check.stderr.strip()}")
    board_dir = _board_dir(lab_dir, record["name"])
    log_path = board_dir / "sshd.log"
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
    _CHILDREN[proc.pid] = proc
    try:
        if limits_enforced:
            for controller, path in record["cgroups"].items():
                _write(CGROUP_ROOT / controller / path.lstrip("/") / "cgroup.procs", str(proc.pid))
        _wait_until_listening(proc, record, log_path, log_offset)
    except BaseException:
        _terminate(proc.pid)
        raise
    return proc.pid


def _wait_until_listening(proc: subprocess.Popen, record: dict, log_path: Path, log_offset: int) -> None:
    """Wait for *this* sshd's "Server listening on ADDRESS port PORT" (a probe connection could
    reach some other program on that port), or its exit."""
    ready_line = f"Server listening on {record['address']} port {record['port']}".encode()
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
                    f" Something else listens on {record['address']}:{record['port']}: stop it, or start the lab "
                    "on other addresses."
                )
            raise LabError(
                f"sshd of board {record['name']} exited at start (status {proc.returncode}): "
                + " | ".join(tail)
                + hint
            )
        if time.monotonic() >= deadline:
            raise LabError(
                f"sshd of board {record['name']} did not listen on {record['address']}:{record['port']} "
                f"within {SSHD_READY_TIMEOUT_S:g} s (see {log_path})"
            )
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


def _stop_board(lab_dir: Path, record: dict) -> None:
    """Kill the board's sshd and everything that came in through it; remove its cgroups."""
    pids: set[int] = set()
    sshd_pid = record.get("pid")
    if sshd_pid and _is_board_sshd(sshd_pid, record["config"]):
        pids |= _descendants(sshd_pid)
    else:
        sshd_pid = None
    # A pid file left by an sshd we lost track of (state written before a crash).
    pid_file = _board_dir(lab_dir, record["name"]) / "sshd.pid"
    with contextlib.suppress(OSError, ValueError):
        other = int(pid_file.read_text().strip())
        if other != sshd_pid and _is_board_sshd(other, record["config"]):
            pids |= _descendants(other)
            pids.add(other)
    for controller, path in record.get("cgroups", {}).items():
        pids |= _cgroup_pids(CGROUP_ROOT / controller / path.lstrip("/"))
    pids |= _sessions_of(record["address"], record["port"], record.get("user", BOARD_USER))
    if sshd_pid:
        pids.add(sshd_pid)
    pids.discard(os.getpid())
    for pid in pids:
        _kill(pid, signal.SIGKILL)
    _wait_gone(pids, STOP_TIMEOUT_S)
    for controller, path in record.get("cgroups", {}).items():
        _remove_cgroup(CGROUP_ROOT / controller / path.lstrip("/"))


def _board_alive(lab_dir: Path, record: dict) -> bool:
    pid = record.get("pid")
    return bool(pid) and _is_board_sshd(pid, record.get("config", ""))


# ---------------------------------------------------------------------------------- processes

# sshd servers started by this process, kept so they can be reaped (no zombies in a long-lived caller).
_CHILDREN: dict[int, subprocess.Popen] = {}


def _is_board_sshd(pid: int, config: str) -> bool:
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


def _descendants(pid: int) -> set[int]:
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


def _sessions_of(address: str, port: int, user: str = BOARD_USER) -> set[int]:
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


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _terminate(pid: int) -> None:
    _kill(pid, signal.SIGKILL)
    _wait_gone({pid}, STOP_TIMEOUT_S)


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
            return False
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pids: set[int], timeout_s: float) -> None:
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


# ---------------------------------------------------------------------------------- cgroups


def _cgroup_problem() -> str:
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


def _lab_id(lab_dir: Path) -> str:
    digest = hashlib.sha256(str(lab_dir).encode()).hexdigest()[:8]
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", lab_dir.name)[:40] or "lab"
    return f"{base}-{digest}"


def _host_cpus() -> list[int]:
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


def _make_cgroups(lab_id: str, board: str, limits: BoardLimits) -> dict[str, str]:
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
                        _write(current / name, _read(parent / name))
        paths[controller] = relative
    cpu = CGROUP_ROOT / "cpu" / relative.lstrip("/")
    _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
    _write(cpu / "cpu.cfs_quota_us", str(limits.cpu_quota_us if limits.cpu_quota_us is not None else -1))
    memory = CGROUP_ROOT / "memory" / relative.lstrip("/")
    if limits.memory_limit_bytes is not None:
        # Raising a limit needs memsw raised first, lowering needs it lowered after: try both orders.
        memsw = memory / "memory.memsw.limit_in_bytes"
        with contextlib.suppress(OSError):
            _write(memsw, "-1")
        _write(memory / "memory.limit_in_bytes", str(limits.memory_limit_bytes))
        with contextlib.suppress(OSError):
            _write(memsw, str(limits.memory_limit_bytes))
    else:
        with contextlib.suppress(OSError):
            _write(memory / "memory.memsw.limit_in_bytes", "-1")
        _write(memory / "memory.limit_in_bytes", "-1")
    cpuset = CGROUP_ROOT / "cpuset" / relative.lstrip("/")
    _write(cpuset / "cpuset.cpus", limits.cpuset_cpus or _read(cpuset.parent / "cpuset.cpus"))
    return paths


def _cgroup_pids(path: Path) -> set[int]:
    try:
        return {int(x) for x in (path / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def _remove_cgroup(path: Path) -> None:
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
                               f"{sorted(_cgroup_pids(path))})") from exc
        for pid in _cgroup_pids(path):
            _kill(pid, signal.SIGKILL)
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)


def _remove_lab_cgroup_parents(lab_id: str) -> None:
    for controller in CGROUP_CONTROLLERS:
        lab_group = CGROUP_ROOT / controller / CGROUP_PARENT / lab_id
        for path in (lab_group, lab_group.parent):
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty: another lab may still use farm-lab/


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


# ---------------------------------------------------------------------------------- user, keys, venv


def _ensure_board_user() -> None:
    """Create `farmboard` (shell /bin/sh, home /home/farmboard) with a login-able (not locked) account."""
    try:
        pwd.getpwnam(BOARD_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", "--comment", "farm lab board",
             "--password", "*", BOARD_USER],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode not in (0, 9):  # 9: created meanwhile by another lab
            raise LabError(f"cannot create the board user {BOARD_USER!r}: {result.stderr.strip()}") from None
    # sshd without PAM refuses a locked account ('!' password): the board logs in by key only.
    with contextlib.suppress(OSError):
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == BOARD_USER and fields[1].startswith("!"):
                subprocess.run(["usermod", "--password", "*", BOARD_USER], check=True, timeout=60,
                               capture_output=True)
    home = Path(pwd.getpwnam(BOARD_USER).pw_dir)
    if not home.is_dir():
        user = pwd.getpwnam(BOARD_USER)
        home.mkdir(parents=True, mode=0o755)
        os.chown(home, user.pw_uid, user.pw_gid)


def _ensure_key(path: Path, comment: str) -> Path:
    if not (path.is_file() and Path(f"{path}.pub").is_file()):
        for stale in (path, Path(f"{path}.pub")):
            stale.unlink(missing_ok=True)
        result = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode != 0:
            raise LabError(f"ssh-keygen failed for {path}: {result.stderr.strip()}")
    os.chmod(path, 0o600)
    os.chmod(f"{path}.pub", 0o644)
    return path


def _wanted_packages() -> dict[str, str | None]:
    """numpy and onnxruntime at the controller's versions (None: whatever pip picks)."""
    wanted: dict[str, str | None] = {}
    for name in ("numpy", "onnxruntime"):
        try:
            wanted[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            wanted[name] = None
    return wanted


def _ensure_board_venv(venv_dir: Path) -> str:
    """A virtualenv of the system Python with numpy + onnxruntime, readable by the board user."""
    python = venv_dir / "bin" / "python"
    marker = venv_dir / "farm-board-venv.json"
    wanted = {"python": SYSTEM_PYTHON, "packages": _wanted_packages()}
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv_dir.parent, f".{venv_dir.name}.lock"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(marker.read_text()) == wanted and python.exists():
                return str(python)
        if venv_dir.exists():
            if not (venv_dir / "pyvenv.cfg").is_file():
                raise LabError(f"{venv_dir} exists and is not a virtualenv: move it away or pick another venv dir")
            shutil.rmtree(venv_dir)
        made = subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv_dir)], capture_output=True, text=True,
                              timeout=300)
        if made.returncode != 0:
            raise LabError(
                f"cannot make the boards' virtualenv {venv_dir}: {made.stderr.strip()[-500:]}\n"
                "Install venv support: `apt-get install -y python3-venv`."
            )
        requirements = [f"{n}=={v}" if v else n for n, v in wanted["packages"].items()]
        try:
            pip = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q",
                 *requirements],
                capture_output=True, text=True, timeout=VENV_INSTALL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise LabError(f"pip install {' '.join(requirements)} took over {VENV_INSTALL_TIMEOUT_S:g} s") from None
        if pip.returncode != 0:
            raise LabError(
                f"cannot install {' '.join(requirements)} into {venv_dir}: {pip.stderr.strip()[-800:]}\n"
                "Check network access to the package index (or pip's find-links/cache), then run `farm lab up` again."
            )
        for root, dirs, files in os.walk(venv_dir):
            for name in dirs + files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    mode = os.stat(path).st_mode
                    os.chmod(path, mode | 0o444 | (0o111 if mode & 0o111 or name in dirs else 0))
        os.chmod(venv_dir, 0o755)
        check = subprocess.run(
            [str(python), "-c", "import numpy, onnxruntime"],
            user=BOARD_USER, group=pwd.getpwnam(BOARD_USER).pw_gid, extra_groups=[],
            capture_output=True, text=True, timeout=120, cwd="/",
        )
        if check.returncode != 0:
            raise LabError(f"the board user cannot import numpy/onnxruntime from {venv_dir}: {check.stderr[-500:]}")
        marker.write_text(json.dumps(wanted))
    return str(python)


# ---------------------------------------------------------------------------------- state and inventory


@contextlib.contextmanager
def _locked(directory: Path, name: str = ".lock") -> Iterator[None]:
    """An exclusive lock on `directory/name`, so two `lab up/down` never interleave."""
    with open(directory / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_state_file(lab_dir: Path) -> dict | None:
    path = lab_dir / "lab.json"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: cannot read the lab state ({exc}); take the lab down by hand or remove it") from exc
    if state.get("version") != STATE_VERSION:
        raise LabError(f"{path}: lab state version {state.get('version')} is not {STATE_VERSION}")
    return state


def _write_state_file(lab_dir: Path, state: dict) -> None:
    path = lab_dir / "lab.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def _state_from_json(
    lab_dir: Path, state: dict, started_now: tuple[str, ...] = (), notes: tuple[str, ...] = ()
) -> LabState:
    boards = []
    for record in state.get("boards", []):
        boards.append(
            LabBoard(
                name=record["name"],
                profile=record["profile"],
                models=record.get("models", ""),
                address=record["address"],
                port=record["port"],
                python=record["python"],
                workdir=record["workdir"],
                bare=record.get("bare", False),
                pid=record.get("pid"),
                running=_board_alive(lab_dir, record),
                limits=BoardLimits(**record.get("limits", {})),
                cgroups=dict(record.get("cgroups", {})),
                arch=record.get("arch", "x86_64"),
                user=record.get("user", BOARD_USER),
                emulated=bool(record.get("emulated")),
            )
        )
    return LabState(
        lab_dir=lab_dir,
        boards=tuple(boards),
        inventory_path=lab_dir / "inventory.yaml",
        known_hosts_path=lab_dir / "known_hosts",
        identity_file=Path(state.get("identity_file", lab_dir / "client_ed25519")),
        limits_enforced=bool(state.get("limits_enforced")),
        limits_note=state.get("limits_note", ""),
        started_now=started_now,
        notes=notes,
    )


def _write_known_hosts(lab_dir: Path, boards: list[dict]) -> None:
    lines = []
    for record in boards:
        key_type, key_b64 = (_board_dir(lab_dir, record["name"]) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"[{record['address']}]:{record['port']} {key_type} {key_b64}")
    path = lab_dir / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o644)


def _limits_comment(limits: dict) -> str:
    parts = []
    if limits.get("cpu_quota_cores") is not None:
        parts.append(f"CPU {limits['cpu_quota_cores']:g} core ({limits['cpu_quota_us']}/{limits['cpu_period_us']} us)")
    if limits.get("cpuset_cpus"):
        parts.append(f"pinned to CPU {limits['cpuset_cpus']}")
    if limits.get("memory_limit_bytes") is not None:
        parts.append(f"memory {limits['memory_limit_bytes'] / GIB:g} GiB")
    return ", ".join(parts) or "no limits"


def _write_inventory(
    lab_dir: Path, boards: list[dict], identity: Path, arch: str, limits_enforced: bool, limits_note: str
) -> None:
    groups: dict[str, dict] = {}
    for record in boards:
        tags = {"profile": record["profile"], "arch": record.get("arch", arch), "lab": "true"}
        if record.get("emulated"):
            tags["emulated"] = "qemu-user"
        if record.get("bare"):
            tags["bare"] = "true"
        group = f"{record['profile']}-arm64" if record.get("emulated") else record["profile"]
        groups.setdefault(group, {"hosts": {}})["hosts"][record["name"]] = {
            "host": record["address"],
            "port": record["port"],
            "user": record.get("user", BOARD_USER),
            "identity_file": str(identity),
            "known_hosts_file": str(lab_dir / "known_hosts"),
            "python": record["python"],
            "workdir": record["workdir"],
            "tags": tags,
        }
    data = {"all": {"vars": {"transport": "ssh", "connect_timeout_s": CONNECT_TIMEOUT_S}, "children": groups}}
    header = [
        "# Simulated boards written by `farm lab up` (orchestrator/lab.py); rewritten on every `lab up`.",
        "# Each board is a real sshd on loopback, logged into as the unprivileged user 'farmboard'.",
        "# Profiles (cgroup v1 limits; the board reports them from /proc/self/cgroup + /sys/fs/cgroup",
        "# and <workdir>/board.json):",
    ]
    if not limits_enforced:
        header.append(f"#   NO LIMITS: {limits_note}")
    if any(record.get("emulated") for record in boards):
        header.append("# Emulated aarch64 boards (qemu-user, a Debian arm64 root; user 'farmboard-arm64') start "
                      "without numpy/onnxruntime:")
        header.append(f"#   farm inventory provision -i {lab_dir / 'inventory.yaml'}")
    for record in boards:
        header.append(f"#   {record['name']}: {record['models']}")
        header.append(f"#       {_limits_comment(record['limits'])}")
    header.append("# Use it: farm bench -i " + str(lab_dir / "inventory.yaml") + " ...")
    text = "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    path = lab_dir / "inventory.yaml"
    path.write_text(text)
    os.chmod(path, 0o644)


# ---------------------------------------------------------------------------------- emulated arm64 boards


def _rootfs_ready(root: Path) -> bool:
    return _read_rootfs_marker(root) is not None


def _read_rootfs_marker(root: Path) -> dict | None:
    try:
        marker = json.loads((root / ROOTFS_MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("version") != ROOTFS_VERSION:
        return None
    if not os.access(root / "usr" / "bin" / "python3", os.F_OK):
        return None
    return marker


def _chroot_path_problems(root: Path) -> list[str]:
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


def _mountpoints() -> list[str]:
    """Mount points of this mount namespace (octal escapes of /proc/self/mountinfo decoded)."""
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` (deepest first)."""
    base = str(Path(path).absolute())
    found = [p for p in _mountpoints() if p == base or p.startswith(base.rstrip("/") + "/")]
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def _unmount_under(path: Path) -> None:
    """Unmount everything at or below `path`, deepest first, so it can be deleted safely."""
    for point in _mounts_under(path):
        done = subprocess.run(["umount", point], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, text=True, timeout=60)
    left = _mounts_under(path)
    if left:
        raise LabError(f"cannot unmount {', '.join(left)}: unmount them by hand")


def _ensure_binfmt() -> None:
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


def _ensure_arm64_user(root: Path) -> None:
    """The login user of emulated boards: a host account, and the same ids inside the root."""
    try:
        user = pwd.getpwnam(ARM64_BOARD_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", f"/home/{ARM64_BOARD_USER}", "--shell", "/bin/sh",
             "--comment", "farm lab arm64 board", "--password", "*", "--user-group", ARM64_BOARD_USER],
            capture_output=True, text=True, timeout=60,
        )
        if result.returncode not in (0, 9):
            raise LabError(f"cannot create the board user {ARM64_BOARD_USER!r}: {result.stderr.strip()}")
        user = pwd.getpwnam(ARM64_BOARD_USER)
    group_name = ARM64_BOARD_USER
    with contextlib.suppress(KeyError):
        import grp

        group_name = grp.getgrgid(user.pw_gid).gr_name
    entries = {
        root / "etc" / "passwd": f"{ARM64_BOARD_USER}:x:{user.pw_uid}:{user.pw_gid}:farm lab arm64 board:"
                                 f"{user.pw_dir}:/bin/sh",
        root / "etc" / "group": f"{group_name}:x:{user.pw_gid}:",
    }
    for path, line in entries.items():
        text = path.read_text()
        name = line.split(":", 1)[0] + ":"
        lines = [l for l in text.splitlines() if not l.startswith(name)]
        if line not in text.splitlines():
            path.write_text("\n".join([*lines, line]) + "\n")
    home = root / user.pw_dir.lstrip("/")
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(home, 0o755)


def _labs_registry(root: Path) -> Path:
    return root.parent / "labs"


def _register_arm64_lab(root: Path, lab_id: str) -> None:
    registry = _labs_registry(root)
    registry.mkdir(parents=True, exist_ok=True)
    (registry / lab_id).write_text(str(root) + "\n")


def _unregister_arm64_lab(root: Path, lab_id: str) -> None:
    """Forget this lab; the last arm64 lab to go unmounts /proc and /sys in the root."""
    registry = _labs_registry(root)
    with _locked(root.parent, ".rootfs.lock"):
        (registry / lab_id).unlink(missing_ok=True)
        if registry.is_dir() and any(registry.iterdir()):
            return
        for name in ("sys", "proc"):
            point = root / name
            if str(point) in _mountpoints():
                _unmount_under(point)


def _ensure_root_mounts(root: Path) -> None:
    """/proc inside the root: the agent samples /proc/<pid>/status, the transport uses pgrep.

    /sys is deliberately NOT mounted: onnxruntime's cpuinfo library (aarch64 build) crashes
    with SIGSEGV at import under qemu-user when it finds the host's CPU lists in
    /sys/devices/system/cpu next to the host's x86 /proc/cpuinfo (checked with onnxruntime
    1.32.0, qemu 7.2); with either one absent it only warns and runs. The host's /sys would
    describe the x86 machine anyway, not the emulated board.
    """
    with _locked(root.parent, ".rootfs.lock"):
        if str(root / "sys") in _mountpoints():
            _unmount_under(root / "sys")  # mounted by an older farm lab
        point = root / "proc"
        if str(point) in _mountpoints():
            return
        point.mkdir(exist_ok=True)
        done = subprocess.run(["mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(point)],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise LabError(f"cannot mount /proc in the arm64 root ({point}): {done.stderr.strip()}")
