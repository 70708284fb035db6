"""Ctrl-C / SIGTERM mid-run: jobs stopped on the board, finished results kept, run marked interrupted.

The job to interrupt runs a model whose inference never ends (model_factory.endless_loop), and
the signal is sent once the agent reported that job's `first_inference` phase: the job cannot
finish before the signal lands, however loaded the machine is.
"""
from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import ExitStatus
from orchestrator.store import open_store

CLI = Path(__file__).with_name("cli_with_events.py")


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


def wait_for_event(proc: subprocess.Popen, timeout_s: float, **wanted: str) -> dict:
    """Read the CLI's event lines until one has all of `wanted`; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the CLI's own output
        if isinstance(event, dict) and all(event.get(k) == v for k, v in wanted.items()):
            return event
    raise AssertionError(f"no event {wanted} within {timeout_s} s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_finished_results_and_leaves_no_orphans(tmp_path, digits_model, signum):
    from tests import model_factory

    endless = model_factory.endless_loop(tmp_path / f"endless_{int(signum)}.onnx")
    db = f"sqlite:///{tmp_path / 'farm.db'}"
    proc = subprocess.Popen(
        [sys.executable, str(CLI), "bench", "--db", db, "--no-report", "--threads", "1",
         "--runs", "3", "--min-seconds", "0", "--warmup", "0", "-m", str(digits_model), "-m", str(endless)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_event(proc, 120, event="cell_finished", model="digits_mlp")
        wait_for_event(proc, 120, event="cell_phase", model=endless.stem, phase="first_inference")
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
    assert endless.stem not in [r["model"] for r in records]  # an interrupted job is not stored as failed
    wait_until(lambda: not agent_processes(endless.stem), 10, "the board's agent and worker to be gone")
