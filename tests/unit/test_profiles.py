"""Operator profiles: the agent's profiling pass on real sessions, and reading them back
(orchestrator.profiles: shares, provider split, runtime rewrites, the attribution of a change)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents import farm_agent
from orchestrator.agent_messages import Profile, parse_agent_line
from orchestrator.boards import Board
from orchestrator.errors import AgentError
from orchestrator.profiles import (
    OPS_EXPORT_FIELDS,
    cell_profiles,
    diff_profiles,
    ops_records,
    pair_across_runs,
    pair_with_variant,
)
from orchestrator.repeats import merge_process_results
from orchestrator.settings import BenchSettings
from tests import model_factory
from tests.unit.test_agent import bench
from tests.unit.test_agent_messages import RESULT, line


def loaded(runtime: str, model: Path, **config) -> tuple[farm_agent.Runtime, dict]:
    rt = farm_agent.make_runtime({"runtime": runtime, "threads": 1, **config})
    rt.load(str(model))
    return rt, farm_agent.make_inputs(np, rt.input_specs(), {})


def profiled(rt, feeds, runs: int = 5, max_seconds: float = 60.0, measure_ns: float = 1e9) -> dict:
    answer = farm_agent.profile_pass(rt, feeds, {"profile_runs": runs, "profile_max_seconds": max_seconds}, measure_ns)
    assert "profile" in answer, answer
    Profile.model_validate(answer["profile"])  # what the controller will accept
    return answer["profile"]


# --------------------------------------------------------------------------- the agent's pass


def test_onnxruntime_trace_is_read_per_run_and_the_first_run_left_out(tmp_path):
    import onnxruntime as ort

    model = model_factory.conv_bn_relu(tmp_path / "cbr.onnx")
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "trace")
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feeds = {"x": np.ones((1, 32, 56, 56), dtype=np.float32)}
    for _ in range(4):
        session.run(None, feeds)
    trace = session.end_profiling()

    found = farm_agent.read_ort_trace(trace, skip_runs=1)
    assert found.runs == 3
    summary = found.summary()
    types = {op["op_type"]: op for op in summary["ops"]}
    assert types["Conv"]["nodes"] == 4 and "BatchNormalization" not in types  # folded into the Conv
    assert summary["op_ms_per_run"] == pytest.approx(sum(op["us_per_run"] for op in summary["ops"]) / 1000)
    assert summary["providers"] == [{"provider": "CPUExecutionProvider", "nodes": summary["nodes_executed"],
                                     "us_per_run": pytest.approx(summary["op_ms_per_run"] * 1000),
                                     "op_types": [op["op_type"] for op in summary["ops"]]}]

    # the same trace as one JSON document (not one event a line) reads the same: the fallback
    events = json.loads(Path(trace).read_text())
    Path(trace).write_text(json.dumps(events))
    again = farm_agent.read_ort_trace(trace, skip_runs=1)
    assert again.runs == 3 and again.summary() == summary


def test_a_stalled_inference_does_not_land_on_one_node():
    found = farm_agent.ProfileAccumulator()
    for conv_us in (100.0, 100.0, 50_000.0):  # the third inference was throttled while the conv ran
        found.add_run([(0, "conv", "Conv", "CPU", conv_us, None), (1, "relu", "Relu", "CPU", 10.0, None)])
    found.add_run([(0, "conv", "Conv", "CPU", 110.0, None), (1, "relu", "Relu", "CPU", 4.0, None),
                   (1, "relu", "Relu", "CPU", 8.0, None), (2, "late", "Cast", "CPU", 1.0, None)])
    summary = found.summary()
    assert {op["op_type"]: op["us_per_run"] for op in summary["ops"]} == {"Conv": 105.0, "Relu": 10.0, "Cast": 0.0}
    assert summary["op_ms_per_run"] == pytest.approx(0.115) and found.runs == 4  # Relu twice: 12 µs once


def test_profile_pass_on_onnxruntime_states_runs_and_cost_and_leaves_no_trace(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    rt, feeds = loaded("onnxruntime", model_factory.conv_bn_relu(tmp_path / "cbr.onnx"))
    profile = profiled(rt, feeds, runs=6, measure_ns=2e9)
    assert profile["source"] == "onnxruntime-profiler"
    assert profile["runs"] == profile["runs_asked"] == 6 and profile["truncated"] is False
    assert profile["cost_ratio"] == pytest.approx(profile["wall_s"] / 2.0)
    assert {op["op_type"] for op in profile["ops"]} >= {"Conv"}
    assert profile["top_nodes"][0]["op_type"] == "Conv"
    assert [p.name for p in tmp_path.iterdir()] == ["cbr.onnx"]  # the trace and its folder are gone

    # a time bound already passed still profiles one inference, and says it stopped early
    short = profiled(rt, feeds, runs=50, max_seconds=1e-6)
    assert short["runs"] == 1 and short["truncated"] is True


def test_a_failing_profiler_costs_the_profile_not_the_measurement(tmp_path):
    model = model_factory.conv_bn_relu(tmp_path / "cbr.onnx")
    rt, feeds = loaded("onnxruntime", model)
    model.unlink()  # the profiling session cannot be made: the timed one is long loaded
    answer = farm_agent.profile_pass(rt, feeds, {"profile_runs": 3, "profile_max_seconds": 10}, 1e9)
    assert set(answer) == {"error"} and "cbr.onnx" in answer["error"]


def test_openvino_pass_reads_layer_counters(tmp_path):
    pytest.importorskip("openvino")
    rt, feeds = loaded("openvino", model_factory.conv_bn_relu(tmp_path / "cbr.onnx"),
                       provider_options={"CPU": {"INFERENCE_PRECISION_HINT": "f32"}})
    profile = profiled(rt, feeds, runs=8)
    assert profile["source"] == "openvino-perf-counters" and profile["runs"] == 8
    convolution = next(op for op in profile["ops"] if op["op_type"] == "Convolution")
    assert convolution["nodes"] == 4 and convolution["provider"] == "CPU"
    assert convolution["kernels"] and all("f32" in k for k in convolution["kernels"])  # exec types, as run
    assert profile["nodes_not_run"] is not None  # inputs, constants, fused layers: counted, not timed
    # counters describe one inference at a time: the sum per inference is about one inference (the
    # mean of 8 against their median: a slow run on a busy machine moves it; counters that
    # accumulated over the runs would give about 8 times)
    assert profile["op_ms_per_run"] <= profile["run_ms_p50"] * 3


def test_bench_verb_profiles_after_the_timed_runs(tmp_path):
    model = model_factory.conv_bn_relu(tmp_path / "cbr.onnx")
    result = bench(model, "--runs", "5", "--min-seconds", "0", "--sample-interval", "0.01", "--profile-runs", "3")
    phases = [m["phase"] for m in result["phase_marks"]]
    assert phases[-3:] == ["measure", "done", "profile"]  # the pass comes after everything timed
    assert result["profile"]["runs"] == 3 and result["profile_error"] is None
    assert len(result["latency_ms"]) == result["latency_samples_total"] == 5  # no profiled inference among them
    assert {"measure", "profile"} <= {s["phase"] for s in result["samples"]}  # the sampler saw the pass apart

    plain = bench(model, "--runs", "5", "--min-seconds", "0", "--sample-interval", "0")
    assert plain["profile"] is None and "profile" not in [m["phase"] for m in plain["phase_marks"]]


# --------------------------------------------------------------------------- the schema


@pytest.mark.parametrize("changes", [
    {"source": "tflite-profiler"},
    {"runs": 0},
    {"ops": [{"op_type": "Conv", "provider": "CPU", "us_per_run": -1.0, "nodes": 1}]},
    {"ops": [{"op_type": "Conv", "provider": "CPU", "us_per_run": 1.0, "nodes": 1, "shape": [1]}]},
])
def test_schema_refuses_a_bad_profile(changes):
    profile = {**PROFILE_FP32, **changes}
    with pytest.raises(AgentError, match="profile"):
        parse_agent_line(line("result", id=1, result={**RESULT, "profile": profile}))


# --------------------------------------------------------------------------- reading back


def _profile(ops, providers=None, nodes_not_run=None, source="onnxruntime-profiler") -> dict:
    """A profile as the agent sends it: ops as (op_type, provider, ms, nodes, kernels)."""
    total_us = sum(ms * 1000 for _, _, ms, _, _ in ops)
    by_provider: dict[str, list] = {}
    for op_type, provider, ms, nodes, _ in ops:
        entry = by_provider.setdefault(provider, [0, 0.0, []])
        entry[0] += nodes
        entry[1] += ms * 1000
        entry[2].append(op_type)
    profile = {
        "source": source, "runs": 20, "runs_asked": 20, "truncated": False, "run_ms_p50": total_us / 1000 * 1.05,
        "op_ms_per_run": total_us / 1000, "wall_s": 0.5, "cost_ratio": 0.25,
        "nodes_executed": sum(n for _, _, _, n, _ in ops), "nodes_not_run": nodes_not_run,
        "ops": [{"op_type": t, "provider": p, "us_per_run": ms * 1000, "nodes": n, "kernels": list(k)}
                for t, p, ms, n, k in ops],
        "top_nodes": [{"name": f"{t}_0", "op_type": t, "provider": p, "us_per_run": ms * 1000 / n, "kernel": None}
                      for t, p, ms, n, _ in ops[:3]],
        "providers": providers or [{"provider": p, "nodes": n, "us_per_run": us, "op_types": types}
                                   for p, (n, us, types) in by_provider.items()],
    }
    Profile.model_validate(profile)
    return profile


CPU = "CPUExecutionProvider"
PROFILE_FP32 = _profile([("Conv", CPU, 40.0, 83, ("NCHWc",)), ("QuickGelu", CPU, 5.0, 74, ()),
                         ("Concat", CPU, 1.0, 17, ())])
FILE_FP32 = {"Conv": 83, "Sigmoid": 80, "Mul": 74, "Concat": 18}


def stored(variant: str, profile: dict, *, mean_ms: float, manifest: dict | None = None, board: str = "rpi4",
           result_id: int = 1, run_id: str = "r1", providers_requested=(CPU,)) -> dict:
    return {
        "result_id": result_id, "run_id": run_id, "board": board, "model": "det", "model_sha256": "ab" * 32,
        "variant": variant, "status": "ok", "latency_ms_mean": mean_ms, "latency_ms_p50": mean_ms * 0.98,
        "details": {"profile": profile, "variant": manifest or {}, "providers_requested": list(providers_requested),
                    "export": {"runtime": "onnxruntime", "provider": providers_requested[0], "batch": 1, "threads": 1}},
    }


def int8_static_run() -> list[dict]:
    static = _profile([("Conv", CPU, 55.0, 80, ()), ("DequantizeLinear", CPU, 15.0, 494, ()),
                       ("QuantizeLinear", CPU, 10.0, 246, ()), ("Sigmoid", CPU, 3.5, 74, ()), ("Mul", CPU, 3.0, 74, ()),
                       ("QLinearConv", CPU, 0.2, 3, ()), ("Concat", CPU, 0.8, 17, ())])
    dynamic = _profile([("ConvInteger", CPU, 50.0, 83, ()), ("DynamicQuantizeLinear", CPU, 4.0, 67, ()),
                        ("QuickGelu", CPU, 5.0, 74, ()), ("Concat", CPU, 1.0, 17, ())])
    return [
        stored("fp32", PROFILE_FP32, mean_ms=47.0, result_id=1),
        stored("int8-static", static, mean_ms=90.0, result_id=2, manifest={
            "op_counts": {"Conv": 83, "DequantizeLinear": 437, "QuantizeLinear": 271, "Sigmoid": 80, "Mul": 74,
                          "Concat": 17},
            "source_op_counts": FILE_FP32}),
        stored("int8-dynamic", dynamic, mean_ms=62.0, result_id=3, manifest={
            "op_counts": {"ConvInteger": 83, "DynamicQuantizeLinear": 67, "Sigmoid": 80, "Mul": 74, "Concat": 18},
            "source_op_counts": FILE_FP32}),
    ]


def test_shares_and_the_fp32_graph_from_the_other_variants_manifest():
    profiles = {p.variant: p for p in cell_profiles(int8_static_run())}
    fp32 = profiles["fp32"]
    assert [op.op_type for op in fp32.ops] == ["Conv", "QuickGelu", "Concat"]
    assert sum(op.share for op in fp32.ops) == pytest.approx(1.0)
    assert fp32.ops[0].share == pytest.approx(40 / 46)
    assert fp32.coverage == pytest.approx(46 / (47 * 0.98))  # against the timed median
    assert fp32.file_op_counts == FILE_FP32  # the original's op counts, recorded by the int8 variants
    rewrites = fp32.rewrites()
    assert rewrites.made == (("QuickGelu", 74),)
    assert ("Sigmoid", 80, 0) in rewrites.fewer and ("Mul", 74, 0) in rewrites.fewer
    assert "made QuickGelu ×74" in rewrites.text() and "fused or rewrote Sigmoid 80→0" in rewrites.text()


def test_int8_static_slowdown_is_attributed_to_operator_types():
    profiles = cell_profiles(int8_static_run())
    [(base, static)] = [(b, n) for b, n in pair_with_variant(profiles, "fp32") if n.variant == "int8-static"]
    diff = diff_profiles(base, static)
    changes = {c.op_type: c for c in diff.changes}
    assert diff.latency_change_ms == pytest.approx(43.0 * 0.98) and diff.op_change_ms == pytest.approx(41.5)
    assert changes["DequantizeLinear"].kind == "added" and changes["DequantizeLinear"].delta_ms == pytest.approx(15.0)
    assert changes["Conv"].delta_ms == pytest.approx(15.0) and changes["Conv"].kernels_text() == "NCHWc → default"
    assert changes["QLinearConv"].replaces == ("Conv",)  # 3 of the 83 convolutions became QLinearConv
    assert changes["QuickGelu"].kind == "removed" and changes["QuickGelu"].note == "made by onnxruntime for fp32 only"
    assert changes["Sigmoid"].note == "fused or rewritten in fp32"
    assert [c.op_type for c in diff.changes[:2]] == ["Conv", "DequantizeLinear"]  # largest |Δ| first
    assert diff.explanation(3) == ("Conv +15.0 ms (NCHWc → default), DequantizeLinear +15.0 ms (new, 494 nodes), "
                                   "QuantizeLinear +10.0 ms (new, 246 nodes)")


def test_a_faster_variant_is_explained_by_what_got_faster():
    profiles = {p.variant: p for p in cell_profiles(int8_static_run())}
    diff = diff_profiles(profiles["int8-static"], profiles["fp32"])  # the other way round: 43 ms faster
    assert diff.explanation(2).startswith("Conv -15.0 ms (default → NCHWc), DequantizeLinear -15.0 ms (gone)")
    dynamic = diff_profiles(profiles["fp32"], profiles["int8-dynamic"])
    assert {c.op_type: c for c in dynamic.changes}["ConvInteger"].replaces == ("Conv",)
    assert "ConvInteger +50.0 ms (new, 83 nodes, replacing Conv)" in dynamic.explanation()


def test_provider_split_shows_a_partial_fallback_and_a_missing_accelerator():
    split = _profile([("FusedConv", "CUDAExecutionProvider", 8.0, 212, ()), ("Resize", CPU, 1.5, 2, ()),
                      ("NonMaxSuppression", CPU, 0.5, 1, ())])
    [partial] = cell_profiles([stored("fp32", split, mean_ms=11.0, providers_requested=("CUDAExecutionProvider", CPU))])
    assert partial.fallback_text() == "CUDA 212 nodes 80 %, CPU 3 nodes 20 %: Resize, NonMaxSuppression"

    [missing] = cell_profiles([stored("fp32", PROFILE_FP32, mean_ms=47.0,
                                      providers_requested=("TensorrtExecutionProvider", CPU))])
    assert missing.fallback_text() == "all 174 nodes on CPU (asked for TensorRT first: no node ran there)"


def test_ops_export_rows_follow_the_contract():
    records = ops_records(int8_static_run())
    assert all(tuple(r) == OPS_EXPORT_FIELDS for r in records)
    assert len(records) == 3 + 7 + 4
    conv = next(r for r in records if r["variant"] == "fp32" and r["op_type"] == "Conv")
    assert conv["op_ms"] == pytest.approx(40.0) and conv["nodes"] == 83 and conv["profile_runs"] == 20


# --------------------------------------------------------------------------- settings


def test_profiling_is_not_part_of_what_is_measured():
    plain, profiling = BenchSettings(), BenchSettings(profile=True, profile_runs=7)
    assert plain.settings_hash() == profiling.settings_hash()  # resuming or gating is unaffected
    board = Board(name="local")
    args = profiling.bench_args(["--model", "m.onnx"], board)
    assert args[args.index("--profile-runs") + 1] == "7"
    later = profiling.bench_args(["--model", "m.onnx"], board, profile_pass=False)  # an earlier --repeats round
    assert later[later.index("--profile-runs") + 1] == "0"
    assert plain.bench_args(["--model", "m.onnx"], board)[args.index("--profile-runs") + 1] == "0"
    assert profiling.job_timeout_s == plain.job_timeout_s + plain.load_timeout_s + profiling.profile_max_seconds


def test_repeats_keep_the_profile_of_the_round_that_profiled():
    first = {**RESULT, "latency_ms": [1.0, 2.0], "latency": None, "profile": None, "profile_error": None}
    last = {**first, "profile": PROFILE_FP32}
    merged = merge_process_results([first, first, last])
    assert merged["profile"] is PROFILE_FP32 and merged["profile_error"] is None


def test_the_points_of_a_shape_sweep_are_paired_point_with_point():
    def point(variant, shape, result_id, run_id="r1"):
        record = stored(variant, PROFILE_FP32, mean_ms=47.0 * (1 + result_id), result_id=result_id, run_id=run_id)
        record["details"]["export"]["input_shapes"] = f"x={shape}"
        return record

    shapes = ("1x3x32x32", "1x3x96x96")
    run = [point(v, s, i) for i, (v, s) in enumerate((v, s) for v in ("fp32", "int8-dynamic") for s in shapes)]
    pairs = pair_with_variant(cell_profiles(run), "fp32")
    assert sorted((b.input_shapes, n.input_shapes) for b, n in pairs) == [(f"x={s}", f"x={s}") for s in shapes]
    older = [point("fp32", s, 10 + i, run_id="r0") for i, s in enumerate(shapes)]
    across = pair_across_runs(cell_profiles(older), cell_profiles(run[:2]))
    assert sorted((b.input_shapes, n.input_shapes) for b, n in across) == [(f"x={s}", f"x={s}") for s in shapes]
