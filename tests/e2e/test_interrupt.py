"""Ctrl-C / SIGTERM mid-run: jobs stopped on the board, finished results kept, run marked interrupted."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import ExitStatus
from orchestrator.store import open_store


def agent_processes(marker: str) -> list[int]:
    """PIDs of farm agents/workers whose command line mentions `marker` (the test's own model)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "/agent-" in cmdline and marker in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_until(condition, timeout_s: float, what: str):
    """Poll a condition with a deadline (the only way to wait on another process's progress)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_finished_results_and_leaves_no_orphans(tmp_path, digits_model, signum):
    from tests import model_factory

    slow = model_factory.slow_matmul_chain(tmp_path / f"slow_{int(signum)}.onnx")
    db = f"sqlite:///{tmp_path / 'farm.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "bench", "--db", db, "--no-report", "--threads", "1",
         "--runs", "3", "--min-seconds", "0", "--warmup", "0", "-m", str(digits_model),
         "-m", str(slow)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: _results(db) >= 1, 60, "the first result to be stored")
        wait_until(lambda: agent_processes(slow.stem), 60, "the slow job to start on the board")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == ExitStatus.INTERRUPTED, err
    assert "interrupted" in err
    store = open_store(db)
    run = store.get_run("latest")
    assert run["status"] == "interrupted"
    records = store.export_records(run["run_id"])
    assert [r["model"] for r in records if r["status"] == "ok"] == ["digits_mlp"]
    wait_until(lambda: not agent_processes(slow.stem), 10, "the board's agent and worker to be gone")


def _results(db: str) -> int:
    try:
        return open_store(db).count_results()
    except Exception:
        return 0
