"""`farm bench --repeats N`: each cell in N fresh worker processes, in rounds across the cells;
comparisons of such runs test the process medians."""
from __future__ import annotations

import json
import subprocess
import sys

from orchestrator.request import BenchRequest, run_bench
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store

FAST = ["--runs", "3", "--min-seconds", "0", "--warmup", "0", "--threads", "1", "--sample-interval", "0", "--no-report"]


def test_each_cell_runs_in_fresh_processes_interleaved_with_the_others(db_url, digits_model, yolo_model):
    events: list[tuple[str, str]] = []
    settings = BenchSettings(runs=3, min_seconds=0, warmup=0, threads=1, sample_interval_s=0, repeats=3)
    request = BenchRequest(model_paths=[digits_model, yolo_model], settings=settings, db_url=db_url,
                           write_report=False)
    outcome = run_bench(request, on_event=lambda kind, info: events.append((kind, info.get("model", ""))))
    assert [o.ok for o in outcome.run.outcomes] == [True, True]
    started = [model for kind, model in events if kind == "cell_started"]
    assert started == ["digits_mlp", "yolo_timing"] * 3  # rounds: A B A B A B
    for result in open_store(db_url).results(outcome.run.run_id):
        processes = result["details"]["processes"]
        assert len({p["worker_pid"] for p in processes}) == 3  # three fresh workers
        assert result["runs"] == sum(p["runs"] for p in processes) >= 9
        assert result["details"]["export"]["latency_ms_process_p50"] == [p["latency_ms_p50"] for p in processes]
        assert result["load_ms"] == sorted(p["load_ms"] for p in processes)[1]  # the median process
    assert BenchSettings(repeats=3).settings_hash() != BenchSettings().settings_hash()


def test_one_process_keeps_the_settings_hash_of_runs_stored_before_repeats_existed():
    assert BenchSettings().settings_hash() == "8050aaeb3ff1362c"  # the hash farm 0.1.0 stored for these settings


def test_compare_of_two_repeated_runs_tests_the_process_medians(db_url, yolo_model, capsys):
    args = ["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--repeats", "3"]
    assert main(args) == ExitStatus.OK and main(args) == ExitStatus.OK
    runs = open_store(db_url).list_runs()
    capsys.readouterr()
    assert main(["compare", runs[1]["run_id"], runs[0]["run_id"], "--db", db_url, "--json"]) == ExitStatus.OK
    [cell] = json.loads(capsys.readouterr().out)["cells"]  # the reason is there whatever the verdict
    assert "geometric mean of 3 vs 3 process medians" in cell["reason"]
    assert (cell["latency"]["base_runs"], cell["latency"]["new_runs"]) == (3, 3)
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--db", db_url],
                         capture_output=True, text=True, check=True).stdout
    [record] = json.loads(out)
    assert record["processes"] == 3 and len(record["latency_ms_process_p50"]) == 3
