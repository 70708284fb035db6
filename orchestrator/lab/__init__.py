"""Simulated boards on this machine: `farm lab up / status / down`.

Each board is a real OpenSSH server (`/usr/sbin/sshd -D -e -f <its config>`) listening
on its own loopback address (127.0.0.11, .12, ... port 2222 by default; never anything
outside 127.0.0.0/8), with its own ed25519 host key, public-key login only
(`PasswordAuthentication no`, `UsePAM no`, `StrictModes no`) as the unprivileged user
`farmboard`. `farm bench -i <lab dir>/inventory.yaml` works as soon as `lab_up` returns.

Each board runs under its profile's cgroup v1 limits (cpu, memory, cpuset), so every
session and process a benchmark starts inherits them; the same numbers are written to
`<board workdir>/board.json` (the agent's working directory). Without cgroup v1 (or
without write access to it) the boards run without limits and `lab_status` says so in
`LabState.limits_note`. Creating the board user, starting sshd servers and setting
limits needs root: `lab_up` refuses to start otherwise and says what to do
(`missing_prerequisites()` lists every missing piece).

Files (all outside /root, which the board user cannot enter): `<lab dir>` (default
`/var/lib/farm-lab`, env FARM_LAB_DIR) holds `lab.json` (state), `inventory.yaml`,
`known_hosts`, `client_ed25519` (the controller's key, root only), `authorized_keys`,
`board-venv/` (python + numpy + onnxruntime at the controller's versions, made once and
reused) and `boards/<name>/` (sshd_config, host key, sshd.log, `work/` = the board's
workdir, owned by farmboard).

This module holds the public API and the order in which a lab is brought up and taken
down; each piece lives in its own module:

- profiles: the board types and the limits that simulate them (the table of profiles)
- boards: board names and addresses, each board's files
- sshd: each board's OpenSSH server (config, start, readiness, stop)
- processes: finding and killing a board's processes
- cgroups: the cgroup v1 groups that enforce the limits
- accounts: the board users, SSH keys and the boards' virtualenv
- records: the typed contents of `lab.json` and the returned LabState/LabBoard
- state: `lab.json`, `known_hosts` and `inventory.yaml` in the lab folder
- arm64, mounts: emulated aarch64 boards (`farm lab up --arch arm64`: a Debian arm64 root
  under qemu-user, see orchestrator.lab.arm64) and the mounts they need
"""
from __future__ import annotations

import dataclasses
import os
import platform
import shutil
from pathlib import Path

from orchestrator.lab.accounts import (
    ARM64_BOARD_USER,
    BOARD_USER,
    SYSTEM_PYTHON,
    VENV_DIR_ENV,
    VENV_INSTALL_TIMEOUT_S,
    ensure_arm64_user,
    ensure_board_user,
    ensure_board_venv,
    ensure_key,
)
from orchestrator.lab.arm64 import (
    ARCH_ALIASES,
    ARM64_ROOT_ENV,
    BINFMT_AARCH64,
    BINFMT_DIR,
    BOARD_WORK_ROOT,
    DEBIAN_MIRROR_ENV,
    DEBIAN_SUITE,
    DEBOOTSTRAP_TIMEOUT_S,
    DEFAULT_ARM64_ROOT,
    DEFAULT_DEBIAN_MIRROR,
    QEMU_AARCH64,
    ROOTFS_MARKER,
    ROOTFS_PACKAGES,
    ROOTFS_VERSION,
    default_arm64_root,
    ensure_arm64_root,
    ensure_binfmt,
    ensure_root_mounts,
    lab_workdirs,
    missing_emulation_prerequisites,
    normalize_arch,
    register_arm64_lab,
    unregister_arm64_lab,
)
from orchestrator.lab.boards import (
    DEFAULT_FIRST_ADDRESS,
    DEFAULT_PORT,
    MAX_BOARDS,
    plan_boards,
    prepare_board,
)
from orchestrator.lab.cgroups import (
    CGROUP_CONTROLLERS,
    CGROUP_PARENT,
    CGROUP_ROOT,
    cgroup_problem,
    host_cpus,
    remove_lab_cgroup_parents,
)
from orchestrator.lab.errors import LabError
from orchestrator.lab.locks import locked
from orchestrator.lab.mounts import mounts_under
from orchestrator.lab.processes import STOP_TIMEOUT_S
from orchestrator.lab.profiles import (
    CPU_PERIOD_US,
    DEFAULT_EMULATED_PROFILES,
    DEFAULT_PROFILES,
    GIB,
    PROFILES,
    BoardLimits,
    Profile,
    parse_profiles,
    pinned_cpusets,
)
from orchestrator.lab.records import (
    STATE_VERSION,
    BoardRecord,
    BoardSpec,
    Emulation,
    LabBoard,
    LabRecord,
    LabState,
)
from orchestrator.lab.sshd import (
    SSHD,
    SSHD_READY_TIMEOUT_S,
    board_alive,
    start_board,
    stop_board,
)
from orchestrator.lab.state import (
    CONNECT_TIMEOUT_S,
    DEFAULT_LAB_DIR,
    LAB_DIR_ENV,
    default_lab_dir,
    lab_id,
    lab_state,
    looks_like_lab,
    no_lab_state,
    read_state_file,
    write_inventory,
    write_known_hosts,
    write_state_file,
)

__all__ = [
    "ARCH_ALIASES", "ARM64_BOARD_USER", "ARM64_ROOT_ENV", "BINFMT_AARCH64", "BINFMT_DIR", "BOARD_USER",
    "BOARD_WORK_ROOT", "CGROUP_CONTROLLERS", "CGROUP_PARENT", "CGROUP_ROOT", "CONNECT_TIMEOUT_S", "CPU_PERIOD_US",
    "DEBIAN_MIRROR_ENV", "DEBIAN_SUITE", "DEBOOTSTRAP_TIMEOUT_S", "DEFAULT_ARM64_ROOT", "DEFAULT_DEBIAN_MIRROR",
    "DEFAULT_EMULATED_PROFILES", "DEFAULT_FIRST_ADDRESS", "DEFAULT_LAB_DIR", "DEFAULT_PORT", "DEFAULT_PROFILES",
    "GIB", "LAB_DIR_ENV", "MAX_BOARDS", "PROFILES", "QEMU_AARCH64", "ROOTFS_MARKER", "ROOTFS_PACKAGES",
    "ROOTFS_VERSION", "SSHD", "SSHD_READY_TIMEOUT_S", "STATE_VERSION", "STOP_TIMEOUT_S", "SYSTEM_PYTHON",
    "VENV_DIR_ENV", "VENV_INSTALL_TIMEOUT_S",
    "BoardLimits", "BoardRecord", "BoardSpec", "LabBoard", "LabError", "LabState", "Profile",
    "default_arm64_root", "default_lab_dir", "ensure_arm64_root", "lab_down", "lab_status", "lab_up",
    "missing_emulation_prerequisites", "missing_prerequisites", "normalize_arch", "parse_profiles",
]


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
    FARM_LAB_ARM64_ROOT; see orchestrator.lab.arm64). Its boards start bare: provision them.
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
    specs = tuple(plan_boards(parsed, count, first_address, port, board_arch if emulated else None))

    lab_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(lab_dir, 0o755)
    with locked(lab_dir):
        previous = read_state_file(lab_dir)
        running = previous is not None and any(board_alive(b) for b in previous.boards)
        if running and previous.spec != specs:
            names = ", ".join(b.name for b in previous.boards)
            raise LabError(
                f"a lab with other boards is already running in {lab_dir} ({names}): "
                f"take it down first with `farm lab down --dir {lab_dir}`"
            )
        notes: list[str] = []
        emulation: Emulation | None = None
        if emulated:
            root, note = ensure_arm64_root(arm64_root)
            notes.append(note)
            ensure_binfmt()
            ensure_arm64_user(root)
            emulation = Emulation(root, ARM64_BOARD_USER)
            python = "python3"  # Debian's aarch64 python3 in the root; a provisioned venv is picked up
        else:
            ensure_board_user()
            python = ensure_board_venv(venv_dir)
        identity = ensure_key(lab_dir / "client_ed25519", "farm lab controller")
        authorized = lab_dir / "authorized_keys"
        authorized.write_text(Path(f"{identity}.pub").read_text())
        os.chmod(authorized, 0o644)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        limits_note = cgroup_problem()
        limits_enforced = limits_note == ""
        cpusets = pinned_cpusets([PROFILES[s.profile] for s in specs], host_cpus())
        this_lab = lab_id(lab_dir)
        if emulation is not None:
            register_arm64_lab(emulation.root, this_lab)
            ensure_root_mounts(emulation.root)
        boards, started = _start_boards(
            lab_dir, this_lab, specs, cpusets, python, limits_enforced, emulation, previous
        )
        record = LabRecord(
            spec=specs,
            identity_file=identity,
            venv_dir=str(venv_dir),
            limits_enforced=limits_enforced,
            limits_note=limits_note,
            emulation=emulation,
            boards=boards,
        )
        write_known_hosts(lab_dir, boards)
        write_inventory(lab_dir, boards, identity, limits_enforced, limits_note)
        write_state_file(lab_dir, record)
    return lab_state(lab_dir, record, started_now=started, notes=tuple(notes))


def _start_boards(
    lab_dir: Path,
    this_lab: str,
    specs: tuple[BoardSpec, ...],
    cpusets: list[str | None],
    python: str,
    limits_enforced: bool,
    emulation: Emulation | None,
    previous: LabRecord | None,
) -> tuple[tuple[BoardRecord, ...], tuple[str, ...]]:
    """Prepare every board and start those whose sshd is not running; returns (boards, started names).

    On any failure, nothing is left half-started: what this call started is stopped and the
    cgroups it made are dropped.
    """
    previous_boards = {b.name: b for b in previous.boards} if previous else {}
    prepared: list[BoardRecord] = []  # boards whose files and cgroups this call made or refreshed
    started: list[str] = []
    try:
        for spec, cpuset in zip(specs, cpusets):
            record = prepare_board(lab_dir, this_lab, spec, cpuset, python, limits_enforced, emulation)
            prepared.append(record)
            old = previous_boards.get(spec.name)
            if old is not None and old.pid and board_alive(old):
                record = dataclasses.replace(record, pid=old.pid)
            else:
                record = dataclasses.replace(record, pid=start_board(lab_dir, record, limits_enforced))
                started.append(spec.name)
            prepared[-1] = record
    except BaseException:
        for record in prepared:
            old = previous_boards.get(record.name)
            if record.name in started or not (old and board_alive(old)):
                stop_board(lab_dir, record)
        remove_lab_cgroup_parents(this_lab)
        if emulation is not None and not (previous and previous.emulation):
            unregister_arm64_lab(emulation.root, this_lab)
        raise
    return tuple(prepared), tuple(started)


def lab_status(lab_dir: Path) -> LabState:
    """The lab in `lab_dir` as it is now (an empty state when there is none)."""
    lab_dir = Path(lab_dir).absolute()
    record = read_state_file(lab_dir)
    return no_lab_state(lab_dir) if record is None else lab_state(lab_dir, record)


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
        if remove_files and lab_dir.is_dir() and looks_like_lab(lab_dir):
            shutil.rmtree(lab_dir)
        return status
    with locked(lab_dir):
        this_lab = lab_id(lab_dir)
        record = read_state_file(lab_dir) or LabRecord.empty(lab_dir)
        stopped = []
        for board in record.boards:
            stop_board(lab_dir, board)
            stopped.append(dataclasses.replace(board, pid=None))
        record = dataclasses.replace(record, boards=tuple(stopped))
        write_state_file(lab_dir, record)
        remove_lab_cgroup_parents(this_lab)
        if record.emulation:
            root = record.emulation.root
            if remove_files:
                work = lab_workdirs(root, this_lab)
                if work.is_dir() and not mounts_under(work):
                    shutil.rmtree(work)
            unregister_arm64_lab(root, this_lab)
        result = lab_state(lab_dir, record)
        if remove_files:
            mounted = mounts_under(lab_dir)
            if mounted:
                raise LabError(f"not deleting {lab_dir}: file systems are mounted inside it ({', '.join(mounted)})")
            shutil.rmtree(lab_dir)
    return result
