"""The demo models shipped in ``orchestrator/demo`` load, run and mean what they say.

They are made by ``scripts/make_demo_models.py``; see ``orchestrator/demo/PROVENANCE.md``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import orchestrator

DEMO_DIR = Path(orchestrator.__file__).parent / "demo"
DIGITS_MODEL = DEMO_DIR / "digits_mlp.onnx"
DIGITS_TEST_SET = DEMO_DIR / "digits_test.npz"
YOLO_MODEL = DEMO_DIR / "yolo_timing.onnx"
PROVENANCE = DEMO_DIR / "PROVENANCE.md"

MIN_DIGITS_TOP1 = 0.95


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("path", [DIGITS_MODEL, YOLO_MODEL], ids=lambda p: p.name)
def test_shipped_model_loads_in_onnxruntime(path: Path) -> None:
    onnx.checker.check_model(onnx.load(path))
    session = _session(path)
    assert session.get_inputs() and session.get_outputs()


def test_digits_test_set_shapes_and_dtypes() -> None:
    with np.load(DIGITS_TEST_SET, allow_pickle=False) as data:
        inputs, labels = data["inputs"], data["labels"]
        input_name = str(data["input_name"])
    assert inputs.dtype == np.float32 and inputs.ndim == 2 and inputs.shape[1] == 64
    assert labels.dtype == np.int64 and labels.shape == (inputs.shape[0],)
    assert set(np.unique(labels)) == set(range(10))
    assert input_name == "input"


def test_digits_mlp_top1_on_shipped_test_set() -> None:
    with np.load(DIGITS_TEST_SET, allow_pickle=False) as data:
        inputs, labels = data["inputs"], data["labels"]
    session = _session(DIGITS_MODEL)
    assert [i.name for i in session.get_inputs()] == ["input"]

    predicted_labels, probabilities = session.run(["label", "probabilities"], {"input": inputs})

    assert probabilities.shape == (len(labels), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    # The label output must agree with the arg-max of the probabilities.
    np.testing.assert_array_equal(predicted_labels, probabilities.argmax(axis=1))
    top1 = float(np.mean(predicted_labels == labels))
    assert top1 >= MIN_DIGITS_TOP1, f"digits_mlp top-1 {top1:.4f} < {MIN_DIGITS_TOP1}"


def test_yolo_timing_output_shape() -> None:
    session = _session(YOLO_MODEL)
    (image_input,) = session.get_inputs()
    assert image_input.name == "images" and image_input.shape == [1, 3, 160, 160]
    images = np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)

    (output,) = session.run(["output0"], {"images": images})

    # 4 box values + 80 class scores for 20*20 + 10*10 + 5*5 anchors.
    assert output.shape == (1, 84, 525)
    assert np.all(np.isfinite(output))
    scores = output[:, 4:, :]
    assert np.all((scores >= 0.0) & (scores <= 1.0))


def test_yolo_timing_is_marked_timing_only() -> None:
    model = onnx.load(YOLO_MODEL)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert metadata.get("farm.timing_only") == "true"
    assert "TIMING ONLY" in model.doc_string
    # It keeps Conv and BatchNormalization apart so graph optimisation has work to do.
    op_types = {node.op_type for node in model.graph.node}
    assert {"Conv", "BatchNormalization", "Resize", "Concat"} <= op_types


def test_digits_mlp_is_not_marked_timing_only() -> None:
    metadata = {prop.key: prop.value for prop in onnx.load(DIGITS_MODEL).metadata_props}
    assert metadata.get("farm.timing_only") == "false"


def test_provenance_lists_current_sha256_of_each_file() -> None:
    text = PROVENANCE.read_text(encoding="utf-8")
    for path in (DIGITS_MODEL, DIGITS_TEST_SET, YOLO_MODEL):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        row = re.search(rf"\| `{re.escape(path.name)}` \| (\d+) \| `([0-9a-f]{{64}})` \|", text)
        assert row is not None, f"{path.name} missing from PROVENANCE.md"
        assert int(row.group(1)) == path.stat().st_size
        assert row.group(2) == digest, f"{path.name} changed; rerun scripts/make_demo_models.py"
