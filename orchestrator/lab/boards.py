"""Planning a lab's boards (names, loopback addresses) and making each board's files.

Boards are named `<profile>-<n>` (`<profile>-bare-<n>` for a bare one, `<profile>-arm64-<n>`
for an emulated one) and get consecutive loopback addresses from the first one: lab boards
live on 127.0.0.0/8 only, never on an address another machine could answer. Each board
gets `<lab dir>/boards/<name>/` (sshd_config, host key) and a workdir owned by its user,
holding `board.json`: its profile's limits as written to its cgroups, for the agent to
report (inside a cgroup, `free` and /proc/cpuinfo still show the host's values).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import platform
import pwd
from pathlib import Path

from orchestrator.lab.accounts import BOARD_USER, SYSTEM_PYTHON, ensure_key
from orchestrator.lab.arm64 import board_workdir
from orchestrator.lab.cgroups import make_cgroups
from orchestrator.lab.errors import LabError
from orchestrator.lab.profiles import PROFILES, BoardLimits, Profile, limits_for
from orchestrator.lab.records import BoardRecord, BoardSpec, Emulation
from orchestrator.lab.sshd import board_dir, sshd_config

DEFAULT_FIRST_ADDRESS = "127.0.0.11"
DEFAULT_PORT = 2222
MAX_BOARDS = 64


def plan_boards(
    parsed: list[tuple[Profile, bool]], count: int, first_address: str, port: int, emulated_arch: str | None = None
) -> list[BoardSpec]:
    """`count` boards of each (profile, bare?), on consecutive loopback addresses from `first_address`."""
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
                specs.append(BoardSpec(name, profile.name, True, str(address), port, emulated_arch))
            else:
                specs.append(BoardSpec(name, profile.name, bare, str(address), port))
            index += 1
    return specs


def prepare_board(
    lab_dir: Path,
    lab_id: str,
    spec: BoardSpec,
    cpuset: str | None,
    venv_python: str,
    limits_enforced: bool,
    emulation: Emulation | None = None,
) -> BoardRecord:
    """Files for one board (config, host key, workdir, board.json) and its cgroups.

    An emulated board's workdir is `/farm-lab/<lab id>/<name>` inside the arm64 root (the
    path the board sees; `host_workdir` is where it lies on this machine).
    """
    profile = PROFILES[spec.profile]
    folder = board_dir(lab_dir, spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    host_key = ensure_key(folder / "ssh_host_ed25519_key", f"farm lab board {spec.name}")
    login = emulation.user if emulation else BOARD_USER
    user = pwd.getpwnam(login)
    if emulation:
        workdir_seen = board_workdir(lab_id, spec.name)
        workdir = emulation.root / workdir_seen.lstrip("/")
        for parent in (workdir.parent.parent, workdir.parent):
            parent.mkdir(exist_ok=True)
            os.chmod(parent, 0o755)
    else:
        workdir = folder / "work"
        workdir_seen = str(workdir)
    workdir.mkdir(exist_ok=True)
    os.chown(workdir, user.pw_uid, user.pw_gid)
    os.chmod(workdir, 0o755)
    config = folder / "sshd_config"
    config.write_text(sshd_config(spec, host_key, folder, lab_dir / "authorized_keys", emulation))
    python = venv_python if emulation else (SYSTEM_PYTHON if spec.bare else venv_python)

    limits = BoardLimits()
    cgroups: dict[str, str] = {}
    if limits_enforced:
        limits = limits_for(profile, cpuset)
        cgroups = make_cgroups(lab_id, spec.name, limits)
    record = BoardRecord(
        name=spec.name,
        profile=spec.profile,
        bare=spec.bare,
        address=spec.address,
        port=spec.port,
        arch=spec.arch or platform.machine(),
        models=profile.models,
        python=python,
        workdir=workdir_seen,
        host_workdir=str(workdir),
        user=login,
        emulated=emulation is not None,
        config=str(config),
        limits=limits,
        cgroups=cgroups,
    )
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
