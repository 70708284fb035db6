"""The OpenVINO IR variants: built by `farm compress`/`farm bench --variants`, run by OpenVINO.

Real OpenVINO and onnxruntime throughout: the IR is converted, read back, run, scored on the
shipped digits test set, and benchmarked on the local board next to the ONNX original.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.hashing import file_sha256
from orchestrator.models import DEMO_DIR
from orchestrator.store import open_store
from orchestrator.variants import VariantBuildError, build_variant, read_manifest
from orchestrator.variants.fidelity import open_session, run_outputs, synthetic_inputs
from tests.model_factory import plain_digits_classifier

openvino = pytest.importorskip("openvino", reason="openvino is installed by the test extra (pip install '.[test]')")

FAST = ["--runs", "3", "--min-seconds", "0", "--warmup", "0", "--threads", "1", "--sample-interval", "0", "--no-report"]
F32 = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "f32"}})
DIGITS_TEST = DEMO_DIR / "digits_test.npz"


def export(db_url: str) -> dict[str, dict]:
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--db", db_url],
                         capture_output=True, text=True, check=True).stdout
    return {r["variant"]: r for r in json.loads(out)}


@pytest.fixture
def classifier(tmp_path):
    return plain_digits_classifier(tmp_path / "digits_plain.onnx")


def test_ir_is_an_xml_and_bin_pair_that_openvino_runs_like_the_original(tmp_path, yolo_model):
    record = build_variant(yolo_model, "openvino-ir", tmp_path / "cache")
    xml, weights = record.file, record.weights_file
    assert xml.suffix == ".xml" and weights == xml.with_suffix(".bin")  # where OpenVINO's tools look
    assert record.size_bytes == xml.stat().st_size + weights.stat().st_size
    assert record.sha256 == file_sha256(xml) and record.weights_sha256 == file_sha256(weights)
    assert record.op_counts.get("Convolution") == record.source_op_counts["Conv"]
    assert record.fidelity["cosine"] > 0.9999 and record.tool_versions["openvino"] == openvino.__version__

    feeds = synthetic_inputs(yolo_model)
    expected = run_outputs(open_session(yolo_model), feeds)["output0"]
    core = openvino.Core()
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(feeds)[compiled.outputs[0]]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_fp16_ir_halves_the_weights_file(tmp_path, yolo_model):
    full = build_variant(yolo_model, "openvino-ir", tmp_path / "cache")
    half = build_variant(yolo_model, "openvino-ir-fp16", tmp_path / "cache")
    assert half.weights_file.stat().st_size < 0.55 * full.weights_file.stat().st_size
    assert half.parameters == full.parameters and half.fidelity["cosine"] > 0.999
    assert "compress_to_fp16=True" in " ".join(half.actions)


def test_ir_is_cached_and_rebuilt_when_its_weights_file_changes(tmp_path, yolo_model):
    cache = tmp_path / "cache"
    first = build_variant(yolo_model, "openvino-ir", cache)
    again = build_variant(yolo_model, "openvino-ir", cache)
    assert not first.cached and again.cached and again.files == first.files

    first.weights_file.write_bytes(first.weights_file.read_bytes()[:-8] + b"\0" * 8)  # same size, other bytes
    rebuilt = build_variant(yolo_model, "openvino-ir", cache)
    assert not rebuilt.cached and file_sha256(rebuilt.weights_file) == first.weights_sha256

    rebuilt.weights_file.unlink()
    assert not build_variant(yolo_model, "openvino-ir", cache).cached
    assert read_manifest(first.file).weights_sha256 == first.weights_sha256


def test_a_model_openvino_cannot_convert_fails_with_the_ops_it_lacks(tmp_path, digits_model):
    with pytest.raises(VariantBuildError) as caught:
        build_variant(digits_model, "openvino-ir", tmp_path / "cache")
    message = str(caught.value)
    assert "OpenVINO cannot convert the model" in message and "ai.onnx.ml.Scaler" in message
    assert "Exception from src/" not in message  # OpenVINO's C++ source lines are left out
    assert not list((tmp_path / "cache").glob("*.xml")) and not list((tmp_path / "cache").glob("*.bin"))


def test_without_openvino_on_the_controller_the_variant_says_how_to_get_it(tmp_path, yolo_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with pytest.raises(VariantBuildError, match=r"pip install 'farm\[openvino\]'"):
        build_variant(yolo_model, "openvino-ir", tmp_path / "cache")


def test_compress_writes_the_pair_openvino_reads_by_its_xml(tmp_path, yolo_model, capsys):
    out = tmp_path / "variants"
    assert main(["compress", str(yolo_model), "--variants", "openvino-ir", "-o", str(out)]) == ExitStatus.OK
    xml = out / "yolo_timing.openvino-ir.xml"
    assert sorted(p.name for p in out.iterdir()) == [
        "yolo_timing.openvino-ir.bin", "yolo_timing.openvino-ir.xml", "yolo_timing.openvino-ir.xml.manifest.json"]
    manifest = read_manifest(xml)
    assert manifest.weights_path == str(out / "yolo_timing.openvino-ir.bin") and manifest.path == str(xml)
    model = openvino.Core().read_model(str(xml))  # finds the .bin beside it
    assert [p.get_any_name() for p in model.inputs] == ["images"]
    assert "an OpenVINO IR is its .xml and the .bin beside it" in capsys.readouterr().out


def test_bench_runs_the_ir_on_openvino_next_to_the_onnx_original(db_url, classifier):
    status = main(["bench", *FAST, "--db", db_url, "-m", str(classifier), "--dataset", str(DIGITS_TEST),
                   "--variants", "fp32,openvino-ir,openvino-ir-fp16"])
    assert status == ExitStatus.OK
    records = export(db_url)
    fp32, ir = records["fp32"], records["openvino-ir"]
    assert fp32["runtime"] == "onnxruntime" and fp32["inference_precision"] is None
    assert ir["runtime"] == "openvino" and ir["runtime_version"] == openvino.get_version()
    assert ir["provider"] == "CPU" and ir["provider_fallback"] is False
    assert ir["inference_precision"] == openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    for variant in ("openvino-ir", "openvino-ir-fp16"):
        assert records[variant]["status"] == "ok" and records[variant]["runs"] >= 3
        assert abs(records[variant]["accuracy_delta"]) <= 0.01  # the same classifier, on another runtime
    assert ir["model_size_bytes"] == read_manifest_of(db_url, "openvino-ir")["size_bytes"]  # .xml + .bin


def read_manifest_of(db_url: str, variant: str) -> dict:
    """The variant manifest stored with a result of the latest run."""
    results = open_store(db_url).results("latest")
    return next(r for r in results if r["variant"] == variant)["details"]["variant"]


def test_ir_and_onnx_on_openvino_at_f32_score_the_same(db_url, classifier):
    status = main(["bench", *FAST, "--db", db_url, "-m", str(classifier), "--dataset", str(DIGITS_TEST),
                   "--variants", "fp32,openvino-ir", "--runtime", "openvino", "--provider-options", F32])
    assert status == ExitStatus.OK
    records = export(db_url)
    for record in records.values():
        assert record["runtime"] == "openvino" and record["inference_precision"] == "f32"
    assert records["openvino-ir"]["accuracy"] == pytest.approx(records["fp32"]["accuracy"], abs=1 / 540)
    assert records["openvino-ir"]["fidelity_cosine"] > 0.9999


def test_a_run_on_onnxruntime_providers_gives_the_ir_openvinos_default_device(db_url, yolo_model, capsys):
    status = main(["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--variants", "fp32,openvino-ir",
                   "--providers", "CUDA,CPU"])
    assert status == ExitStatus.OK
    records = export(db_url)
    assert records["fp32"]["provider"] == "CPUExecutionProvider" and records["fp32"]["provider_fallback"] is True
    assert records["openvino-ir"]["provider"] == "CPU" and records["openvino-ir"]["provider_fallback"] is False
    out = capsys.readouterr().out  # the table says which runtime ran which variant when they differ
    assert "ran on: onnxruntime (fp32); openvino" in out and "(openvino-ir)" in out
