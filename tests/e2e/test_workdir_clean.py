"""The board's work dir is kept small: interrupted uploads and old staged files go, what runs stays."""
from __future__ import annotations

import os
import time

from orchestrator.boards import Board, default_local_workdir
from orchestrator.models import load_model_file
from orchestrator.plan import ModelTask, plan_cells
from orchestrator.agent_client import staged_file_name
from orchestrator.runner import BenchRunner
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store


def test_clean_removes_partial_old_and_excess_files_but_keeps_this_runs(db_url, digits_model):
    workdir = default_local_workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    partial = workdir / "0123456789abcdef.onnx.part-aaaaaaaaaaaa"
    old = workdir / "fedcba9876543210.onnx"
    recent = workdir / "00000000000000aa.npz"
    unrelated = workdir / "notes.txt"
    for path in (partial, old, recent, unrelated):
        path.write_bytes(b"x" * 1000)
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    kept = workdir / staged_file_name(digits_model, ".onnx")  # this run's model, old but in use
    kept.write_bytes(digits_model.read_bytes())
    os.utime(kept, (month_ago, month_ago))

    store = open_store(db_url)
    jobs = plan_cells([ModelTask(load_model_file(digits_model))], ["fp32"])
    settings = BenchSettings(runs=2, min_seconds=0, warmup=0, threads=1, workdir_max_age_days=14)
    [job] = BenchRunner(store, [Board(name="local")], jobs, settings).run().outcomes
    assert job.ok
    assert not partial.exists() and not old.exists()  # interrupted upload; unused for a month
    assert recent.exists() and unrelated.exists() and kept.exists()

    tight = BenchSettings(runs=2, min_seconds=0, warmup=0, threads=1, workdir_max_bytes=0)
    [job] = BenchRunner(store, [Board(name="local")], jobs, tight).run().outcomes
    assert job.ok
    assert not recent.exists()  # over the size budget: staged files not used by this run go
    assert unrelated.exists() and kept.exists()  # never anything farm did not stage, nor what runs now
