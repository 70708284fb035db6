"""A real aarch64 board (Debian arm64 userland under qemu-user, over SSH): provision it from
nothing with aarch64 wheels the controller pushes, bench the demo models on it next to an x86
lab board, and render one report with both. Slow: minutes (debootstrap the first time on a
machine, then pip and onnxruntime under emulation)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from orchestrator import lab as lab_mod
from orchestrator import provision as prov
from orchestrator.agent_client import AgentClient
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.inventory import load_inventory
from orchestrator.report import write_report
from orchestrator.store import open_store
from orchestrator.transport import open_transport
from tests.integration.conftest import TEST_WHEEL_CACHE

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0.5"]


def _host(state: lab_mod.LabState, board: lab_mod.LabBoard) -> dict:
    return {
        "host": board.address, "port": board.port, "user": board.user,
        "identity_file": str(state.identity_file), "known_hosts_file": str(state.known_hosts_path),
        "python": board.python, "workdir": board.workdir, "connect_timeout_s": 10.0,
        "tags": {"profile": board.profile, "arch": board.arch},
    }


@pytest.mark.timeout(3600)
def test_provision_and_bench_an_emulated_aarch64_board_next_to_an_x86_one(lab, arm64_lab, tmp_path, wheel_cache,
                                                                          capsys):
    (arm,) = arm64_lab.boards
    x86 = next(b for b in lab.boards if b.profile == "snapdragon")
    assert (arm.arch, arm.emulated, arm.user, arm.python) == ("aarch64", True, lab_mod.ARM64_BOARD_USER, "python3")
    inventory = tmp_path / "farm.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {arm.name: _host(arm64_lab, arm),
                                                           x86.name: _host(lab, x86)}}}))
    boards = {b.name: b for b in load_inventory(inventory).boards}

    # The board is real aarch64 and starts bare.
    transport = open_transport(boards[arm.name])
    try:
        uname = transport.run(["uname", "-m"], 120)
        assert uname.stdout.strip() == "aarch64"
        bare = transport.run(["python3", "-c", "import numpy"], 120)
        assert bare.exit_code == 1 and "No module named 'numpy'" in bare.stderr
    finally:
        transport.close()

    # Provision from nothing: aarch64 wheels for its Python, pushed, installed offline.
    started = time.monotonic()
    status = main(["inventory", "provision", "-i", str(inventory), "-l", arm.name])
    first_s = time.monotonic() - started
    out = capsys.readouterr().out
    assert status == ExitStatus.OK, out
    assert "installed" in out and "aarch64" in out
    (cache_dir,) = [p for p in wheel_cache.iterdir() if p.name.startswith("aarch64-cp")]
    assert any(p.name.startswith("onnxruntime-") and "aarch64" in p.name for p in cache_dir.glob("*.whl"))

    started = time.monotonic()
    again = prov.provision_board(boards[arm.name], cache_root=TEST_WHEEL_CACHE)
    second_s = time.monotonic() - started
    assert not again.changed and again.bytes_sent == 0 and "nothing changed" in again.summary
    assert again.arch == "aarch64" and again.packages["onnxruntime"] == metadata.version("onnxruntime")

    # The agent on the board now runs with the venv's aarch64 python.
    transport = open_transport(boards[arm.name])
    try:
        facts = AgentClient(transport, python="python3").facts(timeout_s=300)
    finally:
        transport.close()
    assert facts["arch"] == "aarch64"
    assert facts["python_executable"].endswith("/venv/bin/python")
    assert facts["onnxruntime_version"] == metadata.version("onnxruntime")

    # Bench the demo models on both boards in one run, then one report showing both.
    db_url = f"sqlite:///{tmp_path / 'farm.db'}"
    started = time.monotonic()
    status = main(["bench", "-i", str(inventory), *FAST, "--db", db_url, "--no-report"])
    bench_s = time.monotonic() - started
    assert status == ExitStatus.OK, capsys.readouterr().err
    records = json.loads(subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--db", db_url],
        capture_output=True, text=True, check=True, timeout=120).stdout)
    by_cell = {(r["board"], r["model"]): r for r in records}
    assert set(by_cell) == {(b, m) for b in (arm.name, x86.name) for m in ("digits_mlp", "yolo_timing")}
    assert all(r["status"] == "ok" and r["runs"] >= 5 for r in records), records
    assert by_cell[(arm.name, "digits_mlp")]["accuracy"] == pytest.approx(by_cell[(x86.name, "digits_mlp")]["accuracy"])
    # Emulation is slow: the same model takes longer on the emulated board than on the x86 one.
    assert by_cell[(arm.name, "yolo_timing")]["latency_ms_p50"] > by_cell[(x86.name, "yolo_timing")]["latency_ms_p50"]

    store = open_store(db_url)
    try:
        run_id = records[0]["run_id"]
        report = write_report(store, run_id, tmp_path / "arm64-vs-x86.html")
    finally:
        store.close()
    html = Path(report).read_text()
    assert arm.name in html and x86.name in html and "aarch64" in html

    print(f"\narm64 timings: lab up {arm64_lab.notes}; provision first {first_s:.1f} s, "
          f"second {second_s:.1f} s; bench (2 boards x 2 models) {bench_s:.1f} s; "
          f"yolo p50 arm64 {by_cell[(arm.name, 'yolo_timing')]['latency_ms_p50']:.1f} ms vs x86 "
          f"{by_cell[(x86.name, 'yolo_timing')]['latency_ms_p50']:.1f} ms")
