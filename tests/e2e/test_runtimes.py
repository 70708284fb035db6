"""Runtimes and providers: OpenVINO beside onnxruntime, fallbacks reported, --strict enforced."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orchestrator.agent_bundle import agent_bundle_path
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.store import open_store

openvino = pytest.importorskip("openvino", reason="openvino is installed by the test extra (pip install '.[test]')")

FAST = ["--runs", "3", "--min-seconds", "0", "--warmup", "0", "--threads", "1", "--sample-interval", "0", "--no-report"]


# OpenVINO's CPU plugin computes float32 models in bf16 by default where the CPU has bf16
# (INFERENCE_PRECISION_HINT); comparing runtimes means pinning f32.
F32 = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "f32"}})


def agent_outputs(model, dataset, out, runtime: str, *extra: str) -> list[np.ndarray]:
    proc = subprocess.run(
        [sys.executable, str(agent_bundle_path()), "outputs", "--model", str(model), "--dataset", str(dataset),
         "--out", str(out), "--runtime", runtime, "--threads", "1", *extra],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    message = json.loads(proc.stdout.splitlines()[-1])
    assert message["runtime"]["runtime"] == runtime
    with np.load(out) as data:
        return [data[f"output_{i}"] for i in range(len(data.files))]


def test_openvino_and_onnxruntime_agree_on_the_demo_detector(tmp_path, yolo_model):
    rng = np.random.default_rng(3)
    dataset = tmp_path / "images.npz"
    np.savez(dataset, inputs=rng.random((4, 3, 160, 160), dtype=np.float32))
    ort_out = agent_outputs(yolo_model, dataset, tmp_path / "ort.npz", "onnxruntime")
    ov_out = agent_outputs(yolo_model, dataset, tmp_path / "ov.npz", "openvino", "--provider-options", F32)
    assert len(ort_out) == len(ov_out) and ort_out[0].shape == (4, 84, 525)
    for a, b in zip(ort_out, ov_out):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-2)


def export(db_url):
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--db", db_url],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_bench_records_the_runtime_that_ran(db_url, yolo_model):
    assert main(["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--runtime", "openvino"]) == ExitStatus.OK
    [record] = export(db_url)
    assert record["runtime"] == "openvino" and record["runtime_version"] == openvino.get_version()
    assert record["provider"] == "CPU" and record["provider_fallback"] is False
    # the precision OpenVINO really computed in: its CPU default here (bf16 where the CPU has it)
    default = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    assert record["inference_precision"] == default

    assert main(["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--runtime", "openvino",
                 "--provider-options", F32]) == ExitStatus.OK
    [record] = export(db_url)
    assert record["inference_precision"] == "f32"


def test_an_openvino_device_property_it_rejects_fails_the_job_with_its_reason(db_url, yolo_model):
    options = json.dumps({"CPU": {"NOT_A_PROPERTY": "1"}})
    assert main(["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--runtime", "openvino",
                 "--provider-options", options]) == ExitStatus.BOARD_FAILURE
    [record] = export(db_url)
    assert record["error_kind"] == "model-error"
    assert "Unsupported property NOT_A_PROPERTY by CPU plugin" in record["error_message"]
    assert "Exception from src/" not in record["error_message"]


def test_missing_provider_is_reported_as_fallback_and_fails_under_strict(db_url, yolo_model, capsys):
    assert main(["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--providers", "CUDA,CPU"]) == ExitStatus.OK
    [record] = export(db_url)
    assert record["provider"] == "CPUExecutionProvider" and record["provider_fallback"] is True
    assert "asked for CUDAExecutionProvider, ran on CPUExecutionProvider" in capsys.readouterr().err

    assert main(["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--providers", "CUDA", "--strict"]) \
        == ExitStatus.BOARD_FAILURE
    [record] = export(db_url)
    assert record["status"] == "failed" and record["error_kind"] == "missing-runtime"
    assert "CUDAExecutionProvider is not available" in record["error_message"]


def test_unknown_runtime_is_a_usage_error(db_url, capsys):
    assert main(["bench", *FAST, "--db", db_url, "--runtime", "tflite"]) == ExitStatus.USAGE
    assert "tflite" in capsys.readouterr().err


def test_bad_provider_options_are_a_usage_error_before_any_board_runs(db_url, capsys):
    status = main(["bench", *FAST, "--db", db_url, "--provider-options", '{"CUDA": "device_id=0"}'])
    assert status == ExitStatus.USAGE
    assert "--provider-options" in capsys.readouterr().err
    assert not Path(db_url.removeprefix("sqlite:///")).exists() or not open_store(db_url).list_runs()
