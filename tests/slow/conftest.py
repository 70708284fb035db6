"""Slow-test fixtures: an emulated aarch64 lab board (qemu-user + a Debian arm64 root), next to the
integration lab's x86 boards.

The arm64 root is made by debootstrap once per machine (/var/lib/farm-lab-arm64/root, kept
between sessions: minutes the first time) and reused; each session's board gets a fresh work
directory inside it (/farm-lab/<lab id>/...), so the board starts with no venv: bare python3.
Without root, qemu-user-static, binfmt_misc or debootstrap the tests are skipped locally and
fail in CI (CI=true); `FARM_TEST_SLOW=1 scripts/install-test-deps.sh` installs what they need.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import lab as lab_mod
from tests.integration.conftest import in_ci, lab, lab_address_block, wheel_cache  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def arm64_lab(lab) -> Iterator[lab_mod.LabState]:  # noqa: F811 - the imported fixture
    """One emulated aarch64 board (profile `unlimited`) on 127.77.<n>.41, taken down at the end."""
    problems = lab_mod.missing_prerequisites() + lab_mod.missing_emulation_prerequisites()
    if problems:
        message = "the arm64 tests need an emulated aarch64 board: " + " ".join(problems)
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    lab_dir = Path(f"/var/lib/farm-lab-test-{os.getpid()}-arm64")
    try:
        state = lab_mod.lab_up(lab_dir, ["unlimited"], 1, "arm64", first_address=f"127.77.{lab_address_block()}.41")
    except BaseException:
        lab_mod.lab_down(lab_dir, remove_files=True)
        raise
    yield state
    lab_mod.lab_down(lab_dir, remove_files=True)
