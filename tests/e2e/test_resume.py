"""`farm bench --resume RUN` continues that run's own plan: models, variants, boards, settings come
from the store; options that differ are refused; no cell is ever measured twice."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import yaml

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.store import open_store
from tests import model_factory
from tests.e2e.cli_process import FarmProcess


def two_local_boards(tmp_path: Path) -> Path:
    """An inventory of two boards on this machine (local transport, own work dirs)."""
    inventory = tmp_path / "two.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        name: {"transport": "local", "python": sys.executable, "workdir": str(tmp_path / name)}
        for name in ("bench-a", "bench-b")}}}))
    return inventory


def orphaned_lease(workdir: Path, run_id: str) -> None:
    """A lease on the board naming `run_id`, held by an agent process that has ended."""
    import json
    import subprocess
    import time

    from agents.farm_common import LEASE_FILE, boot_id, process_start_ticks

    gone = subprocess.Popen(["true"])
    agent = {"pid": gone.pid, "start": process_start_ticks(gone.pid), "boot": boot_id(), "session": "s-gone"}
    gone.wait(timeout=10)
    holder = {"id": "interrupted-controller", "user": "ci", "host": "vm", "pid": 4242, "run_id": run_id}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / LEASE_FILE).write_text(json.dumps({"holder": holder, "since": time.time(),
                                                  "expires_at": time.time() + 600, "agent": agent, "worker": None}))


def test_resume_alone_measures_only_the_missing_cells_of_that_runs_own_plan(tmp_path, db_url, digits_model, capsys):
    slow = model_factory.slow_matmul_chain(tmp_path / "slow.onnx")
    inventory = two_local_boards(tmp_path)
    args = ["bench", "--db", db_url, "--no-report", "-i", str(inventory), "--threads", "1", "--runs", "3",
            "--min-seconds", "0", "--warmup", "0", "--sample-interval", "0", "-m", str(digits_model), "-m", str(slow)]
    farm = FarmProcess(*args)
    farm.wait_for_line("slow/fp32: started", timeout_s=120)  # a board stored digits; slow takes seconds
    farm.proc.send_signal(signal.SIGINT)
    code, err = farm.finish()
    assert code == ExitStatus.INTERRUPTED
    store = open_store(db_url)
    run = store.get_run("latest")
    assert run["status"] == "interrupted" and f"farm bench --resume {run['run_id']}" in err
    stored_before = {(r["board"], r["model"]): r["result_id"] for r in store.results(run["run_id"]) if r["status"] == "ok"}
    assert 1 <= len(stored_before) < 4

    # another option than the plan's is refused, naming the difference; nothing is measured
    assert main(["bench", "--db", db_url, "--resume", run["run_id"], "--runs", "50"]) == ExitStatus.BAD_INPUT
    assert "--runs 50 differs from its 3" in capsys.readouterr().err
    assert main(["bench", "--db", db_url, "--resume", run["run_id"], "--variants", "fp16"]) == ExitStatus.BAD_INPUT
    assert store.count_results(run["run_id"]) == len(stored_before)

    # as when Ctrl-C's abort kills an agent before it frees its lease: the board is not busy for
    # the lease's ttl, and taking it over does not mark the run being resumed abandoned
    orphaned_lease(tmp_path / "bench-b", run["run_id"])

    # --resume alone: the run's models, boards and settings, only what is missing
    assert main(["bench", "--db", db_url, "--no-report", "--resume", run["run_id"], "--lease-wait", "1"]) == ExitStatus.OK
    took_over = [line for line in capsys.readouterr().err.splitlines() if "took the board over" in line]
    assert len(took_over) == 1 and "bench-b" in took_over[0] and "abandoned" not in took_over[0]
    results = store.results(run["run_id"])
    cells = [(r["board"], r["model"]) for r in results]
    assert sorted(cells) == sorted({(b, m) for b in ("bench-a", "bench-b") for m in ("digits_mlp", "slow")})
    assert len(cells) == len(set(cells))  # never a duplicate cell
    for cell, result_id in stored_before.items():  # the finished cells were not measured again
        assert next(r["result_id"] for r in results if (r["board"], r["model"]) == cell) == result_id
    assert {r["settings_hash"] for r in results} == {results[0]["settings_hash"]}
    assert {r["runs"] for r in results} == {3}  # the plan's --runs 3, not farm's default 100
    assert store.get_run(run["run_id"])["status"] == "finished"


def test_a_run_left_running_by_a_controller_on_another_machine_is_abandoned_by_hand(tmp_path, db_url, digits_model,
                                                                                    capsys):
    import json
    import os
    import sqlite3

    from agents.farm_common import process_start_ticks
    from orchestrator.run_liveness import this_controller

    args = ["bench", "--db", db_url, "--no-report", "--runs", "3", "--min-seconds", "0", "--warmup", "0",
            "--sample-interval", "0", "-m", str(digits_model)]
    assert main(args) == ExitStatus.OK
    run_id = open_store(db_url).get_run("latest")["run_id"]

    def left_running(controller: dict) -> None:  # as a controller killed mid-run leaves it
        with sqlite3.connect(str(tmp_path / "farm.db")) as conn:
            conn.execute("UPDATE runs SET status = 'running', controller_json = ? WHERE run_id = ?",
                         (json.dumps(controller), run_id))

    # a live controller on this machine: neither resumed nor abandoned
    left_running({**this_controller(), "hostname": os.uname().nodename})
    assert this_controller()["pid_start"] == process_start_ticks(os.getpid())
    assert main(["runs", "abandon", run_id, "--db", db_url]) == ExitStatus.BAD_INPUT
    assert "alive" in capsys.readouterr().err

    # a controller on another machine: farm cannot tell it died, and says what to do
    left_running({"hostname": "ci-runner-7f3a", "pid": 4242, "pid_start": 1, "boot_id": "elsewhere"})
    assert main([*args, "--resume", run_id]) == ExitStatus.BAD_INPUT
    assert f"farm runs abandon {run_id}" in capsys.readouterr().err
    assert main(["runs", "abandon", run_id, "--db", db_url]) == ExitStatus.OK
    assert open_store(db_url).get_run(run_id)["status"] == "abandoned"
    assert main(["bench", "--db", db_url, "--no-report", "--resume", run_id]) == ExitStatus.OK
    assert open_store(db_url).get_run(run_id)["status"] == "finished"
    assert main(["runs", "abandon", run_id, "--db", db_url]) == ExitStatus.BAD_INPUT  # not running now
    assert "not running" in capsys.readouterr().err
