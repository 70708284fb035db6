"""Turning YOLO-family raw outputs into detections (numpy only), or handing that to user code.

Layouts understood (B = batch, N = candidate boxes, C = classes; boxes are (cx, cy, w, h) in
model-input pixels):
- "yolov5": [B, N, 5+C] — box, objectness, per-class scores; score = objectness × class score.
- "yolov8": [B, 4+C, N] — box, per-class scores, no objectness (also YOLOv9/v11 exports).
- "yolox":  [B, N, 5+C] like v5. With `decoded=False` the box is still grid-relative, as YOLOX
  exports it without `decode_in_inference`: cx = (tx + grid_x) × stride, w = exp(tw) × stride
  over strides 8/16/32, cells in row-major (y, x) order per stride. With `decoded=True` (the
  model decodes itself) it is read exactly like v5.
"auto" tells v5 from v8 by the shape (see `detect_layout`) and refuses to guess when it can't.

Each box keeps its best class; NMS is class-wise (boxes of different classes never suppress
each other) unless `class_agnostic=True`. Models whose outputs fit none of these (anchors left
in, already-NMSed outputs, several heads) use a post-processing hook instead:
`load_postprocess_hook("pkg.mod:func")` or `"path/to/file.py:func"`, a function
`(outputs: list[np.ndarray], meta: PostprocessMeta) -> list of (image_id, category_id, x, y, w, h, score)`
in original-image pixels.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from orchestrator.accuracy.boxes import Boxes, Detection, as_detections, cxcywh_to_xyxy, nms, xyxy_to_xywh
from orchestrator.accuracy.datasets import DetectionDataset
from orchestrator.accuracy.preprocess import ImageTransform
from orchestrator.errors import BadInputError

Layout = Literal["auto", "yolov5", "yolov8", "yolox"]
LAYOUTS = ("auto", "yolov5", "yolov8", "yolox")
YOLOX_STRIDES = (8, 16, 32)
DEFAULT_SCORE_THRESHOLD = 0.001  # what YOLO val scripts use for mAP; raise it for deployment-like counts
DEFAULT_IOU_THRESHOLD = 0.45
DEFAULT_MAX_DETECTIONS = 300
MAX_CANDIDATES = 30000  # best-scored boxes NMS looks at, like ultralytics' max_nms
# "auto" reads the shorter axis as the per-box attributes only when the other is this much longer:
# real exports have many more boxes than attributes (8400 vs 84 at 640 px, 336 vs 84 at 128 px)
AUTODETECT_MIN_RATIO = 4


@dataclasses.dataclass(frozen=True)
class PostprocessMeta:
    """What a post-processing hook is told about the image whose outputs it gets."""

    image_id: int
    transform: ImageTransform
    category_ids: tuple[int, ...]
    input_size: tuple[int, int]  # (height, width) in pixels


PostprocessHook = Callable[[list, PostprocessMeta], Any]


def detect_layout(shape: Sequence[int], num_classes: int | None = None) -> str:
    """"yolov5" or "yolov8" for a [B, a, b] output shape, or BadInputError when ambiguous.

    With `num_classes`, the layout whose attribute count fits (v5: b == 5+C, v8: a == 4+C) wins
    when exactly one fits. Without it, the attributes are the shorter axis, accepted only when
    the other axis is at least AUTODETECT_MIN_RATIO times longer (e.g. [1, 25200, 85] is v5,
    [1, 84, 8400] v8; [1, 84, 84] needs `layout=`). YOLOX looks like v5 and is never detected.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3:
        raise BadInputError(f"YOLO output must be [B, a, b], got shape {shape}")
    _, a, b = shape
    if num_classes is not None:
        fits = [name for name, ok in (("yolov5", b == 5 + num_classes), ("yolov8", a == 4 + num_classes)) if ok]
        if len(fits) == 1:
            return fits[0]
        if not fits:
            raise BadInputError(
                f"output shape {shape} fits neither yolov5 [B, N, {5 + num_classes}] nor "
                f"yolov8 [B, {4 + num_classes}, N] for {num_classes} classes"
            )
    if b >= 6 and a >= AUTODETECT_MIN_RATIO * b:
        return "yolov5"
    if a >= 5 and b >= AUTODETECT_MIN_RATIO * a:
        return "yolov8"
    raise BadInputError(
        f"cannot tell the YOLO layout of output shape {shape} (yolov5 is [B, N, 5+C], yolov8 "
        "[B, 4+C, N]); pass layout='yolov5', 'yolov8' or 'yolox' (or num_classes)"
    )


def yolox_grid(input_size: tuple[int, int], strides: Sequence[int] = YOLOX_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """YOLOX cell offsets (N, 2) as (x, y) and per-cell stride (N,), in the export's order."""
    height, width = input_size
    grids, stride_column = [], []
    for stride in strides:
        rows, cols = height // stride, width // stride
        yv, xv = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        grids.append(np.stack((xv, yv), axis=-1).reshape(-1, 2))
        stride_column.append(np.full(rows * cols, float(stride)))
    return np.concatenate(grids).astype(np.float64), np.concatenate(stride_column)


def _infer_square_input(num_boxes: int, strides: Sequence[int]) -> tuple[int, int]:
    side_estimate = math.sqrt(num_boxes / sum(1.0 / (s * s) for s in strides))
    step = max(strides)
    for side in {int(math.floor(side_estimate / step)) * step, int(math.ceil(side_estimate / step)) * step}:
        if side > 0 and sum((side // s) ** 2 for s in strides) == num_boxes:
            return side, side
    raise BadInputError(
        f"cannot infer the YOLOX input size from {num_boxes} boxes and strides {tuple(strides)}; "
        "pass input_size=(height, width)"
    )


def decode_yolo(
    output: np.ndarray | Sequence[np.ndarray],
    layout: Layout = "auto",
    *,
    decoded: bool = True,
    num_classes: int | None = None,
    input_size: tuple[int, int] | None = None,
    strides: Sequence[int] = YOLOX_STRIDES,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
    class_agnostic: bool = False,
) -> list[Boxes]:
    """Decode one YOLO output (batch of B images) into B `Boxes` in model-input pixels.

    `output` is the array, or a model's output list (the first one is decoded). A 2-D array is
    taken as batch 1. Boxes with score strictly above `score_threshold` go to NMS at
    `iou_threshold`; at most `max_detections` are kept per image. `decoded=False` means raw
    YOLOX outputs (grid decode; `input_size` (H, W) is inferred for square inputs when omitted).
    """
    array = _first_output(output)
    if layout not in LAYOUTS:
        raise BadInputError(f"unknown YOLO layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if not decoded and layout in ("yolov5", "yolov8"):
        raise BadInputError(
            f"decoded=False (raw grid outputs) is only supported for layout='yolox', not {layout!r}; "
            "use a post-processing hook for other raw heads"
        )
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise BadInputError(f"YOLO output must be [B, a, b], got shape {array.shape}")
    if layout == "auto":
        layout = "yolox" if not decoded else detect_layout(array.shape, num_classes)
        if not decoded and array.shape[2] < 6:
            raise BadInputError(f"raw YOLOX output must be [B, N, 5+C], got shape {array.shape}")
    if layout == "yolov8":
        predictions = np.swapaxes(array, 1, 2)  # -> [B, N, 4+C]
        min_attrs = 5
    else:
        predictions = array
        min_attrs = 6
    if predictions.shape[2] < min_attrs:
        raise BadInputError(f"{layout} output shape {array.shape} has no class scores")
    classes = predictions.shape[2] - (4 if layout == "yolov8" else 5)
    if num_classes is not None and classes != num_classes:
        raise BadInputError(f"{layout} output shape {array.shape} holds {classes} classes, expected {num_classes}")
    predictions = predictions.astype(np.float64)

    grid = stride_column = None
    if layout == "yolox" and not decoded:
        size = input_size if input_size is not None else _infer_square_input(predictions.shape[1], strides)
        grid, stride_column = yolox_grid((int(size[0]), int(size[1])), strides)
        if grid.shape[0] != predictions.shape[1]:
            raise BadInputError(
                f"raw YOLOX output has {predictions.shape[1]} boxes but input {tuple(size)} with strides "
                f"{tuple(strides)} gives {grid.shape[0]}"
            )

    results = []
    for image_predictions in predictions:
        boxes = image_predictions[:, :4]
        if grid is not None:
            with np.errstate(over="ignore"):
                boxes = np.concatenate(
                    [
                        (boxes[:, 0:2] + grid) * stride_column[:, None],
                        np.exp(boxes[:, 2:4]) * stride_column[:, None],
                    ],
                    axis=1,
                )
        if layout == "yolov8":
            class_scores = image_predictions[:, 4:]
            objectness = None
        else:
            class_scores = image_predictions[:, 5:]
            objectness = image_predictions[:, 4]
        results.append(
            _select(
                boxes, objectness, class_scores, score_threshold, iou_threshold, max_detections, class_agnostic
            )
        )
    return results


def _first_output(output: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(output, np.ndarray):
        return output
    if isinstance(output, (list, tuple)) and output:
        return np.asarray(output[0])
    raise BadInputError(f"expected a YOLO output array or a non-empty list of outputs, got {type(output).__name__}")


def _select(
    boxes_cxcywh: np.ndarray,
    objectness: np.ndarray | None,
    class_scores: np.ndarray,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool,
) -> Boxes:
    class_ids = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(class_scores.shape[0]), class_ids]
    if objectness is not None:
        scores = scores * objectness
    xyxy = cxcywh_to_xyxy(boxes_cxcywh)
    keep = (scores > score_threshold) & np.all(np.isfinite(xyxy), axis=1)
    xyxy, scores, class_ids = xyxy[keep], scores[keep], class_ids[keep]
    if scores.shape[0] > MAX_CANDIDATES:
        best = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
        xyxy, scores, class_ids = xyxy[best], scores[best], class_ids[best]
    kept = nms(xyxy, scores, iou_threshold, None if class_agnostic else class_ids, max_output=max_detections)
    return Boxes(xyxy=xyxy[kept], scores=scores[kept], class_ids=class_ids[kept].astype(np.int64))


def boxes_to_detections(
    boxes: Boxes,
    transform: ImageTransform,
    class_to_category: Sequence[int] | Mapping[int, int],
) -> list[Detection]:
    """Map model-input boxes to original-image COCO detections with dataset category ids.

    `class_to_category` is a sequence (class index i -> category id at position i; a class past
    its end is an error) or a mapping (classes missing from it are dropped on purpose, e.g. an
    80-class model scored on a 3-category subset). Boxes are clipped to the image.
    """
    xywh = xyxy_to_xywh(transform.to_original_xyxy(boxes.xyxy))
    detections = []
    for (x, y, w, h), score, class_id in zip(xywh, boxes.scores, boxes.class_ids):
        class_id = int(class_id)
        if isinstance(class_to_category, Mapping):
            if class_id not in class_to_category:
                continue
            category = int(class_to_category[class_id])
        else:
            if class_id >= len(class_to_category):
                raise BadInputError(
                    f"model class {class_id} has no category: the dataset has {len(class_to_category)} "
                    "categories; pass class_to_category (a mapping drops classes it does not list)"
                )
            category = int(class_to_category[class_id])
        detections.append(Detection(transform.image_id, category, float(x), float(y), float(w), float(h), float(score)))
    return detections


def detections_for_dataset(
    outputs: Sequence[np.ndarray | Sequence[np.ndarray]],
    dataset: DetectionDataset,
    *,
    layout: Layout = "auto",
    decoded: bool = True,
    postprocess: PostprocessHook | str | None = None,
    class_to_category: Sequence[int] | Mapping[int, int] | None = None,
    num_classes: int | None = None,
    strides: Sequence[int] = YOLOX_STRIDES,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
    class_agnostic: bool = False,
) -> list[Detection]:
    """All detections of a dataset run, ready for `coco_map`.

    `outputs[i]` is image i's model outputs (a list of arrays, or one array), in dataset order,
    each with batch 1. With `postprocess` (a callable or "module:function"), that function
    turns each image's outputs into detections; otherwise the first output is YOLO-decoded and
    mapped back through the image's letterbox transform. `class_to_category` defaults to
    `dataset.category_ids` (class i -> i-th category by id: right for COCO's 80 classes).
    """
    if len(outputs) != len(dataset):
        raise BadInputError(f"{len(outputs)} outputs for a dataset of {len(dataset)} images (one per image)")
    hook = load_postprocess_hook(postprocess) if isinstance(postprocess, str) else postprocess
    mapping = dataset.category_ids if class_to_category is None else class_to_category
    detections: list[Detection] = []
    for image_outputs, transform in zip(outputs, dataset.transforms):
        as_list = [np.asarray(o) for o in image_outputs] if isinstance(image_outputs, (list, tuple)) else [np.asarray(image_outputs)]
        if hook is not None:
            meta = PostprocessMeta(transform.image_id, transform, dataset.category_ids, dataset.input_size)
            detections.extend(as_detections(hook(as_list, meta), source=f"post-processing hook (image {transform.image_id})"))
            continue
        if as_list[0].ndim == 3 and as_list[0].shape[0] != 1:
            raise BadInputError(f"image {transform.image_id}: expected batch 1, got output shape {as_list[0].shape}")
        (boxes,) = decode_yolo(
            as_list[0],
            layout,
            decoded=decoded,
            num_classes=num_classes,
            input_size=dataset.input_size,
            strides=strides,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            max_detections=max_detections,
            class_agnostic=class_agnostic,
        )
        detections.extend(boxes_to_detections(boxes, transform, mapping))
    return detections


def load_postprocess_hook(spec: str) -> PostprocessHook:
    """Import a user post-processing function named "package.module:function" (attribute paths
    like "mod:Class.method" work) or "path/to/file.py:function".

    The module is imported from `sys.path` as usual (a file path needs no sys.path entry).
    Any failure to import, find or call-check the function is a BadInputError naming the spec.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise BadInputError(f"post-processing hook {spec!r} must look like 'package.module:function'")
    module_part, _, attr_path = spec.rpartition(":")
    if not module_part or not attr_path:
        raise BadInputError(f"post-processing hook {spec!r} must look like 'package.module:function'")
    module = _import_hook_module(module_part, spec)
    target: Any = module
    for name in attr_path.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise BadInputError(
                f"post-processing hook {spec!r}: {module_part!r} has no attribute {attr_path!r}"
            ) from None
    if not callable(target):
        raise BadInputError(f"post-processing hook {spec!r} is a {type(target).__name__}, not a function")
    return target


def _import_hook_module(module_part: str, spec: str) -> Any:
    path = Path(module_part)
    try:
        if module_part.endswith(".py"):
            if not path.is_file():
                raise BadInputError(f"post-processing hook {spec!r}: file {path} not found")
            name = "farm_postprocess_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise BadInputError(f"post-processing hook {spec!r}: cannot load {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            return module
        return importlib.import_module(module_part)
    except BadInputError:
        raise
    except ImportError as exc:
        raise BadInputError(f"post-processing hook {spec!r}: cannot import {module_part!r}: {exc}") from exc
    except Exception as exc:  # user code ran at import time; any error there is the hook's fault
        raise BadInputError(
            f"post-processing hook {spec!r}: importing {module_part!r} failed: {type(exc).__name__}: {exc}"
        ) from exc

