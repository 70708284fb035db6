"""Measurement you can trust: exact per-phase peaks, and a hot, throttling board flagged.

These run the real agent on the local board through the runner, with real onnxruntime
sessions. The fake sysfs tree stands in for a board's cpufreq/thermal files; the test changes
it when the agent reports the measure phase (an event, not a sleep).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.boards import Board
from orchestrator.models import load_model_file
from orchestrator.plan import ModelTask, plan_cells
from orchestrator.runner import BenchRunner
from orchestrator.settings import BenchSettings
from orchestrator.store import open_store
from tests import model_factory

MiB = 1024 * 1024


def run_one(db_url: str, model: Path, settings: BenchSettings, board: Board | None = None, on_event=None) -> dict:
    store = open_store(db_url)
    jobs = plan_cells([ModelTask(load_model_file(model))], ["fp32"])
    runner = BenchRunner(store, [board or Board(name="local")], jobs, settings,
                         on_event=on_event or (lambda kind, info: None))
    outcome = runner.run()
    [job] = outcome.outcomes
    assert job.ok, job.row
    [record] = store.export_records(outcome.run_id)
    record["_series"] = store.series(job.result_id)
    return record


def test_a_short_300mb_spike_is_caught_in_the_peak_at_a_1s_interval(db_url, tmp_path):
    model = model_factory.transient_spike(tmp_path / "spike.onnx", spike_bytes=300 * MiB)
    settings = BenchSettings(runs=2, min_seconds=0, warmup=0, threads=1, sample_interval_s=1.0, cpu_arena=False)
    record = run_one(db_url, model, settings)
    assert record["peak_rss_bytes"] >= 300 * MiB  # the kernel's VmHWM saw the spike
    assert record["peak_rss_inference_bytes"] >= 300 * MiB  # ...and it happened while inferring
    assert record["peak_rss_load_bytes"] < 200 * MiB  # loading this model is small
    _, samples = record["_series"]
    assert len(samples) <= 8  # a handful of samples at 1 s (plus phase marks): the peak came from VmHWM


def test_load_peak_and_inference_peak_are_told_apart(db_url, tmp_path):
    model = model_factory.heavy_load(tmp_path / "heavy.onnx", weight_bytes=200 * MiB)
    settings = BenchSettings(runs=3, min_seconds=0, warmup=0, threads=1, sample_interval_s=0.05)
    record = run_one(db_url, model, settings)
    assert record["peak_rss_load_bytes"] >= 200 * MiB
    assert record["peak_rss_load_bytes"] > record["peak_rss_inference_bytes"] + 50 * MiB
    assert record["peak_rss_bytes"] == record["peak_rss_load_bytes"]


def make_fake_sysfs(root: Path, freq_khz: int, temp_milli_c: int) -> None:
    for cpu in ("cpu0", "cpu1"):
        cpufreq = root / "devices/system/cpu" / cpu / "cpufreq"
        cpufreq.mkdir(parents=True, exist_ok=True)
        (cpufreq / "scaling_cur_freq").write_text(f"{freq_khz}\n")
        (cpufreq / "cpuinfo_max_freq").write_text("1500000\n")
        (cpufreq / "scaling_governor").write_text("ondemand\n")
    zone = root / "class/thermal/thermal_zone0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text(f"{temp_milli_c}\n")


@pytest.mark.parametrize("throttle", [False, True])
def test_a_frequency_drop_mid_run_flags_the_result(db_url, tmp_path, yolo_model, throttle):
    sysfs = tmp_path / "sysfs"
    make_fake_sysfs(sysfs, freq_khz=1500000, temp_milli_c=45000)
    board = Board(name="hot-pi", env={"FARM_SYSFS_ROOT": str(sysfs)})

    def heat_up(kind: str, info: dict) -> None:
        if kind == "cell_phase" and info.get("phase") == "measure":
            make_fake_sysfs(sysfs, freq_khz=600000, temp_milli_c=85000)
            if throttle:
                (sysfs / "farm").mkdir(exist_ok=True)
                (sysfs / "farm" / "throttled").write_text("1\n")

    # the throttle indicator is read at most once a second: measure long enough to see it
    settings = BenchSettings(runs=10, min_seconds=2.5, warmup=0, threads=1, sample_interval_s=0.05)
    record = run_one(db_url, yolo_model, settings, board=board, on_event=heat_up)
    assert record["freq_drop"] is True
    assert record["temp_c_max"] == pytest.approx(85.0)
    assert record["throttled"] is throttle
    _, samples = record["_series"]
    assert {s["freq_khz"].get("cpu0") for s in samples} >= {1500000, 600000}


def test_a_steady_board_is_not_flagged(db_url, tmp_path, digits_model):
    sysfs = tmp_path / "sysfs"
    make_fake_sysfs(sysfs, freq_khz=1500000, temp_milli_c=45000)
    settings = BenchSettings(runs=10, min_seconds=0.3, warmup=0, threads=1, sample_interval_s=0.05)
    record = run_one(db_url, digits_model, settings, board=Board(name="cool-pi", env={"FARM_SYSFS_ROOT": str(sysfs)}))
    assert record["freq_drop"] is False and record["throttled"] is False
    assert record["temp_c_max"] == pytest.approx(45.0)
    assert record["cpu_percent_mean"] is not None and record["rss_steady_bytes"] > 0
    assert record["sample_interval_s"] == 0.05
