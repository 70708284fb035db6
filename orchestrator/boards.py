"""What farm knows about a board before it connects: its name and how to reach it.

The inventory produces `Board` objects; the built-in `local` board needs none.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

from orchestrator.paths import farm_cache_dir

LOCAL_BOARD_NAME = "local"


def default_local_workdir() -> Path:
    """Where the local board keeps the agent and staged files (per user, like a real board's ~/.farm)."""
    return farm_cache_dir() / "local-board"


@dataclasses.dataclass(frozen=True)
class Board:
    """One board of the farm.

    `transport` is "local" (this machine, subprocesses) or "ssh". For SSH boards, any of
    host/port/user/identity_file/proxy_jump left None is taken from the user's
    ~/.ssh/config for `host` (or the board name when `host` is None).
    """

    name: str
    transport: str = "local"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    proxy_jump: str | None = None
    python: str = "python3"
    workdir: str | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    providers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    accept_new_host_keys: bool = False
    known_hosts_file: str | None = None
    ssh_config_file: str | None = None
    connect_timeout_s: float = 10.0
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)


def local_board(python: str | None = None) -> Board:
    """The built-in board: this machine, running the agent with this Python."""
    import sys

    return Board(name=LOCAL_BOARD_NAME, transport="local", python=python or sys.executable)
