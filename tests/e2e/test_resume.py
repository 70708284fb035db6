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


QUICK = {"runs": 3, "min_seconds": 0, "warmup": 0, "threads": 1, "sample_interval_s": 0, "repeats": 1}


def interrupted_at(db_url: str, *args: str, line: str) -> dict:
    """The run `farm bench ARGS` stored when Ctrl-C reached it after the progress line `line`."""
    farm = FarmProcess("bench", "--db", db_url, "--no-report", *args)
    farm.wait_for_line(line, timeout_s=180)
    farm.proc.send_signal(signal.SIGINT)
    code, err = farm.finish()
    assert code == ExitStatus.INTERRUPTED, err
    run = open_store(db_url).get_run("latest")
    assert run["status"] == "interrupted" and f"farm bench --resume {run['run_id']}" in err
    return run


def test_a_suite_run_with_per_model_shapes_resumes_with_those_shapes(tmp_path, db_url, capsys):
    dynamic = model_factory.dynamic_image_conv(tmp_path / "dynamic.onnx")  # x: [1, 3, H, W]
    slow = model_factory.slow_matmul_chain(tmp_path / "slow.onnx", size=2048, layers=4)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "models": [{"path": str(dynamic), "name": "dynamic", "shapes": {"x": "1x3x32x32"}},
                   {"path": str(slow), "name": "slow"}],
        "settings": QUICK,
    }))
    run = interrupted_at(db_url, "--suite", str(suite), line="slow/fp32")  # its one process started
    store = open_store(db_url)
    [first] = [r for r in store.results(run["run_id"]) if r["status"] == "ok"]
    assert first["model"] == "dynamic"

    # the suite's shapes are the plan's: --resume alone needs no --shape (farm does not guess H, W)
    assert main(["bench", "--db", db_url, "--no-report", "--resume", run["run_id"]]) == ExitStatus.OK, \
        capsys.readouterr().err
    results = store.results(run["run_id"])
    assert sorted(r["model"] for r in results) == ["dynamic", "slow"]  # never a duplicate cell
    assert next(r for r in results if r["model"] == "dynamic")["result_id"] == first["result_id"]
    assert store.get_run(run["run_id"])["status"] == "finished"


def test_a_resumed_suite_run_gates_as_the_suite_says(tmp_path, db_url, capsys):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    base = model_factory.slow_matmul_chain(tmp_path / "v1" / "net.onnx", size=128, layers=2)
    slower = model_factory.slow_matmul_chain(tmp_path / "v2" / "net.onnx", size=128, layers=8)
    slow = model_factory.slow_matmul_chain(tmp_path / "slow.onnx", size=1024, layers=4)
    fast = ["--runs", "15", "--min-seconds", "0", "--warmup", "2", "--threads", "1", "--sample-interval", "0"]
    assert main(["bench", "--db", db_url, "--no-report", *fast, "-m", str(base)]) == ExitStatus.OK
    open_store(db_url).tag_run("latest", "release")
    suite = tmp_path / "nightly.yaml"
    suite.write_text(yaml.safe_dump({
        "models": [{"path": str(slower), "name": "net"}, {"path": str(slow), "name": "slow"}],
        "settings": {"runs": 15, "min_seconds": 0, "warmup": 2, "threads": 1, "sample_interval_s": 0},
        "baseline": "tag:release",
        "thresholds": {"latency_pct": 50},
    }))
    # the cells take their processes in turns (net paired with the baseline's file): stopped early
    run = interrupted_at(db_url, "--suite", str(suite), line="slow/fp32 (process 2/")
    store = open_store(db_url)
    stored_before = {r["model"]: r["result_id"] for r in store.results(run["run_id"])}
    assert len(stored_before) < 2
    resume = ["bench", "--db", db_url, "--no-report", "--resume", run["run_id"]]
    capsys.readouterr()

    # a gate option or another suite given with --resume must say what the plan says
    assert main([*resume, "--fail-on-regression", "10"]) == ExitStatus.BAD_INPUT
    assert "--fail-on-regression 10 differs from its 50" in capsys.readouterr().err
    assert main([*resume, "--baseline", "latest"]) == ExitStatus.BAD_INPUT
    assert "--baseline latest differs from its tag:release" in capsys.readouterr().err
    other = tmp_path / "other.yaml"
    other.write_text(suite.read_text())
    assert main([*resume, "--suite", str(other)]) == ExitStatus.BAD_INPUT
    err = capsys.readouterr().err
    assert f"--suite {other}" in err and str(suite) in err
    assert store.count_results(run["run_id"]) == len(stored_before)

    # --resume alone gates against the suite's baseline at its threshold, as the first run would have
    assert main(resume) == ExitStatus.REGRESSION
    out = capsys.readouterr().out
    assert "gate" in out and "threshold latency 50%" in out and "-> exit 5" in out
    results = store.results(run["run_id"])
    assert sorted(r["model"] for r in results) == ["net", "slow"]
    assert all(next(r["result_id"] for r in results if r["model"] == m) == i for m, i in stored_before.items())
    # the same suite file with --resume is the plan's own: accepted, nothing measured again, same gate
    assert main([*resume, "--suite", str(suite), "--fail-on-regression", "50"]) == ExitStatus.REGRESSION
    assert store.count_results(run["run_id"]) == 2


def test_resume_refuses_a_model_file_whose_contents_changed(tmp_path, db_url, capsys):
    import json
    import sqlite3

    from orchestrator.hashing import file_sha256

    model = model_factory.slow_matmul_chain(tmp_path / "net.onnx", size=64, layers=2)
    args = ["bench", "--db", db_url, "--no-report", "--runs", "3", "--min-seconds", "0", "--warmup", "0",
            "--threads", "1", "--sample-interval", "0", "-m", str(model)]
    assert main(args) == ExitStatus.OK
    run_id = open_store(db_url).get_run("latest")["run_id"]
    before = file_sha256(model)
    model_factory.slow_matmul_chain(model, size=64, layers=3)  # other weights under the same path
    after = file_sha256(model)
    capsys.readouterr()

    assert main(["bench", "--db", db_url, "--no-report", "--resume", run_id]) == ExitStatus.BAD_INPUT
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert "net" in line and before in line and after in line and "new run" in line
    assert open_store(db_url).count_results(run_id) == 1

    # a plan stored by an older farm (no hashes, shapes, suite or gate) still resumes
    with sqlite3.connect(str(tmp_path / "farm.db")) as conn:
        settings = json.loads(conn.execute("SELECT settings_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])
        plan = settings["plan"]
        for key in ("gate", "suite"):
            plan.pop(key, None)
        for entry in plan["models"]:
            entry.pop("sha256", None)
            entry.pop("shapes", None)
        conn.execute("UPDATE runs SET settings_json = ? WHERE run_id = ?", (json.dumps(settings), run_id))
    suite = tmp_path / "nightly.yaml"  # such a plan names no suite: one given with --resume is not "another"
    suite.write_text(yaml.safe_dump({"models": [{"path": str(model)}], "variants": ["fp32"]}))
    assert main(["bench", "--db", db_url, "--no-report", "--resume", run_id, "--suite", str(suite)]) == ExitStatus.OK
    assert main(["bench", "--db", db_url, "--no-report", "--resume", run_id]) == ExitStatus.OK
    assert open_store(db_url).count_results(run_id) == 1
