"""Results stream back in bounded chunks; the controller keeps at most N samples and says so."""
from __future__ import annotations

import stat
import sys
from pathlib import Path

from orchestrator.boards import Board
from orchestrator.models import load_model_file
from orchestrator.plan import ModelTask, plan_cells
from orchestrator.runner import BenchRunner
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store


def bench(db_url: str, model: Path, settings: BenchSettings, board: Board = Board(name="local", python=sys.executable)):
    store = open_store(db_url)
    runner = BenchRunner(store, [board], plan_cells([ModelTask(load_model_file(model))], ["fp32"]), settings)
    outcome = runner.run()
    [job] = outcome.outcomes
    [stored] = store.results(outcome.run_id)
    return job, stored, store.series(stored["result_id"])


def test_beyond_the_sample_limit_an_evenly_spaced_subset_is_kept_with_the_exact_summary(db_url, digits_model):
    settings = BenchSettings(runs=100, min_seconds=1.0, warmup=0, threads=1, sample_interval_s=0.01,
                             max_samples_kept=1000, max_series_rows=100)
    job, stored, (latency_ms, series) = bench(db_url, digits_model, settings)
    assert job.ok, job.row.get("error_message")
    details = stored["details"]
    total = details["latency_samples_total"]
    assert total > 2000 and stored["runs"] == total  # every run counted
    assert 500 <= len(latency_ms) == details["latency_samples_kept"] <= 1000  # every k-th kept
    assert details["latency_summary_exact"] is True
    assert stored["latency_ms_min"] <= min(latency_ms) and stored["latency_ms_max"] >= max(latency_ms)
    assert stored["latency_ms_min"] <= stored["latency_ms_p50"] <= stored["latency_ms_p99"] <= stored["latency_ms_max"]
    assert details["series_rows_total"] > 100 >= len(series) == details["series_rows_kept"]


def test_a_summary_that_is_not_the_samples_is_an_agent_error(tmp_path, db_url, digits_model):
    liar = tmp_path / "liar.py"  # runs the real agent, claims a faster minimum than it measured
    liar.write_text(
        f"#!{sys.executable}\n"
        "import json, subprocess, sys\n"
        f"child = subprocess.Popen([{sys.executable!r}] + sys.argv[1:], stdout=subprocess.PIPE)\n"
        "for line in child.stdout:\n"
        "    m = json.loads(line)\n"
        "    if m.get('type') == 'result':\n"
        "        m['result']['latency']['min_ms'] /= 2\n"
        "    sys.stdout.write(json.dumps(m) + '\\n'); sys.stdout.flush()\n"
        "sys.exit(child.wait())\n")
    liar.chmod(liar.stat().st_mode | stat.S_IEXEC)
    job, stored, _ = bench(db_url, digits_model, BenchSettings(runs=20, min_seconds=0, warmup=0, threads=1),
                           Board(name="liar", python=str(liar)))
    assert job.row["error_kind"] == "agent-error"
    assert "is not that of the samples" in job.row["error_message"]
