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
