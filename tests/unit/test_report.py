"""The report's pure logic: Pareto fronts, changes vs fp32, best markers, safe JSON, sampling."""
from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator.report.figures import compact, label, sorted_sample
from orchestrator.report.overview import build_rows, variant_sort_key
from orchestrator.report.pareto import dominates, pareto_front
from orchestrator.report.render import script_json


def result(rid, variant, p50, size, *, board="rpi4", model="yolov8n", memory=100e6, accuracy=None,
           status="ok", p99=None, fps=None, **export):
    if accuracy is not None:
        export.update(accuracy=accuracy, accuracy_metric="mAP50")
    return {
        "result_id": rid, "board": board, "model": model, "variant": variant, "status": status,
        "settings_hash": "s", "runs": 100, "latency_ms_p50": p50, "latency_ms_p99": p99 or (p50 and p50 * 1.2),
        "fps": fps or (p50 and 1000 / p50), "peak_rss_bytes": memory, "model_size_bytes": size,
        "error_kind": None if status == "ok" else "timeout", "error_message": None,
        "details": {"export": export},
    }


def by_variant(rows):
    return {r.variant: r for r in rows}


# --- Pareto --------------------------------------------------------------------------------

def test_pareto_front_keeps_only_points_nothing_beats_on_every_objective():
    # (size, p50): b is smaller and faster than d; c is the fastest; a is the smallest
    points = [(1.0, 9.0), (2.0, 5.0), (8.0, 1.0), (3.0, 6.0)]
    assert pareto_front(points, ("min", "min")) == [0, 1, 2]


def test_pareto_front_maximises_accuracy_and_keeps_equal_points():
    # (size, p50, accuracy): the int8 pair is equal (both stay), fp32 stays for its accuracy,
    # the pruned model is as big and slow as fp32 but less accurate (dominated)
    fp32, int8a, int8b, pruned = (10.0, 10.0, 0.9), (3.0, 6.0, 0.8), (3.0, 6.0, 0.8), (10.0, 10.0, 0.7)
    assert pareto_front([fp32, int8a, int8b, pruned], ("min", "min", "max")) == [0, 1, 2]
    assert dominates(fp32, pruned, ("min", "min", "max"))
    assert not dominates(int8a, int8b, ("min", "min", "max"))


def test_pareto_front_needs_a_value_per_objective():
    with pytest.raises(ValueError):
        pareto_front([(1.0,)], ("min", "min"))


# --- overview rows ------------------------------------------------------------------------

def test_rows_say_their_runtime_only_where_a_board_and_model_mixed_runtimes():
    rows = build_rows([
        result(1, "fp32", 10.0, 40e6, runtime="onnxruntime"),
        result(2, "openvino-ir", 8.0, 41e6, runtime="openvino", inference_precision="bf16"),
        result(3, "fp32", 10.0, 40e6, board="jetson", runtime="onnxruntime"),
        result(4, "fp16", 9.0, 20e6, board="jetson", runtime="onnxruntime"),
    ])
    flags = {(r.board, r.variant): [f.text for f in r.flags] for r in rows}
    assert "onnxruntime" in flags[("rpi4", "fp32")] and "openvino bf16" in flags[("rpi4", "openvino-ir")]
    assert not {"onnxruntime"} & set(flags[("jetson", "fp32")] + flags[("jetson", "fp16")])
    assert [r.variant for r in rows if r.board == "rpi4"] == ["fp32", "openvino-ir"]


def lognormal(median_ms, count, sigma=0.03, seed=0):
    return list(median_ms * np.exp(np.random.default_rng(seed).normal(0.0, sigma, count)))


def test_changes_vs_fp32_carry_the_engines_verdicts():
    samples = {1: lognormal(10.0, 400, seed=1), 2: lognormal(6.0, 400, seed=2), 3: lognormal(9.8, 400, seed=3)}
    rows = by_variant(build_rows([
        result(1, "fp32", 10.0, 40e6, memory=100e6, accuracy=0.900),
        result(2, "int8-dynamic", 6.0, 10e6, memory=103e6, accuracy=0.880),
        result(3, "fp16", 9.8, 20e6, memory=120e6, accuracy=0.897),
    ], samples.__getitem__))
    int8, fp16 = rows["int8-dynamic"].vs_fp32, rows["fp16"].vs_fp32
    # latency: the engine's change of the medians of the raw samples, and its verdict
    assert int8["p50"].value == pytest.approx(-40.0, abs=1.0) and int8["p50"].tone == "better"
    assert rows["int8-dynamic"].vs_fp32_verdict == "improved"
    assert int8["p50"].title.startswith("improved vs fp32: median")
    assert int8["size"].value == pytest.approx(-75.0) and int8["size"].tone == "better"
    assert int8["memory"].value == pytest.approx(3.0) and int8["memory"].tone == "same"
    assert int8["accuracy"].value == pytest.approx(-2.0) and int8["accuracy"].tone == "worse"
    assert int8["accuracy"].unit == "pt" and int8["accuracy"].text == "−2.0 pt"
    assert fp16["p50"].tone == "same" and fp16["memory"].tone == "worse"
    assert rows["fp16"].vs_fp32_verdict == "unchanged"
    assert fp16["accuracy"].tone == "same"  # -0.3 points: within the evaluation set's noise
    assert rows["fp32"].is_reference and rows["fp32"].vs_fp32 == {} and rows["fp32"].vs_fp32_verdict == "reference"


def test_a_faster_variant_with_overlapping_intervals_is_not_green():
    """−7.5 % on noisy, few samples: a ±5 % rule would colour it better; the engine cannot tell."""
    fp32 = lognormal(10.0, 12, sigma=0.25, seed=4)
    int8 = [v * 0.925 for v in lognormal(10.0, 12, sigma=0.25, seed=5)]
    int8 = [v * (np.median(fp32) * 0.925 / np.median(int8)) for v in int8]  # medians exactly −7.5 % apart
    rows = by_variant(build_rows([result(1, "fp32", 10.0, 40e6), result(2, "int8-dynamic", 9.25, 10e6)],
                                 {1: fp32, 2: int8}.__getitem__))
    change = rows["int8-dynamic"].vs_fp32["p50"]
    assert change.value == pytest.approx(-7.5, abs=0.01)
    assert rows["int8-dynamic"].vs_fp32_verdict == "inconclusive" and change.tone == "unknown"


def test_without_samples_latency_vs_fp32_is_inconclusive_not_guessed():
    rows = by_variant(build_rows([result(1, "fp32", 10.0, 40e6), result(2, "int8-dynamic", 5.0, 10e6)]))
    assert rows["int8-dynamic"].vs_fp32_verdict == "inconclusive"
    assert rows["int8-dynamic"].vs_fp32["p50"].tone == "unknown"


def test_changes_compare_only_within_the_same_board_and_model():
    rows = build_rows([
        result(1, "fp32", 10.0, 40e6, board="rpi4"),
        result(2, "int8-dynamic", 4.0, 10e6, board="jetson"),  # no fp32 on the jetson
        result(3, "fp16", 5.0, 20e6, board="rpi4", model="resnet18"),  # no fp32 of resnet18
    ])
    assert all(r.vs_fp32 == {} for r in rows if r.variant != "fp32")


def test_best_variant_per_board_and_metric_is_starred_and_ties_share_it():
    rows = by_variant(build_rows([
        result(1, "fp32", 10.0, 40e6, memory=100e6, accuracy=0.90),
        result(2, "int8-dynamic", 6.0, 10e6, memory=80e6, accuracy=0.88),
        result(3, "int8-static", 6.0, 10e6, memory=90e6, accuracy=0.85),
        result(4, "fp32", 1.0, 40e6, board="jetson", memory=50e6, accuracy=0.90),  # other board: own group
    ]))
    assert set(rows["int8-dynamic"].best) == {"p50", "p99", "fps", "size", "memory"}
    assert set(rows["int8-static"].best) == {"p50", "p99", "fps", "size"}  # tie on latency and size
    assert set(rows["fp32"].best) == {"accuracy"}
    assert "highest accuracy" in rows["fp32"].best["accuracy"]


def test_lone_variant_and_failed_results_get_no_star():
    rows = build_rows([
        result(1, "fp32", 10.0, 40e6),
        result(2, "int8-dynamic", None, 10e6, status="failed"),
        result(3, "fp32", 5.0, 40e6, board="jetson"),
    ])
    assert all(r.best == {} for r in rows)
    failed = next(r for r in rows if not r.ok)
    # a failed variant whose file was never made shows no size (not fp32's, the column's fallback)
    assert failed.values["p50"] is None and failed.values["size"] is None and failed.vs_fp32 == {}


def test_pareto_flag_uses_accuracy_when_every_variant_has_it():
    with_acc = by_variant(build_rows([
        result(1, "fp32", 10.0, 40e6, accuracy=0.90),
        result(2, "int8-dynamic", 6.0, 10e6, accuracy=0.88),
        result(3, "prune-l1:0.5", 10.0, 40e6, accuracy=0.80),  # same size and speed as fp32, worse
    ]))
    assert with_acc["fp32"].pareto and with_acc["int8-dynamic"].pareto and not with_acc["prune-l1:0.5"].pareto
    without = by_variant(build_rows([
        result(1, "fp32", 10.0, 40e6),
        result(2, "int8-dynamic", 6.0, 10e6),
    ]))
    assert not without["fp32"].pareto and without["int8-dynamic"].pareto  # fp32 is bigger and slower
    assert any(f.text == "Pareto" for f in without["int8-dynamic"].flags)


def test_measurement_flags_come_from_the_export_fields():
    row = build_rows([result(1, "fp32", 10.0, 40e6, throttled=True, freq_drop=True, noisy=True,
                             latency_ms_robust_cv=0.14, latency_ms_process_spread=0.12, truncated=True)])[0]
    assert [f.text for f in row.flags] == ["throttled", "clock drop", "noisy", "truncated"]
    assert "samples spread 14 %" in row.flags[2].title and "process medians spread 12 %" in row.flags[2].title
    fallback = build_rows([result(1, "fp32", 10.0, 40e6, provider_fallback=True, provider="CPUExecutionProvider")])[0]
    assert [f.text for f in fallback.flags] == ["fallback"] and "CPUExecutionProvider" in fallback.flags[0].title


def test_rows_are_sorted_board_model_then_variant_by_invasiveness():
    rows = build_rows([
        result(1, "prune-l1:0.5", 1, 1, board="b10"), result(2, "int8-static", 1, 1, board="b10"),
        result(3, "fp32", 1, 1, board="b10"), result(4, "fp16", 1, 1, board="b9"),
    ])
    assert [(r.board, r.variant) for r in rows] == [
        ("b9", "fp16"), ("b10", "fp32"), ("b10", "int8-static"), ("b10", "prune-l1:0.5")]
    assert sorted(["zz", "fp16", "fp32"], key=variant_sort_key) == ["fp32", "fp16", "zz"]


# --- safe embedding and compact data ------------------------------------------------------

def test_script_json_cannot_close_the_script_element_and_round_trips():
    value = {"board": "</script><script>alert(1)</script>", "msg": "<!-- & \u2028\u2029", "x": [1.5, float("nan")]}
    text = str(script_json(value))
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == {**value, "x": [1.5, None]}


def test_plotly_labels_are_html_escaped_so_plotly_shows_them_as_text():
    assert label("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert label("a & b") == "a &amp; b"


def test_sorted_sample_keeps_min_max_and_quartiles():
    rng = np.random.default_rng(3)
    values = rng.lognormal(1.0, 0.3, 50_000)
    sample = sorted_sample(values, 2000)
    assert sample.size == 2000
    assert sample[0] == values.min() and sample[-1] == values.max()
    for q in (25, 50, 75):
        assert np.percentile(sample, q) == pytest.approx(np.percentile(values, q), rel=0.01)
    assert sorted_sample([3.0, 1.0, 2.0], 2000).tolist() == [1.0, 2.0, 3.0]


def test_compact_rounds_to_significant_digits_and_drops_nan():
    assert compact([0.0123456, 0.0234567]) == [0.01235, 0.02346]
    assert compact([1234.5678, float("nan")]) == [1235.0, None]
    assert compact([]) == []
