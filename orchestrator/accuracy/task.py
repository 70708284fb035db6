"""A model's labelled data and how its outputs are scored (the task metric), board-agnostic.

The board only runs inputs through the model (agent verb `outputs`); the controller scores
what comes back here: top-1/top-5 for classification, mAP50/mAP50-95 for detection. Fidelity
to the fp32 outputs on the same board is a second column, never the accuracy itself.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from orchestrator.atomic import atomic_path
from orchestrator.errors import BadInputError


@dataclasses.dataclass(frozen=True)
class TaskDataset:
    """Labelled data for one model. `inputs_npz` is the file staged on boards (array `inputs`)."""

    kind: str  # classification | detection
    source: Path
    sha256: str
    inputs_npz: Path
    count: int
    dataset: Any  # accuracy.ClassificationDataset | accuracy.DetectionDataset
    detection_layout: str = "auto"
    postprocess: str | None = None
    decoded: bool = True  # False: raw YOLOX grid outputs (decode_yolo(decoded=False))

    @property
    def metric(self) -> str:
        return "top1" if self.kind == "classification" else "mAP50"


@dataclasses.dataclass(frozen=True)
class Score:
    """The task metric of one variant on one board, plus fidelity vs fp32 when known."""

    metric: str
    value: float
    extra: dict[str, float | None]
    scored_output: np.ndarray  # the output the metric used (kept for fidelity of later variants)


@dataclasses.dataclass(frozen=True)
class DetectionOptions:
    """How a detector reads images and what its output means (`farm bench --detection`).

    Defaults are the ultralytics conventions (RGB, [0, 1], centred letterbox, decoded boxes).
    """

    layout: str = "auto"  # auto | yolov5 | yolov8 | yolox
    decoded: bool = True  # False: raw YOLOX grid outputs
    preprocessing: Any = None  # accuracy.Preprocessing; None: its defaults
    postprocess: str | None = None  # "module:function" or "file.py:function"


DETECTION_KEYS = ("layout", "decoded", "pixel-max", "letterbox", "channels", "pad", "postprocess")


def parse_detection_options(text: str) -> DetectionOptions:
    """`layout=yolox,decoded=false,pixel-max=255,letterbox=top-left,channels=BGR,pad=114` -> options.

    pixel-max: input value of a white pixel (1 or 255); letterbox: center (ultralytics),
    top-left (YOLOX) or stretch (no letterbox); channels: RGB or BGR; pad: letterbox fill as a
    0..255 pixel value; postprocess: a hook "module:function" (then layout/decoded are unused).
    """
    from orchestrator.accuracy import Preprocessing
    from orchestrator.accuracy.yolo import LAYOUTS

    values: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in DETECTION_KEYS or not value:
            raise BadInputError(f"--detection {text!r}: {item!r} is not KEY=VALUE with KEY one of {', '.join(DETECTION_KEYS)}")
        values[key] = value
    layout = values.get("layout", "auto").lower()
    if layout not in LAYOUTS:
        raise BadInputError(f"--detection {text!r}: layout must be one of {', '.join(LAYOUTS)}")
    decoded_text = values.get("decoded", "true").lower()
    if decoded_text not in ("true", "false"):
        raise BadInputError(f"--detection {text!r}: decoded must be true or false")
    letterbox = values.get("letterbox", "center").lower()
    if letterbox not in ("center", "top-left", "stretch"):
        raise BadInputError(f"--detection {text!r}: letterbox must be center, top-left or stretch")
    try:
        pixel_max = float(values.get("pixel-max", "1"))
        pad = float(values.get("pad", "114"))
    except ValueError:
        raise BadInputError(f"--detection {text!r}: pixel-max and pad must be numbers") from None
    if not 0.0 <= pad <= 255.0:
        raise BadInputError(f"--detection {text!r}: pad is a 0..255 pixel value")
    preprocessing = Preprocessing(  # raises BadInputError for a bad pixel-max or channel order
        letterbox=letterbox != "stretch", center=letterbox == "center", pad_value=pad / 255.0,
        pixel_max=pixel_max, channel_order=values.get("channels", "RGB").upper())
    return DetectionOptions(layout, decoded_text == "true", preprocessing, values.get("postprocess"))


def load_task_dataset(path: Path | str, cache_dir: Path, input_size: tuple[int, int] | None = None,
                      detection: DetectionOptions | None = None) -> TaskDataset:
    """A .npz (classification: `inputs`, `labels`) or a COCO folder/JSON (detection)."""
    from orchestrator import accuracy

    path = Path(path).expanduser()
    if not path.exists():
        raise BadInputError(f"dataset not found: {path}")
    if path.suffix == ".npz":
        if detection is not None:
            raise BadInputError(f"{path}: --detection applies to COCO detection datasets, not a classification .npz")
        data = accuracy.load_classification_npz(path)
        return TaskDataset("classification", path.resolve(), data.sha256, path.resolve(), len(data), data)
    if input_size is None:
        raise BadInputError(f"{path}: a detection dataset needs the model's input size")
    detection = detection or DetectionOptions()
    preprocessing = detection.preprocessing or accuracy.Preprocessing()
    data = accuracy.load_coco_detection(path, input_size=input_size, preprocessing=preprocessing)
    inputs_npz = Path(cache_dir) / f"detection-{data.sha256[:16]}.npz"
    if not inputs_npz.exists():
        _write_npz_atomically(inputs_npz, inputs=data.inputs)
    return TaskDataset("detection", path.resolve(), data.sha256, inputs_npz, len(data), data,
                       detection_layout=detection.layout, postprocess=detection.postprocess,
                       decoded=detection.decoded)


def score_outputs(task: TaskDataset, outputs: Sequence[np.ndarray], reference: np.ndarray | None) -> Score:
    """Score the outputs one board returned for the whole dataset (outputs in model order)."""
    from orchestrator import accuracy

    if task.kind == "classification":
        scored = _classification_output(outputs, task.count)
        result = accuracy.classification_score(scored, task.dataset.labels)
        extra: dict[str, float | None] = {"top5": result.top5}
        value = result.top1
    else:
        per_image = [[o[i:i + 1] for o in outputs] for i in range(task.count)]
        detections = accuracy.detections_for_dataset(
            per_image, task.dataset, layout=task.detection_layout, decoded=task.decoded,
            postprocess=task.postprocess)
        result = accuracy.coco_map(detections, task.dataset)
        extra = {"mAP50_95": result.map50_95}
        value = result.map50
        scored = np.asarray(outputs[0])
    if reference is not None and reference.shape == scored.shape:
        fid = accuracy.fidelity(reference, scored)
        extra.update(fidelity_cosine=fid.cosine, fidelity_top1_agreement=fid.top1_agreement,
                     fidelity_max_abs_error=fid.max_abs_error)
    return Score(task.metric, float(value), extra, scored)


def _classification_output(outputs: Sequence[np.ndarray], count: int) -> np.ndarray:
    """The class scores (N×C floats) if the model has them, else its predicted labels (N,)."""
    for output in outputs:
        array = np.asarray(output)
        if array.dtype.kind == "f" and array.shape[0] == count and array.ndim >= 2:
            return array.reshape(count, -1)
    for output in outputs:
        array = np.asarray(output)
        if array.dtype.kind in "iu" and array.shape[:1] == (count,):
            return array.reshape(count)
    raise BadInputError("the model has no output that looks like class scores (N×C) or labels (N)")


def _write_npz_atomically(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
