"""The lab folder's files: the state file `lab.json`, `known_hosts` and `inventory.yaml`.

`<lab dir>` (default `/var/lib/farm-lab`, env FARM_LAB_DIR; outside /root, which the board
user cannot enter) holds `lab.json` (what `lab up` made, see orchestrator.lab.records),
`inventory.yaml` (`farm bench -i <lab dir>/inventory.yaml` works as soon as `lab_up`
returns), `known_hosts` (every board's host key, so the controller checks them as it
would a real board's), and the files of orchestrator.lab.accounts and .sshd. `.lock`
serialises `lab up`/`lab down` on one folder. The state file is written whole or not at
all (a temp name, then rename).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import yaml

from orchestrator.lab.errors import LabError
from orchestrator.lab.profiles import GIB, BoardLimits
from orchestrator.lab.records import (
    STATE_VERSION,
    BoardRecord,
    LabBoard,
    LabRecord,
    LabState,
)
from orchestrator.lab.sshd import board_alive, board_dir

DEFAULT_LAB_DIR = Path("/var/lib/farm-lab")
LAB_DIR_ENV = "FARM_LAB_DIR"
CONNECT_TIMEOUT_S = 5.0


def default_lab_dir() -> Path:
    """$FARM_LAB_DIR, else /var/lib/farm-lab."""
    value = os.environ.get(LAB_DIR_ENV, "").strip()
    return Path(value) if value else DEFAULT_LAB_DIR


def lab_id(lab_dir: Path) -> str:
    """A short name for the lab in `lab_dir`, unique per folder: its cgroups' and workdirs' name."""
    digest = hashlib.sha256(str(lab_dir).encode()).hexdigest()[:8]
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", lab_dir.name)[:40] or "lab"
    return f"{base}-{digest}"


def looks_like_lab(lab_dir: Path) -> bool:
    """Only a folder `lab up` made is deleted by `lab down --purge`: never an arbitrary path."""
    names = {p.name for p in lab_dir.iterdir()}
    return not names or "lab.json" in names or {".lock", "client_ed25519"} <= names


def read_state_file(lab_dir: Path) -> LabRecord | None:
    """The lab in `lab_dir` as `lab.json` records it; None when there is no state file."""
    path = lab_dir / "lab.json"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: cannot read the lab state ({exc}); take the lab down by hand or remove it") from exc
    if state.get("version") != STATE_VERSION:
        raise LabError(f"{path}: lab state version {state.get('version')} is not {STATE_VERSION}")
    try:
        return LabRecord.from_json(state, lab_dir)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LabError(f"{path}: cannot read the lab state ({exc!r}); take the lab down by hand or remove it") from exc


def write_state_file(lab_dir: Path, record: LabRecord) -> None:
    """Replace `lab.json` whole (a reader never sees half of it)."""
    path = lab_dir / "lab.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def lab_state(
    lab_dir: Path, record: LabRecord, started_now: tuple[str, ...] = (), notes: tuple[str, ...] = ()
) -> LabState:
    """What callers see of the recorded lab, with each board's sshd checked now."""
    boards = tuple(
        LabBoard(
            name=b.name,
            profile=b.profile,
            models=b.models,
            address=b.address,
            port=b.port,
            python=b.python,
            workdir=b.workdir,
            bare=b.bare,
            pid=b.pid,
            running=board_alive(b),
            limits=b.limits,
            cgroups=dict(b.cgroups),
            arch=b.arch,
            user=b.user,
            emulated=b.emulated,
        )
        for b in record.boards
    )
    return LabState(
        lab_dir=lab_dir,
        boards=boards,
        inventory_path=lab_dir / "inventory.yaml",
        known_hosts_path=lab_dir / "known_hosts",
        identity_file=record.identity_file,
        limits_enforced=record.limits_enforced,
        limits_note=record.limits_note,
        started_now=started_now,
        notes=notes,
    )


def no_lab_state(lab_dir: Path) -> LabState:
    """The state of a folder that holds no lab."""
    return LabState(
        lab_dir=lab_dir,
        boards=(),
        inventory_path=lab_dir / "inventory.yaml",
        known_hosts_path=lab_dir / "known_hosts",
        identity_file=lab_dir / "client_ed25519",
        limits_enforced=False,
        limits_note=f"no lab in {lab_dir} (start one with `farm lab up`)",
    )


def write_known_hosts(lab_dir: Path, boards: tuple[BoardRecord, ...]) -> None:
    """`known_hosts` with every board's host key, as `[address]:port` lines."""
    lines = []
    for record in boards:
        key_type, key_b64 = (board_dir(lab_dir, record.name) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"[{record.address}]:{record.port} {key_type} {key_b64}")
    path = lab_dir / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o644)


def _limits_comment(limits: BoardLimits) -> str:
    parts = []
    if limits.cpu_quota_cores is not None:
        parts.append(f"CPU {limits.cpu_quota_cores:g} core ({limits.cpu_quota_us}/{limits.cpu_period_us} us)")
    if limits.cpuset_cpus:
        parts.append(f"pinned to CPU {limits.cpuset_cpus}")
    if limits.memory_limit_bytes is not None:
        parts.append(f"memory {limits.memory_limit_bytes / GIB:g} GiB")
    return ", ".join(parts) or "no limits"


def write_inventory(
    lab_dir: Path, boards: tuple[BoardRecord, ...], identity: Path, limits_enforced: bool, limits_note: str
) -> None:
    """`inventory.yaml`: one host per board, grouped by profile, with a comment on each board's limits."""
    groups: dict[str, dict] = {}
    for record in boards:
        tags = {"profile": record.profile, "arch": record.arch, "lab": "true"}
        if record.emulated:
            tags["emulated"] = "qemu-user"
        if record.bare:
            tags["bare"] = "true"
        group = f"{record.profile}-arm64" if record.emulated else record.profile
        groups.setdefault(group, {"hosts": {}})["hosts"][record.name] = {
            "host": record.address,
            "port": record.port,
            "user": record.user,
            "identity_file": str(identity),
            "known_hosts_file": str(lab_dir / "known_hosts"),
            "python": record.python,
            "workdir": record.workdir,
            "tags": tags,
        }
    data = {"all": {"vars": {"transport": "ssh", "connect_timeout_s": CONNECT_TIMEOUT_S}, "children": groups}}
    header = [
        "# Simulated boards written by `farm lab up` (orchestrator/lab/); rewritten on every `lab up`.",
        "# Each board is a real sshd on loopback, logged into as the unprivileged user 'farmboard'.",
        "# Profiles (cgroup v1 limits; the board reports them from /proc/self/cgroup + /sys/fs/cgroup",
        "# and <workdir>/board.json):",
    ]
    if not limits_enforced:
        header.append(f"#   NO LIMITS: {limits_note}")
    if any(record.emulated for record in boards):
        header.append("# Emulated aarch64 boards (qemu-user, a Debian arm64 root; user 'farmboard-arm64') start "
                      "without numpy/onnxruntime:")
        header.append(f"#   farm inventory provision -i {lab_dir / 'inventory.yaml'}")
    for record in boards:
        header.append(f"#   {record.name}: {record.models}")
        header.append(f"#       {_limits_comment(record.limits)}")
    header.append("# Use it: farm bench -i " + str(lab_dir / "inventory.yaml") + " ...")
    text = "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    path = lab_dir / "inventory.yaml"
    path.write_text(text)
    os.chmod(path, 0o644)
