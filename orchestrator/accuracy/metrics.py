"""Task metrics (top-k accuracy, COCO mAP) and output fidelity to a reference.

The task metric on labelled data is what decides whether a variant is good. Fidelity to the
fp32 output is a second column that explains *how* a variant differs; it is not a stand-in
for accuracy (a 50 %-pruned YOLOX kept cosine 0.97 to fp32 and detected nothing).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
from typing import Any, Iterable

import numpy as np
from numpy.typing import ArrayLike

from orchestrator.accuracy.boxes import Detection, as_detections
from orchestrator.accuracy.datasets import DetectionDataset
from orchestrator.errors import BadInputError


# --------------------------------------------------------------------------- classification


@dataclasses.dataclass(frozen=True)
class ClassificationScore:
    """Top-1 and top-5 accuracy as fractions in [0, 1]; top5 is None when it is undefined
    (outputs are predicted labels, or there are fewer than 5 classes)."""

    top1: float
    top5: float | None
    count: int


def top_k_accuracy(outputs: ArrayLike, labels: ArrayLike, k: int = 1) -> float:
    """Fraction of samples whose label is among the k best-scored classes.

    `outputs` is either class scores (N×C, or N×C×1×1…: trailing singleton axes are dropped)
    or predicted labels (N,) of an integer dtype; labels only allow k=1. Ranking matches a
    stable descending sort: among equal scores the lower class index ranks first (so a model
    that outputs a constant "predicts" class 0, like argmax, and is not rewarded for ties).
    NaN scores rank last.
    """
    if k < 1:
        raise BadInputError(f"k must be >= 1, got {k}")
    labels_array = _as_labels(labels)
    count = labels_array.shape[0]
    outputs_array = np.asarray(outputs)
    if _is_label_output(outputs_array, count):
        if k != 1:
            raise BadInputError(f"top-{k} needs class scores (N×C); the outputs are predicted labels (N,)")
        predicted = outputs_array.reshape(count).astype(np.int64)
        return float(np.mean(predicted == labels_array))
    scores = _as_scores(outputs_array, count)
    classes = scores.shape[1]
    if k > classes:
        raise BadInputError(f"top-{k} accuracy needs at least {k} classes, the outputs have {classes}")
    if labels_array.min() < 0 or labels_array.max() >= classes:
        raise BadInputError(f"labels must be in [0, {classes}), got {labels_array.min()}..{labels_array.max()}")
    scores = np.where(np.isnan(scores), -np.inf, scores)
    rows = np.arange(count)
    label_scores = scores[rows, labels_array][:, None]
    index = np.arange(classes)[None, :]
    ahead = (scores > label_scores) | ((scores == label_scores) & (index < labels_array[:, None]))
    rank = ahead.sum(axis=1)
    return float(np.mean(rank < k))


def classification_score(outputs: ArrayLike, labels: ArrayLike) -> ClassificationScore:
    """Top-1 and (when defined) top-5 accuracy of `outputs` against `labels`."""
    labels_array = _as_labels(labels)
    outputs_array = np.asarray(outputs)
    top1 = top_k_accuracy(outputs_array, labels_array, k=1)
    top5: float | None = None
    if not _is_label_output(outputs_array, labels_array.shape[0]):
        if _as_scores(outputs_array, labels_array.shape[0]).shape[1] >= 5:
            top5 = top_k_accuracy(outputs_array, labels_array, k=5)
    return ClassificationScore(top1=top1, top5=top5, count=int(labels_array.shape[0]))


def _as_labels(labels: ArrayLike) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] == 0:
        raise BadInputError(f"labels must be a non-empty 1-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise BadInputError(f"labels must be integers, got {array.dtype}")
    return array.astype(np.int64)


def _is_label_output(outputs: np.ndarray, count: int) -> bool:
    return np.issubdtype(outputs.dtype, np.integer) and outputs.size == count and outputs.ndim >= 1


def _as_scores(outputs: np.ndarray, count: int) -> np.ndarray:
    if outputs.ndim < 2 or outputs.shape[0] != count:
        raise BadInputError(
            f"expected class scores N×C (N={count}) or predicted labels (N,), got shape {outputs.shape}"
        )
    if any(size != 1 for size in outputs.shape[2:]):
        raise BadInputError(f"class scores must be N×C (extra axes of size 1 allowed), got {outputs.shape}")
    if not (np.issubdtype(outputs.dtype, np.floating) or np.issubdtype(outputs.dtype, np.integer)):
        raise BadInputError(f"class scores must be numeric, got {outputs.dtype}")
    return outputs.reshape(count, outputs.shape[1]).astype(np.float64)


# --------------------------------------------------------------------------- fidelity


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """How close a candidate's raw output is to a reference output (fp32 on the same board).

    NOT a stand-in for the task metric: high cosine can hide a useless detector.
    - top1_agreement: fraction of samples with the same argmax class, in [0, 1]; None when
      the outputs are not class scores (N×C);
    - cosine: mean over samples (axis 0) of the cosine similarity of the flattened outputs,
      in [-1, 1]; 1.0 for two all-zero samples, 0.0 when only one is all-zero;
    - max_abs_error: largest absolute element-wise difference, in the output's units.
    NaN in either output propagates to cosine and max_abs_error, so a broken variant can
    never look faithful.
    """

    top1_agreement: float | None
    cosine: float
    max_abs_error: float


def fidelity(reference: ArrayLike, candidate: ArrayLike) -> Fidelity:
    """Compare one output tensor of a candidate to the same output of the reference.

    Both arrays have the same shape, samples on axis 0 (a 0-d or 1-d array is one sample).
    For a model with several outputs, call this once per output.
    """
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    if ref.shape != cand.shape:
        raise BadInputError(f"fidelity: reference shape {ref.shape} != candidate shape {cand.shape}")
    if ref.size == 0:
        raise BadInputError("fidelity: empty outputs")
    ref64 = ref.astype(np.float64)
    cand64 = cand.astype(np.float64)
    samples = ref64.shape[0] if ref64.ndim >= 2 else 1
    ref2 = ref64.reshape(samples, -1)
    cand2 = cand64.reshape(samples, -1)

    dot = np.sum(ref2 * cand2, axis=1)
    norms = np.linalg.norm(ref2, axis=1) * np.linalg.norm(cand2, axis=1)
    ref_zero = ~np.any(ref2 != 0, axis=1)
    cand_zero = ~np.any(cand2 != 0, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_sample = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    per_sample = np.where(ref_zero & cand_zero, 1.0, per_sample)
    # a NaN anywhere in a sample must show up, not be masked by the zero-norm branches
    nan_rows = np.isnan(ref2).any(axis=1) | np.isnan(cand2).any(axis=1)
    per_sample = np.where(nan_rows, np.nan, np.clip(per_sample, -1.0, 1.0))

    diff = np.abs(ref64 - cand64)
    max_abs = float(np.nan) if np.isnan(diff).any() else float(diff.max())

    agreement: float | None = None
    if ref64.ndim >= 2 and ref64.shape[1] >= 2 and all(size == 1 for size in ref64.shape[2:]):
        agreement = float(np.mean(np.argmax(ref2, axis=1) == np.argmax(cand2, axis=1)))
    return Fidelity(top1_agreement=agreement, cosine=float(np.mean(per_sample)), max_abs_error=max_abs)


# --------------------------------------------------------------------------- detection


@dataclasses.dataclass(frozen=True)
class DetectionScore:
    """COCO box mAP (pycocotools, 101-point interpolation, up to 100 detections per image).

    map50: AP at IoU 0.50; map50_95: AP averaged over IoU 0.50:0.05:0.95; both in [0, 1].
    """

    map50: float
    map50_95: float
    num_images: int
    num_detections: int


def coco_map(detections: Iterable[Detection | tuple[Any, ...]], dataset: DetectionDataset) -> DetectionScore:
    """Score detections against the dataset's ground truth with pycocotools' COCOeval.

    `detections` are (image_id, category_id, x, y, w, h, score) in original-image pixels, with
    the dataset's category ids. An image id or category id the dataset does not have is an
    error (usually a class-index/category-id mix-up), not silently ignored. pycocotools'
    progress prints are swallowed.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets = as_detections(detections)
    if dataset.num_annotations == 0:
        raise BadInputError(f"{dataset.annotations_path}: no annotations on the loaded images; mAP is undefined")
    image_ids = set(dataset.image_ids)
    category_ids = set(dataset.category_ids)
    for det in dets:
        if det.image_id not in image_ids:
            raise BadInputError(f"detection for image_id {det.image_id}, which is not in the dataset")
        if det.category_id not in category_ids:
            raise BadInputError(
                f"detection with category_id {det.category_id}, which is not one of the dataset's "
                f"categories {sorted(category_ids)} (class index vs category id mix-up?)"
            )
    if not dets:
        return DetectionScore(map50=0.0, map50_95=0.0, num_images=len(dataset), num_detections=0)

    results = [
        {"image_id": d.image_id, "category_id": d.category_id, "bbox": [d.x, d.y, d.w, d.h], "score": d.score}
        for d in dets
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = copy.deepcopy(dataset.coco)
        ground_truth.createIndex()
        predictions = ground_truth.loadRes(results)
        evaluator = COCOeval(ground_truth, predictions, iouType="bbox")
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    map50_95, map50 = (max(float(v), 0.0) for v in evaluator.stats[:2])
    return DetectionScore(map50=map50, map50_95=map50_95, num_images=len(dataset), num_detections=len(dets))
