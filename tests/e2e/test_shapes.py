"""Honest shapes through the real CLI: a model with open dims is refused with the fix, then runs at
the given size; the batch is recorded and FPS counts images; fidelity is measured at the size."""
from __future__ import annotations

import json

from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.store import open_store
from tests import model_factory

FAST = ["--runs", "5", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0", "--no-report"]


def test_open_dims_are_refused_before_measuring_then_run_at_the_given_shape(tmp_path, db_url, capsys):
    model = model_factory.dynamic_image_conv(tmp_path / "textdet.onnx")
    assert main(["bench", *FAST, "--db", db_url, "-m", str(model)]) == ExitStatus.BAD_INPUT
    err = capsys.readouterr().err
    assert "input 'x' has dims [1, 3, H, W]" in err and "--shape x=1x3x640x640" in err
    assert open_store(db_url).count_results() == 0  # nothing was measured at a made-up size

    assert main(["bench", *FAST, "--db", db_url, "-m", str(model), "--shape", "x=1x3x96x64"]) == ExitStatus.OK
    [result] = open_store(db_url).results("latest")
    assert result["details"]["inputs"] == [{"name": "x", "shape": [1, 3, 96, 64], "dtype": "float32"}]
    assert result["details"]["export"]["batch"] == 1


def test_per_model_shapes_on_the_command_line(tmp_path, db_url, digits_model):
    model = model_factory.dynamic_image_conv(tmp_path / "textdet.onnx")
    args = ["bench", *FAST, "--db", db_url, "-m", str(model), "-m", str(digits_model), "--shape", "textdet:x=1x3x40x40"]
    assert main(args) == ExitStatus.OK
    inputs = {r["model"]: r["details"]["inputs"] for r in open_store(db_url).results("latest")}
    assert inputs["textdet"][0]["shape"] == [1, 3, 40, 40]


def test_fps_counts_images_of_a_batch(tmp_path, db_url):
    model = model_factory.dynamic_batch_matmul(tmp_path / "mlp.onnx")
    assert main(["bench", *FAST, "--db", db_url, "-m", str(model), "--shape", "x=8x16"]) == ExitStatus.OK
    [result] = open_store(db_url).results("latest")
    assert result["details"]["export"]["batch"] == 8
    calls_per_s = 1000.0 / result["latency_ms_mean"]
    assert abs(result["fps"] - 8 * calls_per_s) < 1e-6 * result["fps"]


def test_compress_measures_fidelity_at_the_given_shape(tmp_path, capsys):
    model = model_factory.dynamic_image_conv(tmp_path / "textdet.onnx")
    assert main(["compress", str(model), "--variants", "fp16"]) == ExitStatus.BAD_INPUT
    assert "--shape x=1x3x640x640" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["compress", str(model), "--variants", "fp16", "--shape", "x=1x3x32x48", "-o", str(out)]) == ExitStatus.OK
    manifest = json.loads((out / "textdet.fp16.onnx.manifest.json").read_text())
    assert "x=1x3x32x48" in manifest["fidelity"]["input"] and manifest["fidelity"]["cosine"] > 0.99
