"""A real detector for the accuracy tests: ddddocr's YOLOX character detector and its conventions.

`common_det.onnx` ships inside the ddddocr wheel (MIT; `pip install --no-deps ddddocr==1.6.1`,
nothing is downloaded at run time). What ddddocr's own code does with it
(ddddocr/core/detection_engine.py, 1.6.1), and so what scoring it needs:
- input `images` float32 [1, 3, 416, 416]; output `output` float32 [1, 3549, 6]: one class,
  raw YOLOX grid outputs (3549 = 52² + 26² + 13² cells for strides 8/16/32), objectness and
  class score already through a sigmoid, boxes NOT decoded (cx = (tx + grid_x) × stride,
  w = exp(tw) × stride);
- preprocessing is the YOLOX demo's `preproc`: cv2.imdecode (BGR channel order), resize by
  r = min(416/h, 416/w) with cv2.INTER_LINEAR, paste at the TOP-LEFT of a 416×416 canvas filled
  with 114, pixel values 0..255 (no division by 255, no mean/std);
- score = objectness × class score, class-agnostic NMS at IoU 0.45, score threshold 0.1.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from orchestrator import accuracy
from orchestrator.accuracy import Detection, PostprocessMeta, Preprocessing

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASET_SCRIPT = REPO_ROOT / "scripts" / "make_detection_dataset.py"
DDDDOCR_REQUIREMENT = "ddddocr==1.6.1"
MODEL_INPUT_SIZE = (416, 416)  # (height, width) in pixels

# ddddocr's preproc in farm's terms: top-left letterbox, pad 114, BGR, 0..255.
YOLOX_PREPROCESSING = Preprocessing(letterbox=True, center=False, pad_value=114.0 / 255.0, pixel_max=255.0,
                                    channel_order="BGR")
# The `farm bench --detection` spec that says the same (needs the lead's patch; see the test).
YOLOX_DETECTION_SPEC = "layout=yolox,decoded=false,pixel-max=255,letterbox=top-left,channels=BGR"


def common_det_path() -> Path | None:
    """ddddocr's common_det.onnx inside site-packages, or None when ddddocr is not installed."""
    spec = importlib.util.find_spec("ddddocr")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "common_det.onnx"
    return path if path.is_file() else None


def make_dataset(out_dir: Path, images: int = 40, seed: int = 0) -> Path:
    """Run scripts/make_detection_dataset.py (the real script, as a user would); returns out_dir."""
    subprocess.run([sys.executable, str(DATASET_SCRIPT), str(out_dir), "--images", str(images), "--seed", str(seed)],
                   check=True, capture_output=True, text=True, timeout=120)
    return out_dir


def raw_yolox_detections(outputs: Sequence[np.ndarray], meta: PostprocessMeta) -> list[Detection]:
    """Post-processing hook: raw YOLOX grid outputs -> COCO detections in original-image pixels.

    Equivalent to `detections_for_dataset(..., layout="yolox", decoded=False)`, which
    `score_outputs` cannot ask for today (it never passes `decoded`).
    """
    (boxes,) = accuracy.decode_yolo(outputs[0], "yolox", decoded=False, input_size=meta.input_size)
    return accuracy.boxes_to_detections(boxes, meta.transform, meta.category_ids)


RAW_YOLOX_HOOK = f"{Path(__file__).resolve()}:raw_yolox_detections"


def onnxruntime_map(model: Path, dataset: accuracy.DetectionDataset) -> accuracy.DetectionScore:
    """mAP of `model` on `dataset` run here with onnxruntime (no board): the fp32 reference."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [session.run(None, {name: dataset.inputs[i:i + 1]}) for i in range(len(dataset))]
    return accuracy.coco_map(accuracy.detections_for_dataset(outputs, dataset, layout="yolox", decoded=False), dataset)
