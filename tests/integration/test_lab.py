"""`farm lab`: simulated boards are real sshd servers under cgroup profiles, and `down` leaves nothing."""
from __future__ import annotations

import contextlib
import json
import os
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator import lab as lab_mod
from orchestrator.cli.lab_cmd import lab_app
from orchestrator.inventory import load_inventory
from orchestrator.transport import open_transport
from orchestrator.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration


def _pid_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def settle(lab) -> lab_mod.LabState:
    """lab up again: boards a fault test "rebooted" (killed and restarted) are running again."""
    return lab_mod.lab_up(lab.lab_dir, ["rpi4", "jetson-nano", "snapdragon"], 1,
                          first_address=lab.boards[0].address, venv_dir=Path(lab.boards[0].python).parents[1])


def test_status_shows_every_board_running(lab):
    settle(lab)
    status = lab_mod.lab_status(lab.lab_dir)
    assert [b.name for b in status.boards] == ["rpi4-1", "jetson-nano-1", "snapdragon-1"]
    assert all(b.running and _pid_exists(b.pid) for b in status.boards)
    assert {b.address for b in status.boards} == {b.address for b in lab.boards}
    assert all(b.address.startswith("127.") for b in status.boards)


def test_lab_up_again_reports_the_running_boards(lab):
    before = settle(lab)  # (a fault test may have "rebooted" a board earlier)
    again = settle(lab)
    assert again.started_now == ()
    assert [b.pid for b in again.boards] == [b.pid for b in before.boards]


def test_lab_up_with_other_boards_asks_to_take_it_down_first(lab):
    with pytest.raises(lab_mod.LabError, match="farm lab down"):
        lab_mod.lab_up(lab.lab_dir, ["rpi4"], 2, first_address=lab.boards[0].address,
                       venv_dir=Path(lab.boards[0].python).parents[1])


def test_the_inventory_loads_and_its_boards_run_onnxruntime(lab):
    inventory = load_inventory(lab.inventory_path)
    assert [b.name for b in inventory.boards] == ["rpi4-1", "jetson-nano-1", "snapdragon-1"]
    assert inventory.groups["rpi4"] == ["rpi4-1"]
    board = inventory.boards[0]
    assert (board.transport, board.user, board.port) == ("ssh", lab_mod.BOARD_USER, 2222)
    assert dict(board.tags) == {"profile": "rpi4", "arch": "x86_64", "lab": "true"}
    assert len(lab.known_hosts_path.read_text().splitlines()) == 3
    transport = open_transport(board)
    try:
        result = transport.run([board.python, "-c", "import numpy, onnxruntime; print(onnxruntime.__version__)"], 60)
    finally:
        transport.close()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == metadata.version("onnxruntime")


def test_each_board_reports_its_profile_limits(lab, connect):
    if not lab.limits_enforced:
        pytest.skip(f"limits not enforced here: {lab.limits_note}")
    expected = {
        "rpi4-1": ("50000", str(1 << 30), "0"),
        "jetson-nano-1": ("40000", str(1 << 30), "1"),
        "snapdragon-1": ("150000", str(2 << 30), "0-1"),
    }
    for name, (quota_us, memory_bytes, cpus) in expected.items():
        transport = connect(name)
        # What an agent does: find its cgroups in /proc/self/cgroup, read the limits there.
        script = (
            'cpu=$(grep -E "^[0-9]+:cpu:" /proc/self/cgroup | cut -d: -f3); '
            'mem=$(grep -E "^[0-9]+:memory:" /proc/self/cgroup | cut -d: -f3); '
            'set=$(grep -E "^[0-9]+:cpuset:" /proc/self/cgroup | cut -d: -f3); '
            'cat /sys/fs/cgroup/cpu$cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory$mem/memory.limit_in_bytes '
            '/sys/fs/cgroup/cpuset$set/cpuset.cpus'
        )
        result = transport.run(["sh", "-c", script], 10)
        assert result.stdout.split() == [quota_us, memory_bytes, cpus], (name, result.stderr)
        facts = json.loads(transport.run(["cat", "board.json"], 10).stdout)
        assert facts["profile"] == name.rsplit("-", 1)[0]
        assert facts["limits"]["cpu_quota_us"] == int(quota_us)


def test_a_process_over_the_memory_limit_is_oom_killed_and_reports_137(lab, connect):
    if not lab.limits_enforced:
        pytest.skip(f"limits not enforced here: {lab.limits_note}")
    transport = connect("rpi4-1")  # 1 GiB
    result = transport.run([transport._board.python, "-c", "b = b'x' * (1536 << 20); print(len(b))"], 60)
    assert result.exit_code == 137
    assert result.stdout == ""


def test_cli_status_lists_the_boards(lab):
    result = CliRunner().invoke(lab_app, ["status", "--dir", str(lab.lab_dir)])
    assert result.exit_code == 0, result.output
    for board in lab.boards:
        assert board.name in result.output


def test_a_bare_board_and_lab_down_leaves_nothing_running(lab, tmp_path):
    # A second, one-board lab: a board without onnxruntime, then `farm lab down`.
    lab_dir = Path(f"/var/lib/farm-lab-test-{os.getpid()}-bare")
    address = f"127.77.{lab.boards[0].address.split('.')[2]}.21"
    small = lab_mod.lab_up(lab_dir, ["rpi4:bare"], 1, first_address=address,
                           venv_dir=Path(lab.boards[0].python).parents[1])
    try:
        (board,) = small.boards
        assert (board.name, board.python, board.bare) == ("rpi4-bare-1", lab_mod.SYSTEM_PYTHON, True)
        inventory = load_inventory(small.inventory_path)
        transport = open_transport(inventory.boards[0])
        assert isinstance(transport, SSHTransport)
        missing = transport.run([board.python, "-c", "import onnxruntime"], 20)
        assert missing.exit_code == 1 and "No module named 'onnxruntime'" in missing.stderr
        # Something that escapes the command's session: only `lab down` can find and stop it.
        escaped = transport.run(
            ["sh", "-c", "setsid sleep 304 </dev/null >/dev/null 2>&1 & echo $!"], 20
        )
        sleep_pid = int(escaped.stdout)
        assert _pid_exists(sleep_pid)
        transport.close()
        sshd_pid = board.pid
    finally:
        result = CliRunner().invoke(lab_app, ["down", "--dir", str(lab_dir)])
    assert result.exit_code == 0, result.output
    assert "rpi4-bare-1" in result.output
    assert not _pid_exists(sshd_pid)
    assert not _pid_exists(sleep_pid)
    after = lab_mod.lab_status(lab_dir)
    assert [b.running for b in after.boards] == [False]
    for controller, path in board.cgroups.items():
        assert not (lab_mod.CGROUP_ROOT / controller / path.lstrip("/")).exists()
    config = str(lab_dir / "boards" / "rpi4-bare-1" / "sshd_config").encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                assert config not in (entry / "cmdline").read_bytes()
    lab_mod.lab_down(lab_dir, remove_files=True)
    assert not lab_dir.exists()


def test_an_architecture_other_than_the_host_or_arm64_is_refused(tmp_path):
    assert lab_mod.normalize_arch("arm64") == lab_mod.normalize_arch("aarch64") == "aarch64"
    with pytest.raises(lab_mod.LabError, match="unknown architecture 'riscv64'"):
        lab_mod.normalize_arch("riscv64")
    if lab_mod.missing_prerequisites():
        pytest.skip("needs root and sshd")
    with pytest.raises(lab_mod.LabError, match="unknown architecture"):
        lab_mod.lab_up(tmp_path / "lab", ["rpi4"], 1, "riscv64")


def test_the_arm64_root_must_suit_sshd_chroot(tmp_path):
    """sshd's ChrootDirectory refuses a path with a folder writable by others (/tmp): say so before starting."""
    problems = lab_mod.missing_emulation_prerequisites(Path("/tmp/farm-arm64-root"))
    assert any("must not be under /tmp" in p for p in problems)
    assert not any("/tmp" in p for p in lab_mod.arm64.chroot_path_problems(Path("/var/lib/farm-lab-arm64/root")))
