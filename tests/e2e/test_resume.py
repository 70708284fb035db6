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

    # --resume alone: the run's models, boards and settings, only what is missing
    assert main(["bench", "--db", db_url, "--no-report", "--resume", run["run_id"]]) == ExitStatus.OK
    results = store.results(run["run_id"])
    cells = [(r["board"], r["model"]) for r in results]
    assert sorted(cells) == sorted({(b, m) for b in ("bench-a", "bench-b") for m in ("digits_mlp", "slow")})
    assert len(cells) == len(set(cells))  # never a duplicate cell
    for cell, result_id in stored_before.items():  # the finished cells were not measured again
        assert next(r["result_id"] for r in results if (r["board"], r["model"]) == cell) == result_id
    assert {r["settings_hash"] for r in results} == {results[0]["settings_hash"]}
    assert {r["runs"] for r in results} == {3}  # the plan's --runs 3, not farm's default 100
    assert store.get_run(run["run_id"])["status"] == "finished"
