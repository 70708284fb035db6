"""Unit tests for orchestrator.accuracy: datasets, preprocessing, metrics, YOLO decoding, hooks.

Everything is real: pycocotools computes the mAPs, datasets are files written to tmp_path,
YOLO outputs are tensors built to encode known boxes.
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from orchestrator.accuracy import (
    Boxes,
    Detection,
    Preprocessing,
    boxes_to_detections,
    classification_score,
    coco_map,
    dataset_sha256,
    decode_yolo,
    detect_layout,
    detections_for_dataset,
    fidelity,
    load_classification_npz,
    load_coco_detection,
    load_postprocess_hook,
    nms,
    pillow_available,
    top_k_accuracy,
)
from orchestrator.accuracy.preprocess import resize_bilinear
from orchestrator.errors import BadInputError

PAD = 114.0 / 255.0


# --------------------------------------------------------------------------- helpers


def write_png(path: Path, rgb: np.ndarray) -> None:
    """A minimal 8-bit RGB PNG writer (stdlib only), so PNG tests do not need Pillow to write."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].astype(np.uint8).tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# image id -> (height, width, [(category_id, x, y, w, h)]) ; category ids are not contiguous
SCENE = {
    11: (80, 100, [(1, 10, 12, 30, 20), (3, 55, 40, 35, 30)]),
    12: (120, 60, [(3, 5, 20, 40, 50)]),
    13: (64, 64, [(1, 8, 8, 16, 16), (1, 36, 30, 20, 24)]),
}
COLORS = {1: (250, 30, 30), 3: (30, 250, 30)}
BACKGROUND = 20


def draw(height: int, width: int, boxes: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    for category, x, y, w, h in boxes:
        image[y : y + h, x : x + w] = COLORS[category]
    return image


def make_coco(folder: Path, image_format: str = "npy") -> Path:
    """Write a small COCO dataset (images drawn with numpy) and return the annotations path."""
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, (height, width, boxes) in SCENE.items():
        name = f"img_{image_id}.{image_format}"
        pixels = draw(height, width, boxes)
        if image_format == "npy":
            np.save(folder / name, pixels)
        else:
            write_png(folder / name, pixels)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for category, x, y, w, h in boxes:
            annotations.append({"image_id": image_id, "category_id": category, "bbox": [x, y, w, h]})
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "red"}, {"id": 3, "name": "green"}],
    }
    path = folder / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def gt_detections(score: float = 0.9, shift_fraction: float = 0.0) -> list[Detection]:
    """The ground truth as detections, optionally shifted right by a fraction of each width."""
    return [
        Detection(image_id, category, x + shift_fraction * w, y, w, h, score)
        for image_id, (_, _, boxes) in SCENE.items()
        for category, x, y, w, h in boxes
    ]


@pytest.fixture
def coco_dataset(tmp_path: Path):
    return load_coco_detection(make_coco(tmp_path / "coco"), input_size=(64, 64))


# --------------------------------------------------------------------------- top-k


def scores_with_label_ranks(ranks: list[int], classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Scores where sample i's label sits at rank ranks[i] (0 = best)."""
    rng = np.random.default_rng(0)
    labels = np.array([(3 * i + 2) % classes for i in range(len(ranks))])
    scores = np.zeros((len(ranks), classes), dtype=np.float32)
    for i, rank in enumerate(ranks):
        others = [c for c in range(classes) if c != labels[i]]
        rng.shuffle(others)
        order = others[:rank] + [int(labels[i])] + others[rank:]
        for position, cls in enumerate(order):
            scores[i, cls] = classes - position  # strictly decreasing along `order`
    return scores, labels


def test_top_k_on_constructed_scores() -> None:
    scores, labels = scores_with_label_ranks([0, 1, 4, 6])
    assert top_k_accuracy(scores, labels, k=1) == 0.25
    assert top_k_accuracy(scores, labels, k=2) == 0.5
    assert top_k_accuracy(scores, labels, k=5) == 0.75
    assert top_k_accuracy(scores, labels, k=7) == 1.0
    # trailing singleton axes (N×C×1×1 conv heads) are accepted
    assert top_k_accuracy(scores[:, :, None, None], labels, k=5) == 0.75
    score = classification_score(scores, labels)
    assert (score.top1, score.top5, score.count) == (0.25, 0.75, 4)


def test_top_k_on_predicted_labels_and_errors() -> None:
    labels = np.array([1, 2, 3, 4])
    assert top_k_accuracy(np.array([1, 2, 0, 4]), labels, k=1) == 0.75
    assert classification_score(np.array([1, 2, 0, 4]), labels).top5 is None
    with pytest.raises(BadInputError, match="class scores"):
        top_k_accuracy(np.array([1, 2, 0, 4]), labels, k=5)
    with pytest.raises(BadInputError, match="at least 5 classes"):
        top_k_accuracy(np.zeros((4, 3)), np.array([0, 1, 2, 0]), k=5)
    with pytest.raises(BadInputError):
        top_k_accuracy(np.zeros((3, 10)), labels, k=1)  # 3 outputs, 4 labels
    assert classification_score(np.eye(3), np.array([0, 1, 2])).top5 is None


def test_top_k_ties_and_nan_are_not_rewarded() -> None:
    labels = np.array([0, 1, 2, 3])
    # a constant output "predicts" class 0, like argmax: only the label-0 sample is right
    assert top_k_accuracy(np.ones((4, 6)), labels, k=1) == 0.25
    nan_scores = np.full((4, 6), np.nan)
    nan_scores[:, 5] = 0.0
    assert top_k_accuracy(nan_scores, labels, k=1) == 0.0


# --------------------------------------------------------------------------- fidelity


def test_fidelity_identical_outputs() -> None:
    reference = np.random.default_rng(1).normal(size=(8, 10)).astype(np.float32)
    result = fidelity(reference, reference.copy())
    assert result.top1_agreement == 1.0
    assert result.cosine == pytest.approx(1.0, abs=1e-12)
    assert result.max_abs_error == 0.0


def test_fidelity_perturbed_outputs() -> None:
    reference = np.zeros((4, 5))
    reference[:, 1] = 1.0  # every sample's top-1 is class 1
    candidate = reference.copy()
    candidate[2, 3] = 2.5  # sample 2 now prefers class 3
    result = fidelity(reference, candidate)
    assert result.top1_agreement == 0.75
    assert result.max_abs_error == 2.5
    expected_cosine_sample2 = 1.0 / math.sqrt(1.0 + 2.5**2)
    assert result.cosine == pytest.approx((3 + expected_cosine_sample2) / 4)

    noisy = reference + 0.01
    small = fidelity(reference, noisy)
    assert small.top1_agreement == 1.0
    assert 0.99 < small.cosine < 1.0
    assert small.max_abs_error == pytest.approx(0.01)


def test_fidelity_detector_shapes_nan_and_mismatch() -> None:
    reference = np.random.default_rng(2).normal(size=(1, 20, 85))
    result = fidelity(reference, -reference)
    assert result.top1_agreement is None  # not class scores
    assert result.cosine == pytest.approx(-1.0)
    broken = reference.copy()
    broken[0, 0, 0] = np.nan
    assert math.isnan(fidelity(reference, broken).cosine)
    assert math.isnan(fidelity(reference, broken).max_abs_error)
    assert fidelity(np.zeros((2, 3)), np.zeros((2, 3))).cosine == 1.0
    with pytest.raises(BadInputError, match="shape"):
        fidelity(np.zeros((2, 3)), np.zeros((3, 2)))


# --------------------------------------------------------------------------- classification npz


def test_load_classification_npz(tmp_path: Path) -> None:
    path = tmp_path / "digits.npz"
    inputs = np.random.default_rng(3).random((6, 1, 8, 8)).astype(np.float16)
    np.savez(path, inputs=inputs, labels=np.arange(6, dtype=np.int32), input_name=np.array("image"))
    dataset = load_classification_npz(path)
    assert len(dataset) == 6
    assert dataset.input_name == "image"
    assert dataset.inputs.dtype == np.float16 and dataset.inputs.shape == (6, 1, 8, 8)
    assert dataset.labels.tolist() == list(range(6))
    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == dataset_sha256(path)
    np.savez(tmp_path / "plain.npz", inputs=inputs, labels=np.arange(6))
    assert load_classification_npz(tmp_path / "plain.npz").input_name is None


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"inputs": np.zeros((3, 2), np.float32)}, "missing array.*labels"),
        ({"inputs": np.zeros((3, 2), np.float32), "labels": np.zeros(4, np.int64)}, "3 inputs but 4 labels"),
        ({"inputs": np.zeros((3, 2), np.float32), "labels": np.zeros(3, np.float32)}, "integers"),
        ({"inputs": np.zeros((3, 2), np.int64), "labels": np.zeros(3, np.int64)}, "float"),
        ({"inputs": np.zeros((3, 2), np.float32), "labels": np.array([object()] * 3)}, "cannot read"),
    ],
)
def test_load_classification_npz_errors(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadInputError, match=message):
        load_classification_npz(path)


def test_load_classification_npz_missing_or_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not found"):
        load_classification_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match="cannot read"):
        load_classification_npz(tmp_path / "junk.npz")


# --------------------------------------------------------------------------- detection dataset + preprocessing


def test_load_coco_detection_refuses_json_nested_too_deeply(tmp_path: Path) -> None:
    path = tmp_path / "annotations.json"
    path.write_text("[" * 100_000)
    with pytest.raises(BadInputError, match="nested too deeply"):
        load_coco_detection(path, input_size=(64, 64))


def test_coco_dataset_letterbox(coco_dataset) -> None:
    ds = coco_dataset
    assert ds.inputs.shape == (3, 3, 64, 64) and ds.inputs.dtype == np.float32
    assert ds.image_ids == (11, 12, 13)
    assert ds.category_ids == (1, 3) and ds.category_names == ("red", "green")
    assert 0.0 <= ds.inputs.min() and ds.inputs.max() <= 1.0
    # image 11 is 100 wide × 80 high: scale 0.64, resized to 64×51, 6 grey rows on top, 7 below
    t = ds.transforms[0]
    assert (t.scale_x, t.scale_y, t.pad_x, t.pad_y) == (0.64, 51 / 80, 0, 6)
    assert np.all(ds.inputs[0][:, :6, :] == np.float32(PAD))
    assert np.all(ds.inputs[0][:, 57:, :] == np.float32(PAD))
    assert np.all(ds.inputs[0][:, 6:57, :] != np.float32(PAD))
    # image 12 is 60 wide × 120 high: padded left/right
    t12 = ds.transforms[1]
    assert (t12.pad_x, t12.pad_y, t12.scale_y) == (16, 0, 64 / 120)
    assert np.all(ds.inputs[1][:, :, :16] == np.float32(PAD))
    # every drawn box lands where its transform says: the mapped box centre has the box's colour
    for row, (image_id, (_, _, boxes)) in enumerate(SCENE.items()):
        transform = ds.transforms[row]
        for category, x, y, w, h in boxes:
            x1, y1, x2, y2 = transform.to_input_xyxy(np.array([[x, y, x + w, y + h]]))[0]
            cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
            assert np.allclose(ds.inputs[row][:, cy, cx], np.array(COLORS[category]) / 255.0, atol=1e-6)
            back = transform.to_original_xyxy(np.array([[x1, y1, x2, y2]]))[0]
            assert np.allclose(back, [x, y, x + w, y + h])


def test_preprocessing_options(tmp_path: Path) -> None:
    annotations = make_coco(tmp_path / "coco")
    default = load_coco_detection(annotations, input_size=(64, 64))
    yolox_style = load_coco_detection(
        annotations,
        input_size=(64, 64),
        preprocessing=Preprocessing(center=False, pixel_max=255.0, channel_order="BGR"),
    )
    t = yolox_style.transforms[0]
    assert (t.pad_x, t.pad_y) == (0, 0)
    # image 11: content on top (rows 0..50), padding below, values 0..255, channels reversed
    assert np.allclose(yolox_style.inputs[0][:, 51:, :], 114.0, atol=1e-4)
    assert np.allclose(yolox_style.inputs[0][::-1, :51, :] / 255.0, default.inputs[0][:, 6:57, :], atol=1e-5)
    stretched = load_coco_detection(annotations, input_size=(32, 48), preprocessing=Preprocessing(letterbox=False))
    s = stretched.transforms[0]
    assert (s.scale_x, s.scale_y, s.pad_x, s.pad_y) == (0.48, 0.4, 0, 0)
    assert not np.any(stretched.inputs == np.float32(PAD))
    assert default.sha256 != yolox_style.sha256 != stretched.sha256
    with pytest.raises(BadInputError, match="channel_order"):
        Preprocessing(channel_order="RBG")  # type: ignore[arg-type]


def test_resize_bilinear_matches_half_pixel_interpolation() -> None:
    ramp = np.arange(4, dtype=np.float32).reshape(1, 4, 1).repeat(3, axis=2)
    up = resize_bilinear(ramp, 1, 8)[0, :, 0]
    # half-pixel centres: output x maps to (x + 0.5) / 2 - 0.5, clamped at the edges
    assert np.allclose(up, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])
    down = resize_bilinear(np.arange(8, dtype=np.float32).reshape(1, 8, 1), 1, 4)[0, :, 0]
    assert np.allclose(down, [0.5, 2.5, 4.5, 6.5])
    image = np.random.default_rng(4).random((5, 7, 3)).astype(np.float32)
    assert np.array_equal(resize_bilinear(image, 5, 7), image)


def test_detection_dataset_sha256_and_limit(tmp_path: Path) -> None:
    annotations = make_coco(tmp_path / "coco")
    first = load_coco_detection(annotations, input_size=(64, 64))
    assert load_coco_detection(tmp_path / "coco", input_size=(64, 64)).sha256 == first.sha256  # folder form
    assert dataset_sha256(first) == first.sha256
    assert load_coco_detection(annotations, input_size=(32, 32)).sha256 != first.sha256
    limited = load_coco_detection(annotations, input_size=(64, 64), limit=2)
    assert limited.image_ids == (11, 12) and limited.num_annotations == 3
    assert limited.sha256 != first.sha256
    tree_before = dataset_sha256(tmp_path / "coco")
    np.save(tmp_path / "coco" / "img_13.npy", draw(64, 64, []))  # same size, different pixels
    assert dataset_sha256(tmp_path / "coco") != tree_before
    assert load_coco_detection(annotations, input_size=(64, 64)).sha256 != first.sha256


def test_coco_dataset_errors(tmp_path: Path) -> None:
    annotations = make_coco(tmp_path / "coco")
    with pytest.raises(BadInputError, match="not found"):
        load_coco_detection(tmp_path / "missing.json")
    coco = json.loads(annotations.read_text())
    coco["images"][0]["width"] = 99
    (tmp_path / "coco" / "wrong_size.json").write_text(json.dumps(coco))
    with pytest.raises(BadInputError, match="boxes would not line up"):
        load_coco_detection(tmp_path / "coco" / "wrong_size.json")
    coco = json.loads(annotations.read_text())
    coco["annotations"][0]["category_id"] = 7
    (tmp_path / "coco" / "bad_cat.json").write_text(json.dumps(coco))
    with pytest.raises(BadInputError, match="category_id 7"):
        load_coco_detection(tmp_path / "coco" / "bad_cat.json")
    coco = json.loads(annotations.read_text())
    del coco["categories"]
    (tmp_path / "coco" / "no_cats.json").write_text(json.dumps(coco))
    with pytest.raises(BadInputError, match="categories"):
        load_coco_detection(tmp_path / "coco" / "no_cats.json")
    (tmp_path / "coco" / "img_12.npy").unlink()
    with pytest.raises(BadInputError, match="img_12.npy.*not found"):
        load_coco_detection(annotations)
    with pytest.raises(BadInputError, match="input_size"):
        load_coco_detection(annotations, input_size=(0, 64))


@pytest.mark.skipif(pillow_available(), reason="checks the message shown when Pillow is missing")
def test_png_without_pillow_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="needs Pillow"):
        load_coco_detection(make_coco(tmp_path / "coco", image_format="png"), input_size=(64, 64))


@pytest.mark.skipif(not pillow_available(), reason="Pillow is not installed")
def test_png_with_pillow_matches_npy(tmp_path: Path) -> None:
    from_png = load_coco_detection(make_coco(tmp_path / "png", image_format="png"), input_size=(64, 64))
    from_npy = load_coco_detection(make_coco(tmp_path / "npy"), input_size=(64, 64))
    assert np.array_equal(from_png.inputs, from_npy.inputs)


# --------------------------------------------------------------------------- COCO mAP


def test_coco_map_perfect_detections(coco_dataset) -> None:
    score = coco_map(gt_detections(), coco_dataset)
    assert score.map50 == 1.0
    assert score.map50_95 == 1.0
    assert (score.num_images, score.num_detections) == (3, 5)


def test_coco_map_shifted_boxes_score_lower(coco_dataset, capsys) -> None:
    # shifted by 30 % of the width: IoU = 0.7 / 1.3 ≈ 0.54, a hit at 0.50 only
    slightly = coco_map(gt_detections(shift_fraction=0.3), coco_dataset)
    assert slightly.map50 == 1.0
    assert slightly.map50_95 == pytest.approx(0.1)
    # shifted by half the width: IoU = 1/3, a miss at every threshold
    badly = coco_map(gt_detections(shift_fraction=0.5), coco_dataset)
    assert badly.map50 == 0.0 and badly.map50_95 == 0.0
    assert capsys.readouterr().out == ""  # pycocotools' prints are swallowed


def test_coco_map_partial_and_empty(coco_dataset) -> None:
    perfect = gt_detections()
    # miss image 13's two boxes entirely: recall for category 1 drops to 1/3
    partial = coco_map([d for d in perfect if d.image_id != 13], coco_dataset)
    assert 0.0 < partial.map50 < 1.0
    none = coco_map([], coco_dataset)
    assert (none.map50, none.map50_95, none.num_detections) == (0.0, 0.0, 0)


def test_coco_map_rejects_unknown_ids_and_bad_rows(coco_dataset) -> None:
    with pytest.raises(BadInputError, match="image_id 99"):
        coco_map([Detection(99, 1, 0, 0, 5, 5, 0.5)], coco_dataset)
    with pytest.raises(BadInputError, match="category_id 0"):
        coco_map([Detection(11, 0, 0, 0, 5, 5, 0.5)], coco_dataset)
    with pytest.raises(BadInputError, match="7 values"):
        coco_map([(11, 1, 0, 0, 5, 5)], coco_dataset)
    with pytest.raises(BadInputError, match="not finite"):
        coco_map([(11, 1, 0, 0, float("nan"), 5, 0.5)], coco_dataset)


# --------------------------------------------------------------------------- YOLO decoding

NUM_CLASSES = 3
# (cx, cy, w, h, class, class score, objectness)
KNOWN = [
    (20.0, 30.0, 16.0, 12.0, 2, 0.9, 1.0),  # A
    (21.0, 31.0, 16.0, 12.0, 2, 0.8, 1.0),  # duplicate of A, same class: NMS removes it
    (20.0, 30.0, 16.0, 12.0, 0, 0.9, 0.5),  # A's box, other class: kept (class-wise NMS), score 0.45
    (50.0, 10.0, 8.0, 6.0, 1, 0.7, 1.0),  # B
    (40.0, 40.0, 10.0, 10.0, 1, 0.0004, 1.0),  # below the score threshold
]
EXPECTED = [  # (x1, y1, x2, y2, class, score), by descending score
    (12.0, 24.0, 28.0, 36.0, 2, 0.9),
    (46.0, 7.0, 54.0, 13.0, 1, 0.7),
    (12.0, 24.0, 28.0, 36.0, 0, 0.45),
]


def v5_tensor(num_boxes: int = 64) -> np.ndarray:
    out = np.zeros((1, num_boxes, 5 + NUM_CLASSES), dtype=np.float32)
    for row, (cx, cy, w, h, cls, score, obj) in enumerate(KNOWN):
        out[0, row * 7, :4] = (cx, cy, w, h)  # spread over the rows, not just the first ones
        out[0, row * 7, 4] = obj
        out[0, row * 7, 5 + cls] = score
    return out


def v8_tensor(num_boxes: int = 64) -> np.ndarray:
    out = np.zeros((1, 4 + NUM_CLASSES, num_boxes), dtype=np.float32)
    for row, (cx, cy, w, h, cls, score, obj) in enumerate(KNOWN):
        out[0, :4, row * 7] = (cx, cy, w, h)
        out[0, 4 + cls, row * 7] = score * obj  # v8 has no objectness: fold it into the class score
    return out


def assert_boxes(boxes: Boxes, expected: list[tuple[float, ...]]) -> None:
    assert len(boxes) == len(expected)
    for got_box, got_score, got_class, want in zip(boxes.xyxy, boxes.scores, boxes.class_ids, expected):
        assert np.allclose(got_box, want[:4], atol=1e-4)
        assert int(got_class) == want[4]
        assert got_score == pytest.approx(want[5], abs=1e-6)


@pytest.mark.parametrize("layout", ["auto", "yolov5"])
def test_decode_yolov5(layout: str) -> None:
    (boxes,) = decode_yolo(v5_tensor(), layout)  # type: ignore[arg-type]
    assert_boxes(boxes, EXPECTED)


@pytest.mark.parametrize("layout", ["auto", "yolov8"])
def test_decode_yolov8(layout: str) -> None:
    (boxes,) = decode_yolo([v8_tensor()], layout)  # type: ignore[arg-type]
    assert_boxes(boxes, EXPECTED)


def test_decode_thresholds_and_class_agnostic_nms() -> None:
    (agnostic,) = decode_yolo(v5_tensor(), "yolov5", class_agnostic=True)
    assert_boxes(agnostic, EXPECTED[:2])  # A's class-0 twin now suppressed by A
    (strict,) = decode_yolo(v5_tensor(), "yolov5", score_threshold=0.5)
    assert_boxes(strict, EXPECTED[:2])
    (loose,) = decode_yolo(v5_tensor(), "yolov5", iou_threshold=0.95)
    assert len(loose) == 4  # the duplicate (IoU ≈ 0.78) survives a 0.95 threshold
    (capped,) = decode_yolo(v5_tensor(), "yolov5", max_detections=1)
    assert_boxes(capped, EXPECTED[:1])


def yolox_raw_tensor() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Raw YOLOX output for a 64×64 input (8×8 + 4×4 + 2×2 = 84 cells) with one known box,
    predicted by the stride-16 cell at column 1, row 2."""
    out = np.zeros((1, 84, 5 + 2), dtype=np.float32)
    out[0, :, 2:4] = -10.0  # tiny boxes elsewhere (their scores are 0 anyway)
    cx, cy, w, h = 30.0, 41.0, 24.0, 10.0
    stride, grid_x, grid_y = 16, 1, 2
    row = 64 + grid_y * 4 + grid_x
    out[0, row, :4] = (cx / stride - grid_x, cy / stride - grid_y, math.log(w / stride), math.log(h / stride))
    out[0, row, 4] = 0.8  # objectness (sigmoid applied by the export)
    out[0, row, 5 + 1] = 0.5
    return out, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def test_decode_yolox_raw_grid() -> None:
    raw, box = yolox_raw_tensor()
    expected = [(*box, 1, 0.4)]
    (explicit,) = decode_yolo(raw, "yolox", decoded=False, input_size=(64, 64))
    assert_boxes(explicit, expected)
    (inferred,) = decode_yolo(raw, "yolox", decoded=False)  # 84 cells -> 64×64
    assert_boxes(inferred, expected)
    with pytest.raises(BadInputError, match="84 boxes"):
        decode_yolo(raw, "yolox", decoded=False, input_size=(64, 96))
    with pytest.raises(BadInputError, match="only supported for layout='yolox'"):
        decode_yolo(raw, "yolov5", decoded=False)


def test_decode_yolox_already_decoded_reads_like_v5() -> None:
    (as_yolox,) = decode_yolo(v5_tensor(), "yolox", decoded=True)
    assert_boxes(as_yolox, EXPECTED)


def test_detect_layout() -> None:
    assert detect_layout((1, 25200, 85)) == "yolov5"
    assert detect_layout((1, 84, 8400)) == "yolov8"
    assert detect_layout((1, 3549, 6)) == "yolov5"
    with pytest.raises(BadInputError, match="pass layout="):
        detect_layout((1, 84, 84))
    with pytest.raises(BadInputError, match="pass layout="):
        decode_yolo(np.zeros((1, 30, 85), np.float32))  # 30 v5 boxes, or 85 v8 boxes of 26 classes?
    assert detect_layout((1, 30, 85), num_classes=80) == "yolov5"
    assert detect_layout((1, 84, 100), num_classes=80) == "yolov8"
    with pytest.raises(BadInputError, match="fits neither"):
        detect_layout((1, 84, 8400), num_classes=3)


def test_nms_keeps_best_and_separates_classes() -> None:
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)
    scores = np.array([0.6, 0.9, 0.8, 0.1])
    assert nms(xyxy, scores, 0.5).tolist() == [1, 3]
    assert nms(xyxy, scores, 0.5, class_ids=np.array([0, 0, 1, 0])).tolist() == [1, 2, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


# --------------------------------------------------------------------------- end to end through the letterbox


def v8_outputs_for(dataset, jitter_px: float = 0.0) -> list[list[np.ndarray]]:
    """Per-image v8 outputs that predict the ground truth (in model-input pixels) plus a
    lower-scored duplicate of each box that NMS must remove."""
    outputs = []
    index_of_category = {cat: i for i, cat in enumerate(dataset.category_ids)}
    for transform, (_, (_, _, boxes)) in zip(dataset.transforms, SCENE.items()):
        out = np.zeros((1, 4 + 2, 100), dtype=np.float32)
        for row, (category, x, y, w, h) in enumerate(boxes):
            x1, y1, x2, y2 = transform.to_input_xyxy(np.array([[x, y, x + w, y + h]]))[0]
            box = ((x1 + x2) / 2 + jitter_px, (y1 + y2) / 2, x2 - x1, y2 - y1)
            out[0, :4, 2 * row] = box
            out[0, 4 + index_of_category[category], 2 * row] = 0.9
            out[0, :4, 2 * row + 1] = (box[0] + 0.5, box[1] + 0.5, box[2], box[3])
            out[0, 4 + index_of_category[category], 2 * row + 1] = 0.6
        outputs.append([out])
    return outputs


def test_end_to_end_yolov8_outputs_to_map(coco_dataset) -> None:
    detections = detections_for_dataset(v8_outputs_for(coco_dataset), coco_dataset)
    assert len(detections) == 5  # duplicates removed
    assert sorted(d.category_id for d in detections) == [1, 1, 1, 3, 3]  # class 1 -> category 3
    for found, truth in zip(sorted(detections), sorted(gt_detections())):
        assert np.allclose(found[2:6], truth[2:6], atol=1e-3)
    score = coco_map(detections, coco_dataset)
    assert score.map50 == 1.0 and score.map50_95 == 1.0


def test_class_to_category_mapping(coco_dataset) -> None:
    boxes = Boxes(np.array([[6.0, 6.0, 20.0, 20.0], [30.0, 30.0, 40.0, 40.0]]), np.array([0.9, 0.8]), np.array([0, 5]))
    transform = coco_dataset.transforms[2]  # the 64×64 image: identity transform
    mapped = boxes_to_detections(boxes, transform, {0: 3})
    assert mapped == [Detection(13, 3, 6.0, 6.0, 14.0, 14.0, 0.9)]  # class 5 dropped on purpose
    with pytest.raises(BadInputError, match="model class 5 has no category"):
        boxes_to_detections(boxes, transform, coco_dataset.category_ids)


# --------------------------------------------------------------------------- post-processing hooks


HOOK_SOURCE = """
def post(outputs, meta):
    (x1, y1, x2, y2) = meta.transform.to_original_xyxy(outputs[0][0, :4][None])[0]
    return [(meta.image_id, meta.category_ids[-1], x1, y1, x2 - x1, y2 - y1, float(outputs[1][0]))]

class Holder:
    @staticmethod
    def post(outputs, meta):
        return []

not_callable = 42

def broken(outputs, meta):
    return [("a", 1, 2)]
"""


def test_postprocess_hook_module_and_file(tmp_path: Path, monkeypatch, coco_dataset) -> None:
    module = "farm_test_hook_ok"
    (tmp_path / f"{module}.py").write_text(HOOK_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    hook = load_postprocess_hook(f"{module}:post")
    assert callable(hook) and hook.__name__ == "post"
    assert load_postprocess_hook(f"{module}:Holder.post")([], None) == []
    by_file = load_postprocess_hook(f"{tmp_path / (module + '.py')}:post")
    assert by_file.__name__ == "post" and by_file is not hook

    outputs = [[np.array([[16.0, 16.0, 48.0, 48.0]]), np.array([0.7])] for _ in range(len(coco_dataset))]
    detections = detections_for_dataset(outputs, coco_dataset, postprocess=f"{module}:post")
    assert [d.image_id for d in detections] == [11, 12, 13]
    assert all(d.category_id == 3 and d.score == pytest.approx(0.7) for d in detections)
    assert detections[2][2:6] == pytest.approx((16.0, 16.0, 32.0, 32.0))  # 64×64 image: identity

    with pytest.raises(BadInputError, match=r"hook \(image 11\)"):
        detections_for_dataset(outputs, coco_dataset, postprocess=f"{module}:broken")


def test_postprocess_hook_errors(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "farm_test_hook_errs.py").write_text(HOOK_SOURCE)
    (tmp_path / "farm_test_hook_raises.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("farm_test_hook_errs", "farm_test_hook_raises"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(BadInputError, match="cannot import 'farm_no_such_module_xyz'"):
        load_postprocess_hook("farm_no_such_module_xyz:post")
    with pytest.raises(BadInputError, match="has no attribute 'missing'"):
        load_postprocess_hook("farm_test_hook_errs:missing")
    with pytest.raises(BadInputError, match="not a function"):
        load_postprocess_hook("farm_test_hook_errs:not_callable")
    with pytest.raises(BadInputError, match="package.module:function"):
        load_postprocess_hook("farm_test_hook_errs.post")
    with pytest.raises(BadInputError, match="RuntimeError: boom at import"):
        load_postprocess_hook("farm_test_hook_raises:post")
    with pytest.raises(BadInputError, match="not found"):
        load_postprocess_hook(f"{tmp_path / 'absent.py'}:post")
