"""Merging one cell's bench results from several fresh worker processes (pure logic)."""
from __future__ import annotations

import pytest

from orchestrator.record import process_p50s
from orchestrator.repeats import merge_process_results


def result(latency_ms, load_ms, peak, pid, **extra):
    return {"latency_ms": latency_ms, "load_ms": load_ms, "first_inference_ms": load_ms / 10,
            "peak_rss_bytes": peak, "peak_rss_load_bytes": peak - 1, "peak_rss_inference_bytes": peak,
            "worker_pid": pid, "truncated": False, "freq_drop": False, "throttled": False, "measure_s": 1.0,
            "cpu_percent_mean": 90.0, "samples": [{"t_s": pid}], "runtime": "onnxruntime", **extra}


def test_processes_are_concatenated_and_summarised_each():
    merged = merge_process_results([
        result([1.0, 2.0, 3.0], 100.0, 50, 11),
        result([4.0, 5.0], 300.0, 70, 12, throttled=True, cpu_percent_mean=80.0),
        result([6.0], 200.0, 60, 13),
    ])
    assert merged["latency_ms"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert merged["load_ms"] == 200.0 and merged["peak_rss_bytes"] == 70 and merged["throttled"] is True
    assert merged["cpu_percent_mean"] == pytest.approx(86.7) and merged["measure_s"] == 3.0
    assert merged["samples"] == [{"t_s": 11}]  # the first process's time series
    assert [(p["runs"], p["latency_ms_p50"], p["worker_pid"]) for p in merged["processes"]] == [
        (3, 2.0, 11), (2, 4.5, 12), (1, 6.0, 13)]


def test_one_process_is_kept_as_it_is():
    single = result([1.0, 3.0], 100.0, 50, 11)
    merged = merge_process_results([single])
    assert {k: v for k, v in merged.items() if k != "processes"} == single
    assert merged["processes"] == [{"runs": 2, "latency_ms_p50": 2.0, "load_ms": 100.0, "first_inference_ms": 10.0,
                                    "peak_rss_bytes": 50, "worker_pid": 11, "truncated": False}]
    with pytest.raises(ValueError):
        merge_process_results([])


def test_process_medians_read_from_flat_records_and_stored_details():
    assert process_p50s({"latency_ms_process_p50": [4.0, 4.2]}) == [4.0, 4.2]
    assert process_p50s({"details": {"export": {"latency_ms_process_p50": [4.0]}}}) == [4.0]
    assert process_p50s({"board": "old-row"}) == []
