"""Integration fixtures: a lab of real sshd boards on loopback, transports to them, fault proxies.

The lab (3 boards: rpi4, jetson-nano, snapdragon) is brought up once per test session
in /var/lib/farm-lab-test-<pid> (outside /root and /tmp's per-user dirs, so the
unprivileged board user can read what it must) on addresses 127.77.<n>.11-13, where n
comes from the pid, so two sessions on one machine do not collide. The boards'
virtualenv lives in TEST_VENV and is kept between sessions: made once (~10 s), reused.
Without root or sshd the tests are skipped locally and fail in CI (CI=true).
"""
from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Callable, Iterator

import pytest

from orchestrator import lab as lab_mod
from orchestrator.boards import Board
from orchestrator.transport.ssh import SSHTransport

try:  # with or without tests/__init__.py
    from tests.integration.tcp_proxy import TcpProxy
except ImportError:  # pragma: no cover - rootdir-less import mode
    from tcp_proxy import TcpProxy  # type: ignore[no-redef]

TEST_PROFILES = ("rpi4", "jetson-nano", "snapdragon")
TEST_VENV = Path("/var/lib/farm-lab-test-venv")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def lab_address_block() -> int:
    """This session's block of loopback addresses: 127.77.<n>.x (n from the pid)."""
    return os.getpid() % 250 + 1


@pytest.fixture(scope="session")
def lab() -> Iterator[lab_mod.LabState]:
    problems = lab_mod.missing_prerequisites()
    if problems:
        message = "integration tests need a lab of real sshd boards: " + " ".join(problems)
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    lab_dir = Path(f"/var/lib/farm-lab-test-{os.getpid()}")
    try:
        state = lab_mod.lab_up(
            lab_dir,
            TEST_PROFILES,
            1,
            first_address=f"127.77.{lab_address_block()}.11",
            venv_dir=TEST_VENV,
        )
    except BaseException:
        lab_mod.lab_down(lab_dir, remove_files=True)
        raise
    yield state
    lab_mod.lab_down(lab_dir, remove_files=True)


def board_of(state: lab_mod.LabState, name: str, **overrides: object) -> Board:
    """A Board for the lab board `name`, as the lab's inventory describes it, with overrides."""
    lab_board = next(b for b in state.boards if b.name == name)
    settings: dict = dict(
        name=lab_board.name,
        transport="ssh",
        host=lab_board.address,
        port=lab_board.port,
        user=lab_mod.BOARD_USER,
        identity_file=str(state.identity_file),
        known_hosts_file=str(state.known_hosts_path),
        python=lab_board.python,
        workdir=lab_board.workdir,
        connect_timeout_s=5.0,
        tags={"profile": lab_board.profile},
    )
    settings.update(overrides)
    return Board(**settings)


@pytest.fixture
def make_board(lab) -> Callable[..., Board]:
    """make_board(name="rpi4-1", **overrides) -> the Board of a lab board."""

    def make(name: str = "rpi4-1", **overrides: object) -> Board:
        return board_of(lab, name, **overrides)

    return make


@pytest.fixture
def connect(lab) -> Iterator[Callable[..., SSHTransport]]:
    """connect(name="rpi4-1", **board_overrides) -> SSHTransport, closed after the test."""
    opened: list[SSHTransport] = []

    def make(name: str = "rpi4-1", **overrides: object) -> SSHTransport:
        transport = SSHTransport(board_of(lab, name, **overrides))
        opened.append(transport)
        return transport

    yield make
    for transport in opened:
        transport.close()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[..., TcpProxy]]:
    """tcp_proxy(target=None, mode="forward", ...) -> a started TcpProxy, stopped after the test."""
    started: list[TcpProxy] = []

    def make(target: tuple[str, int] | None = None, **options: object) -> TcpProxy:
        proxy = TcpProxy(target, lifetime_s=60.0, **options).start()  # type: ignore[arg-type]
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


# ---------------------------------------------------------------------------------- provisioning (issue 10)

# The controller's wheel cache for provisioning tests, kept between sessions like TEST_VENV:
# the package index is asked once per machine, later sessions provision offline.
TEST_WHEEL_CACHE = Path("/var/lib/farm-lab-test-wheels")


@pytest.fixture
def wheel_cache(monkeypatch) -> Path:
    """FARM_WHEEL_CACHE -> TEST_WHEEL_CACHE for this test (the CLI reads it)."""
    TEST_WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("FARM_WHEEL_CACHE", str(TEST_WHEEL_CACHE))
    return TEST_WHEEL_CACHE


@pytest.fixture(scope="session")
def bare_lab(lab) -> Iterator[lab_mod.LabState]:
    """A second, one-board lab: profile `bare` (no cgroup limits; its system /usr/bin/python3 has no
    numpy/onnxruntime) on 127.77.<n>.31, for provisioning. Taken down (and deleted) at the end."""
    lab_dir = Path(f"/var/lib/farm-lab-test-{os.getpid()}-provision")
    try:
        state = lab_mod.lab_up(
            lab_dir, ["bare"], 1, first_address=f"127.77.{lab_address_block()}.31", venv_dir=TEST_VENV
        )
    except BaseException:
        lab_mod.lab_down(lab_dir, remove_files=True)
        raise
    yield state
    lab_mod.lab_down(lab_dir, remove_files=True)


# What a board without network looks like to pip: every HTTP(S) request goes to a closed
# loopback port. Provisioning must succeed under it (pip on the board runs with --no-index).
NO_NETWORK_ENV = {
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "no_proxy": "",
    "NO_PROXY": "",
}


@pytest.fixture
def bare_board(bare_lab) -> Callable[..., tuple[Board, dict]]:
    """bare_board(workdir_name, **overrides) -> (Board, inventory host vars) for the bare lab board
    with a work directory of its own (`<its workdir>/<workdir_name>`), the default python
    (`python3`, i.e. /usr/bin/python3 for the board user) and NO_NETWORK_ENV."""

    def make(workdir_name: str, **overrides: object) -> tuple[Board, dict]:
        (lab_board,) = bare_lab.boards
        host = {
            "host": lab_board.address,
            "port": lab_board.port,
            "user": lab_mod.BOARD_USER,
            "identity_file": str(bare_lab.identity_file),
            "known_hosts_file": str(bare_lab.known_hosts_path),
            "workdir": f"{lab_board.workdir}/{workdir_name}",
            "connect_timeout_s": 5.0,
            "env": {**NO_NETWORK_ENV},
            "tags": {"profile": "bare"},
        }
        host.update(overrides)
        board = Board(name=f"bare-{workdir_name}", transport="ssh", **host)  # type: ignore[arg-type]
        return board, host

    return make
