"""A real detector scored by its task metric (mAP50 via pycocotools) per variant, on the local board.

The detector is ddddocr's `common_det.onnx` (YOLOX, one class "character"; see
tests/e2e/detector_support.py for its input conventions) and the labelled data is made by
scripts/make_detection_dataset.py (dark letters drawn at known places). The point: a variant's
quality is what the task metric says on labelled data. A 50 %-pruned YOLOX still returns
outputs with a respectable cosine to fp32 and finds almost nothing; static int8 is about 4x
smaller and keeps its mAP.

ddddocr is a test dependency (`pip install --no-deps ddddocr==1.6.1`, 20 MB model inside the
wheel): without it these tests skip locally and fail in CI.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orchestrator import accuracy
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from tests.conftest import in_ci
from tests.e2e import detector_support as support

VARIANTS = ("fp32", "int8-static", "prune-l1:0.5")
FAST = ["--runs", "3", "--min-seconds", "0", "--warmup", "0", "--threads", "1", "--sample-interval", "0", "--no-report"]
DATASET_IMAGES = 24  # 112 characters (seed 0); fewer than the script's 40 to keep the module near a minute
# Measured through `farm bench` on the local board (24 images; 40 images in brackets):
FP32_MIN_MAP50 = 0.9  # fp32 0.960 (0.970), mAP50-95 0.43 (0.43)
INT8_MAX_MAP50_DROP = 0.1  # int8-static (per-tensor QDQ) 0.950 (0.980); 20.1 MB -> 5.2 MB
PRUNED_MAX_DELTA = -0.5  # prune-l1:0.5 0.017 (0.011), delta -0.94 (-0.96), while cosine to fp32 is 0.70



@pytest.fixture(scope="module")
def common_det() -> Path:
    path = support.common_det_path()
    if path is None:
        message = f"ddddocr is not installed: pip install --no-deps {support.DDDDOCR_REQUIREMENT}"
        if in_ci():
            pytest.fail(message + " (CI installs it in scripts/install-test-deps.sh)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    return support.make_dataset(tmp_path_factory.mktemp("text-detection"), images=DATASET_IMAGES, seed=0)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    """XDG_CACHE_HOME/XDG_DATA_HOME shared by this module's benches: variants are built once."""
    return tmp_path_factory.mktemp("farm-home")


def export(db_url: str) -> dict[str, dict]:
    """`farm runs export latest --format json`, by variant."""
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "runs", "export", "latest", "--format", "json",
                          "--db", db_url], capture_output=True, text=True, check=True, timeout=120).stdout
    return {record["variant"]: record for record in json.loads(out)}


def assert_fp32_and_pruned(records: dict[str, dict]) -> None:
    for record in records.values():
        assert record["status"] == "ok", record
        assert record["accuracy_metric"] == "mAP50" and record["accuracy"] is not None
    fp32, pruned = records["fp32"], records["prune-l1:0.5"]
    assert fp32["accuracy"] > FP32_MIN_MAP50
    assert fp32["accuracy_delta"] == 0.0
    assert pruned["sparsity"] > 0.45
    assert pruned["accuracy_delta"] < PRUNED_MAX_DELTA, "the task metric must expose a pruned detector that finds nothing"


def assert_int8_static(records: dict[str, dict]) -> None:
    fp32, int8 = records["fp32"], records["int8-static"]
    assert int8["model_size_bytes"] * 3 <= fp32["model_size_bytes"]
    assert int8["accuracy"] > fp32["accuracy"] - INT8_MAX_MAP50_DROP


def test_dataset_script_is_deterministic_coco(tmp_path):
    first = support.make_dataset(tmp_path / "a", images=5, seed=3)
    again = support.make_dataset(tmp_path / "b", images=5, seed=3)
    other = support.make_dataset(tmp_path / "c", images=5, seed=4)
    coco = json.loads((first / "annotations.json").read_text())
    assert (again / "annotations.json").read_text() == (first / "annotations.json").read_text()
    assert (other / "annotations.json").read_text() != (first / "annotations.json").read_text()
    assert coco["categories"] == [{"id": 1, "name": "text"}] and len(coco["images"]) == 5
    assert len(coco["annotations"]) >= 3 * 5
    data = accuracy.load_coco_detection(first, input_size=support.MODEL_INPUT_SIZE)  # validates the COCO file
    assert data.sha256 == accuracy.load_coco_detection(again, input_size=support.MODEL_INPUT_SIZE).sha256
    from PIL import Image

    for image in coco["images"]:
        grey = np.asarray(Image.open(first / "images" / image["file_name"]).convert("L")).astype(int)
        for ann in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
            x, y, w, h = ann["bbox"]
            # tight: ink (>= half-covered pixels, grey <= 162 for text <= 70 on background >= 207)
            # on all four edges of the box...
            inside = grey[y:y + h, x:x + w] < 200
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any(), ann
            # ...and none just outside it (a less than half-covered pixel is >= 103)
            ring = grey[y - 1:y + h + 1, x - 1:x + w + 1].copy()
            ring[1:-1, 1:-1] = 255
            assert ring.min() >= 100, ann


def test_detector_needs_its_own_preprocessing(common_det, dataset_dir):
    """On the same images, ddddocr's preprocessing finds the characters and farm's default blinds it.

    The default (ultralytics: RGB in [0, 1], centred letterbox) is right for most YOLO exports, not
    for YOLOX-style ones, so scoring a detector needs its input conventions from the user.
    """
    right = accuracy.load_coco_detection(dataset_dir, input_size=support.MODEL_INPUT_SIZE, limit=8,
                                         preprocessing=support.YOLOX_PREPROCESSING)
    assert support.onnxruntime_map(common_det, right).map50 > FP32_MIN_MAP50
    wrong = accuracy.load_coco_detection(dataset_dir, input_size=support.MODEL_INPUT_SIZE, limit=8)
    assert support.onnxruntime_map(common_det, wrong).map50 < 0.1


def test_int8_static_variant_of_an_opset11_detector_loads_and_keeps_map(common_det, dataset_dir, shared_home):
    """Built into the cache the CLI bench below uses (same model, same calibration arrays)."""
    from orchestrator.variants import CalibrationData, build_variant

    data = accuracy.load_coco_detection(dataset_dir, input_size=support.MODEL_INPUT_SIZE,
                                        preprocessing=support.YOLOX_PREPROCESSING)
    record = build_variant(common_det, "int8-static", shared_home / "cache" / "farm" / "variants",
                           CalibrationData({"images": data.inputs}, origin="the detection dataset"))
    assert record.size_bytes * 3 <= common_det.stat().st_size
    few = accuracy.load_coco_detection(dataset_dir, input_size=support.MODEL_INPUT_SIZE, limit=8,
                                       preprocessing=support.YOLOX_PREPROCESSING)
    assert support.onnxruntime_map(Path(record.path), few).map50 > FP32_MIN_MAP50 - INT8_MAX_MAP50_DROP


def test_farm_bench_cli_scores_a_raw_yolox_detector(common_det, dataset_dir, shared_home, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_home / "cache"))  # reuse the variants built above
    db_url = f"sqlite:///{shared_home / 'cli-bench.db'}"
    status = main(["bench", *FAST, "--db", db_url, "-m", str(common_det), "--dataset", str(dataset_dir),
                   "--detection", support.YOLOX_DETECTION_SPEC, "--variants", ",".join(VARIANTS)])
    assert status == ExitStatus.OK, capsys.readouterr().err
    records = export(db_url)
    assert set(records) == set(VARIANTS)
    assert_fp32_and_pruned(records)
    assert_int8_static(records)
