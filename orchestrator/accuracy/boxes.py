"""Boxes, detections and non-maximum suppression, in numpy only.

Two coordinate systems meet here:
- `Boxes` hold what a detector found in *model-input pixels* (the letterboxed tensor),
  as corners (x1, y1, x2, y2), before anything is mapped back.
- `Detection` is one scored box in *original-image pixels* in COCO's (x, y, w, h) form,
  with the dataset's category id: what `coco_map` scores and what a post-processing hook returns.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, NamedTuple

import numpy as np

from orchestrator.errors import BadInputError


class Detection(NamedTuple):
    """One detection in original-image pixels: top-left (x, y), width w, height h; score in [0, 1]."""

    image_id: int
    category_id: int
    x: float
    y: float
    w: float
    h: float
    score: float


@dataclasses.dataclass(frozen=True, eq=False)
class Boxes:
    """Detections of one image in model-input pixels.

    `xyxy` is (M, 4) float64 corners, `scores` (M,) float64, `class_ids` (M,) int64 model class
    indices (not dataset category ids). Rows are sorted by descending score.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def empty() -> "Boxes":
        return Boxes(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0,), dtype=np.int64))


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) -> (x1, y1, x2, y2); any leading shape."""
    boxes = np.asarray(boxes, dtype=np.float64)
    half = boxes[..., 2:4] / 2.0
    return np.concatenate([boxes[..., 0:2] - half, boxes[..., 0:2] + half], axis=-1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(x1, y1, x2, y2) -> COCO (x, y, w, h); any leading shape."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([boxes[..., 0:2], boxes[..., 2:4] - boxes[..., 0:2]], axis=-1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """COCO (x, y, w, h) -> (x1, y1, x2, y2); any leading shape."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([boxes[..., 0:2], boxes[..., 0:2] + boxes[..., 2:4]], axis=-1)


def box_iou(one: np.ndarray, many: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box (4,) against many (M, 4); 0 where the union is empty."""
    inter_w = np.clip(np.minimum(one[2], many[:, 2]) - np.maximum(one[0], many[:, 0]), 0.0, None)
    inter_h = np.clip(np.minimum(one[3], many[:, 3]) - np.maximum(one[1], many[:, 1]), 0.0, None)
    inter = inter_w * inter_h
    area_one = max(one[2] - one[0], 0.0) * max(one[3] - one[1], 0.0)
    area_many = np.clip(many[:, 2] - many[:, 0], 0.0, None) * np.clip(many[:, 3] - many[:, 1], 0.0, None)
    union = area_one + area_many - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    class_ids: np.ndarray | None = None,
    max_output: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, highest score first.

    A box is dropped when its IoU with a higher-scoring kept box is *above* `iou_threshold`
    (torchvision's rule). With `class_ids`, suppression happens only within a class: boxes of
    different classes are shifted apart by a per-class offset so that they never overlap, the
    usual batched-NMS trick, and one pass does all classes.
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if xyxy.shape[0] != scores.shape[0]:
        raise ValueError(f"nms: {xyxy.shape[0]} boxes but {scores.shape[0]} scores")
    if xyxy.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    if class_ids is not None:
        class_ids = np.asarray(class_ids).reshape(-1)
        span = float(xyxy.max() - xyxy.min()) + 1.0
        xyxy = xyxy + (class_ids.astype(np.float64) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if max_output is not None and len(keep) >= max_output:
            break
        rest = order[1:]
        order = rest[box_iou(xyxy[best], xyxy[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def as_detections(items: Any, source: str = "detections") -> list[Detection]:
    """Validate `items` (an iterable of 7-sequences or `Detection`s) into a list of `Detection`.

    Raises BadInputError naming the first bad entry: hook output and stored results are user
    input as far as scoring is concerned.
    """
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise BadInputError(f"{source}: expected a list of detections, got {type(items).__name__}")
    out: list[Detection] = []
    for index, item in enumerate(items):
        try:
            values = tuple(item)
        except TypeError:
            raise BadInputError(
                f"{source}[{index}]: expected (image_id, category_id, x, y, w, h, score), "
                f"got {type(item).__name__}"
            ) from None
        if len(values) != 7:
            raise BadInputError(
                f"{source}[{index}]: expected 7 values (image_id, category_id, x, y, w, h, score), "
                f"got {len(values)}"
            )
        try:
            image_id, category_id = _as_int(values[0]), _as_int(values[1])
            x, y, w, h, score = (float(v) for v in values[2:])
        except (TypeError, ValueError) as exc:
            raise BadInputError(f"{source}[{index}]: {exc}") from None
        if not all(math.isfinite(v) for v in (x, y, w, h, score)):
            raise BadInputError(f"{source}[{index}]: box or score is not finite: {values!r}")
        if w < 0 or h < 0:
            raise BadInputError(f"{source}[{index}]: negative width or height: {values!r}")
        out.append(Detection(image_id, category_id, x, y, w, h, score))
    return out


def _as_int(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"expected an integer id, got {value!r}")
    as_float = float(value)
    if not as_float.is_integer():
        raise ValueError(f"expected an integer id, got {value!r}")
    return int(as_float)
