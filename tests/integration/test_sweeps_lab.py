"""A threads × batch sweep on a real sshd lab board: one cell per point, FPS in images per second."""
from __future__ import annotations

import pytest

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.store import open_store
from tests import model_factory
from tests.integration.test_bench_lab import host_vars, write_inventory

pytestmark = pytest.mark.integration


def test_a_threads_by_batch_sweep_on_a_lab_board(lab, tmp_path, db_url, capsys):
    board = next(b for b in lab.boards if b.profile == "snapdragon")
    inventory = write_inventory(tmp_path / "farm.yaml", {board.name: host_vars(lab, board)})
    model = model_factory.dynamic_batch_matmul(tmp_path / "mlp.onnx", features=256)
    args = ["bench", "-i", str(inventory), "--db", db_url, "--no-report", "-m", str(model), "--runs", "20",
            "--min-seconds", "0", "--warmup", "2", "--sample-interval", "0.1", "--threads", "1,2", "--batch", "1,4"]
    assert main(args) == ExitStatus.OK
    out = capsys.readouterr().out
    records = open_store(db_url).export_records("latest")
    assert sorted((r["threads"], r["batch"]) for r in records) == [(1, 1), (1, 4), (2, 1), (2, 4)]
    assert len({r["settings_hash"] for r in records}) == 4
    for record in records:
        assert record["board"] == board.name and record["status"] == "ok" and record["runs"] >= 20
        assert record["input_shapes"] == f"x={record['batch']}x256"
        assert record["fps"] == pytest.approx(record["batch"] * 1000.0 / record["latency_ms_mean"], rel=1e-9)
        assert f"batch={record['batch']}, threads={record['threads']}" in out
    facts = open_store(db_url).results("latest")[0]["facts"]
    if lab.limits_enforced:  # the board reports the cores it was given, not the host's
        assert facts["cgroup_limits"]["cpu_quota_cores"] == pytest.approx(board.limits.cpu_quota_cores)
