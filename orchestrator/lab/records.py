"""Typed records of a lab: what `lab_up` planned and made, as `lab.json` keeps it, and as callers see it.

`BoardSpec`, `BoardRecord` and `LabRecord` are the state file's contents (`lab.json`,
STATE_VERSION 1); their `to_json`/`from_json` keep its keys and shape exactly, so a lab
brought up by one version of farm can be reported and taken down by another.
`from_json` fills keys that older files lack with what those files meant.
`LabBoard` and `LabState` are what `lab_up`/`lab_status`/`lab_down` return.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from orchestrator.lab.accounts import ARM64_BOARD_USER, BOARD_USER
from orchestrator.lab.profiles import BoardLimits

STATE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class BoardSpec:
    """One board as asked for: `lab up` with the same specs finds the same lab."""

    name: str
    profile: str
    bare: bool
    address: str
    port: int
    arch: str | None = None  # None: native; "aarch64": emulated

    def to_json(self) -> dict[str, Any]:
        """The spec as lab.json keeps it (native boards keep the shape they always had: no arch)."""
        data = dataclasses.asdict(self)
        if data.get("arch") is None:
            data.pop("arch", None)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BoardSpec:
        return cls(data["name"], data["profile"], data["bare"], data["address"], data["port"], data.get("arch"))


@dataclasses.dataclass(frozen=True)
class BoardRecord:
    """One board as made: its files, login, limits, cgroups and (when started) its sshd's pid.

    `workdir` is the path the board sees; `host_workdir` where it lies on this machine (they
    differ for an emulated board, whose workdir is inside the arm64 root). `config` is the
    board's sshd_config; `cgroups` maps controller -> path inside its hierarchy.
    """

    name: str
    profile: str
    bare: bool
    address: str
    port: int
    arch: str  # what `uname -m` says on the board
    models: str
    python: str
    workdir: str
    host_workdir: str
    user: str
    emulated: bool
    config: str
    limits: BoardLimits
    cgroups: dict[str, str]
    pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # the field order is lab.json's key order

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BoardRecord:
        return cls(
            name=data["name"],
            profile=data["profile"],
            bare=data.get("bare", False),
            address=data["address"],
            port=data["port"],
            arch=data.get("arch", "x86_64"),
            models=data.get("models", ""),
            python=data["python"],
            workdir=data["workdir"],
            host_workdir=data.get("host_workdir", data["workdir"]),
            user=data.get("user", BOARD_USER),
            emulated=bool(data.get("emulated")),
            config=data.get("config", ""),
            limits=BoardLimits(**data.get("limits", {})),
            cgroups=dict(data.get("cgroups", {})),
            pid=data.get("pid"),
        )


@dataclasses.dataclass(frozen=True)
class Emulation:
    """How an emulated lab's boards run: chrooted into `root` (an arm64 userland) as `user`."""

    root: Path
    user: str = ARM64_BOARD_USER

    def to_json(self) -> dict[str, str]:
        return {"root": str(self.root), "user": self.user}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Emulation:
        return cls(Path(data["root"]), data.get("user", ARM64_BOARD_USER))


@dataclasses.dataclass(frozen=True)
class LabRecord:
    """The whole of `lab.json`: the specs asked for, what was made from them, and the boards."""

    spec: tuple[BoardSpec, ...]
    identity_file: Path
    venv_dir: str | None
    limits_enforced: bool
    limits_note: str
    emulation: Emulation | None
    boards: tuple[BoardRecord, ...]

    @classmethod
    def empty(cls, lab_dir: Path) -> LabRecord:
        return cls((), lab_dir / "client_ed25519", None, False, "", None, ())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "spec": [s.to_json() for s in self.spec],
            "identity_file": str(self.identity_file),
            "venv_dir": self.venv_dir,
            "limits_enforced": self.limits_enforced,
            "limits_note": self.limits_note,
            "emulation": self.emulation.to_json() if self.emulation else None,
            "boards": [b.to_json() for b in self.boards],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], lab_dir: Path) -> LabRecord:
        """`data` as read from `lab_dir`/lab.json (its version already checked)."""
        emulation = data.get("emulation")
        return cls(
            spec=tuple(BoardSpec.from_json(s) for s in data.get("spec") or ()),
            identity_file=Path(data.get("identity_file", lab_dir / "client_ed25519")),
            venv_dir=data.get("venv_dir"),
            limits_enforced=bool(data.get("limits_enforced")),
            limits_note=data.get("limits_note", ""),
            emulation=Emulation.from_json(emulation) if emulation else None,
            boards=tuple(BoardRecord.from_json(b) for b in data.get("boards", [])),
        )


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
    emulated: bool = False  # True: an aarch64 userland under qemu-user (see orchestrator.lab.arm64)


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
