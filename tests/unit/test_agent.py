"""The board agent, run as a real process with real onnxruntime sessions."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.agent_bundle import agent_bundle_path
from orchestrator.agent_client import PROTOCOL_VERSION
from orchestrator.boards import Board
from orchestrator.settings import BenchSettings
from tests import model_factory

AGENT = str(agent_bundle_path())


def run_agent(*args: str, python: str = sys.executable, timeout_s: float = 120) -> tuple[list[dict], int, str]:
    proc = subprocess.run([python, AGENT, *args], capture_output=True, text=True, timeout=timeout_s)
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return messages, proc.returncode, proc.stderr


def bench_args(model: Path, *extra: str) -> list[str]:
    """The bench verb's arguments as the controller sends them (every setting, farm's defaults,
    one thread), then `extra`, which overrides them (argparse keeps the last value)."""
    defaults = BenchSettings(threads=1).bench_args(["--model", str(model)], Board(name="local"))
    return ["bench", *defaults, *extra]


def bench(model: Path, *extra: str) -> dict:
    """The result, with the streamed chunks put back: `latency_ms` and `samples` (sampler rows)."""
    messages, code, stderr = run_agent(*bench_args(model, *extra))
    assert code == 0, (messages, stderr)
    for message in messages:
        assert message["v"] == PROTOCOL_VERSION  # every line carries the protocol version
    [result] = [m["result"] for m in messages if m["type"] == "result"]
    for field in ("latency_ms", "samples"):
        chunks = [m for m in messages if m["type"] == "chunk" and m["field"] == field]
        assert [m["seq"] for m in chunks] == list(range(len(chunks)))  # in order, none missing
        result[field] = [value for m in chunks for value in m["values"]]
    return result


def test_facts_describe_the_board():
    [message], code, _ = run_agent("facts")
    assert code == 0 and message["type"] == "facts"
    facts = message["facts"]
    import onnxruntime
    import platform

    assert facts["arch"] == platform.machine()
    assert facts["onnxruntime_version"] == onnxruntime.__version__
    assert "CPUExecutionProvider" in facts["onnxruntime_providers"]
    assert facts["mem_total_bytes"] > 0 and facts["cpu_cores"] >= 1
    assert facts["python_version"] == platform.python_version()
    try:
        import openvino
    except ImportError:
        return
    core = openvino.Core()  # the precision OpenVINO will pick for float32 models, per device
    assert facts["openvino_precision"] == {
        d: core.get_property(d, "INFERENCE_PRECISION_HINT").get_type_name() for d in core.available_devices}


def test_bench_measures_at_least_n_runs_and_s_seconds(digits_model):
    result = bench(digits_model, "--runs", "7", "--min-seconds", "0.3", "--warmup", "2", "--sample-interval", "0.05")
    assert len(result["latency_ms"]) >= 7
    assert result["measure_s"] >= 0.3  # the runs are ~0.02 ms, so seconds are the binding rule
    assert len(result["latency_ms"]) > 7
    assert result["load_ms"] > 0 and result["first_inference_ms"] > 0
    assert result["peak_rss_bytes"] >= result["peak_rss_inference_bytes"] > 0
    phases = [mark["phase"] for mark in result["phase_marks"]]
    assert phases == ["load", "first_inference", "warmup", "measure", "done"]
    assert result["samples"] and all(s["rss_bytes"] > 0 for s in result["samples"])


def test_run_count_binds_when_runs_are_slow(yolo_model):
    result = bench(yolo_model, "--runs", "25", "--min-seconds", "0", "--warmup", "0")
    assert len(result["latency_ms"]) == 25


def test_max_seconds_caps_and_marks_truncated(yolo_model):
    result = bench(yolo_model, "--runs", "100000", "--min-seconds", "0", "--max-seconds", "0.2", "--warmup", "0")
    assert result["truncated"] is True
    assert 0 < len(result["latency_ms"]) < 100000


def test_dynamic_dims_become_one_or_the_given_shape(tmp_path):
    model = model_factory.dynamic_batch_matmul(tmp_path / "dyn.onnx")
    result = bench(model, "--runs", "3", "--min-seconds", "0")
    assert result["inputs"] == [{"name": "x", "shape": [1, 16], "dtype": "float32"}]
    result = bench(model, "--runs", "3", "--min-seconds", "0", "--shape", "x=8x16")
    assert result["inputs"][0]["shape"] == [8, 16]


@pytest.mark.parametrize(
    "make, kind, fragment",
    [
        (lambda p: model_factory.string_input(p), "input-error", "cannot synthesise input 's'"),
        (lambda p: p.write_bytes(b"\x08\x07garbage-not-onnx") and p, "model-error", "cannot load model"),
    ],
)
def test_bad_models_answer_with_a_typed_error(tmp_path, make, kind, fragment):
    path = tmp_path / "bad.onnx"
    make(path)
    messages, code, _ = run_agent(*bench_args(path, "--runs", "1", "--min-seconds", "0"))
    assert code == 1
    [error] = [m for m in messages if m["type"] == "error"]
    assert error["kind"] == kind and fragment in error["message"]


def test_missing_model_file_is_a_model_error(tmp_path):
    messages, code, _ = run_agent(*bench_args(tmp_path / "absent.onnx"))
    assert code == 1 and messages[-1]["kind"] == "model-error"


@pytest.mark.parametrize("verb", ["bench", "outputs"])
def test_a_missing_weights_file_is_a_model_error_naming_it(tmp_path, yolo_model, verb):
    absent = tmp_path / "absent.bin"
    if verb == "outputs":
        args = ["outputs", "--model", str(yolo_model), "--dataset", str(tmp_path / "d.npz"), "--out",
                str(tmp_path / "o.npz"), "--runtime", "onnxruntime", "--threads", "1"]
    else:
        args = bench_args(yolo_model)
    messages, code, _ = run_agent(*args, "--weights", str(absent))
    assert code == 1 and messages[-1]["kind"] == "model-error" and str(absent) in messages[-1]["message"]


def test_onnxruntime_refuses_a_separate_weights_file(tmp_path, yolo_model):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\0" * 16)
    messages, code, _ = run_agent(*bench_args(yolo_model, "--weights", str(weights), "--runs", "1", "--min-seconds",
                                              "0", "--runtime", "onnxruntime"))
    assert code == 1 and messages[-1]["kind"] == "input-error" and "OpenVINO IR" in messages[-1]["message"]


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs a second Python without onnxruntime")
def test_python_without_onnxruntime_is_missing_runtime(digits_model):
    bare = "/usr/bin/python3"
    probe = subprocess.run([bare, "-c", "import onnxruntime"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("/usr/bin/python3 has onnxruntime")
    messages, code, _ = run_agent(*bench_args(digits_model), python=bare)
    assert code == 1
    assert messages[-1]["kind"] == "missing-runtime"
    assert "is not installed" in messages[-1]["message"]
    [facts], code, _ = run_agent("facts", python=bare)  # facts still work without the runtime
    assert code == 0 and facts["facts"]["onnxruntime_version"] is None


def test_agent_source_is_python38_compatible():
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install '.[test]')")
    proc = subprocess.run(
        [vermin, "--no-tips", "--violations", "--target=3.8-", "--eval-annotations", "--backport", "typing", AGENT],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
