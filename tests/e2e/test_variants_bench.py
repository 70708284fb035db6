"""`farm bench --variants` and `farm compress` on the local board: the study table in one command."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.store import open_store

FAST = ["--runs", "3", "--min-seconds", "0", "--warmup", "0", "--threads", "1", "--sample-interval", "0", "--no-report"]


def export(db_url: str) -> dict[tuple[str, str], dict]:
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--db", db_url],
                         capture_output=True, text=True, check=True).stdout
    return {(r["model"], r["variant"]): r for r in json.loads(out)}


def test_variant_matrix_reports_size_sparsity_and_task_accuracy(db_url, digits_model, yolo_model):
    variants = "fp32,int8-dynamic,prune-l1:0.9,prune-l1-layerwise:0.5"
    status = main(["bench", *FAST, "--db", db_url, "-m", str(digits_model), "-m", str(yolo_model), "--variants", variants])
    assert status == ExitStatus.OK
    records = export(db_url)
    assert len(records) == 8

    fp32 = records[("digits_mlp", "fp32")]
    assert fp32["accuracy_metric"] == "top1" and fp32["accuracy"] > 0.95  # the shipped test set, scored on the controller
    assert fp32["accuracy_delta"] == 0.0 and fp32["fidelity_cosine"] == 1.0
    pruned = records[("digits_mlp", "prune-l1:0.9")]
    assert pruned["accuracy"] < fp32["accuracy"] - 0.2, "heavy pruning must show a large accuracy drop"
    assert pruned["accuracy_delta"] == pytest.approx(pruned["accuracy"] - fp32["accuracy"])
    assert pruned["sparsity"] == pytest.approx(0.9, abs=0.02)
    assert pruned["model_gzip_bytes"] < fp32["model_size_bytes"] / 2  # pruning changes the compressed size...
    assert pruned["model_size_bytes"] == fp32["model_size_bytes"]  # ...not the dense file
    layerwise = records[("digits_mlp", "prune-l1-layerwise:0.5")]
    assert layerwise["fidelity_cosine"] > pruned["fidelity_cosine"]

    yolo_fp32, yolo_int8 = records[("yolo_timing", "fp32")], records[("yolo_timing", "int8-dynamic")]
    assert yolo_fp32["model_size_bytes"] >= 3 * yolo_int8["model_size_bytes"]
    assert yolo_fp32["accuracy"] is None and yolo_fp32["accuracy_metric"] is None  # no dataset: not measured
    for record in records.values():
        assert record["status"] == "ok" and record["latency_ms_p50"] > 0


def test_variant_that_cannot_be_built_fails_alone(db_url, digits_model, capsys):
    """OpenVINO cannot convert the demo classifier (ai.onnx.ml operators): that variant fails as
    variant-error and the rest of the matrix is measured."""
    pytest.importorskip("openvino")
    status = main(["bench", *FAST, "--db", db_url, "-m", str(digits_model), "--variants", "fp32,openvino-ir"])
    assert status == ExitStatus.BOARD_FAILURE
    records = export(db_url)
    assert records[("digits_mlp", "fp32")]["status"] == "ok"
    failed = records[("digits_mlp", "openvino-ir")]
    assert failed["status"] == "failed" and failed["error_kind"] == "variant-error"


def test_int8_static_without_calibration_data_fails_before_anything_is_measured(db_url, yolo_model, capsys):
    status = main(["bench", *FAST, "--db", db_url, "-m", str(yolo_model), "--variants", "fp32,int8-static"])
    assert status == ExitStatus.USAGE
    assert "--calibration" in capsys.readouterr().err
    assert open_store(db_url).count_results() == 0


def test_int8_static_calibrates_on_the_models_dataset(db_url, digits_model):
    assert main(["bench", *FAST, "--db", db_url, "-m", str(digits_model), "--variants", "int8-static"]) == ExitStatus.OK
    record = export(db_url)[("digits_mlp", "int8-static")]
    assert record["accuracy"] > 0.9 and record["fidelity_cosine"] > 0.95  # compared with fp32 run for reference


def test_unknown_variant_lists_the_valid_ones_and_stores_nothing(db_url, capsys):
    assert main(["bench", *FAST, "--db", db_url, "--variants", "fp32,int4"]) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert "int4" in err and "int8-dynamic" in err and "prune-l1" in err
    assert open_store(db_url).count_results() == 0


def test_compress_writes_variants_with_manifests(tmp_path, yolo_model, capsys):
    out = tmp_path / "variants"
    assert main(["compress", str(yolo_model), "-V", "fp16,int8-dynamic,prune-l1:0.5", "-o", str(out)]) == ExitStatus.OK
    manifests = {p.name: json.loads(p.read_text()) for p in out.glob("*.manifest.json")}
    assert set(manifests) == {f"yolo_timing.{t}.onnx.manifest.json" for t in ("fp16", "int8-dynamic", "prune-l1-0.5")}
    fp16 = manifests["yolo_timing.fp16.onnx.manifest.json"]
    assert fp16["size_bytes"] < yolo_model.stat().st_size * 0.6 and fp16["fidelity"]["cosine"] > 0.99
    assert (out / "yolo_timing.int8-dynamic.onnx").stat().st_size * 3 <= yolo_model.stat().st_size
    assert "prune-l1:0.5" in capsys.readouterr().out
