"""Accuracy on the controller side: load labelled datasets, score the outputs boards return.

The board only runs the model; everything here is pure logic on numpy arrays:
- `datasets`: classification .npz and COCO detection sets (with a sha256 for caches);
- `preprocess`: how detection images become letterboxed NCHW tensors and boxes go back;
- `metrics`: top-k accuracy, COCO mAP (pycocotools), fidelity to a reference output;
- `yolo`: YOLOv5/v8/X output decoding with numpy NMS, or a user post-processing hook.
"""
from __future__ import annotations

from orchestrator.accuracy.boxes import Boxes, Detection, nms
from orchestrator.accuracy.datasets import (
    ClassificationDataset,
    DetectionDataset,
    dataset_sha256,
    load_classification_npz,
    load_coco_detection,
)
from orchestrator.accuracy.metrics import (
    ClassificationScore,
    DetectionScore,
    Fidelity,
    classification_score,
    coco_map,
    fidelity,
    top_k_accuracy,
)
from orchestrator.accuracy.preprocess import ImageTransform, Preprocessing, pillow_available
from orchestrator.accuracy.yolo import (
    PostprocessMeta,
    boxes_to_detections,
    decode_yolo,
    detect_layout,
    detections_for_dataset,
    load_postprocess_hook,
)

__all__ = [
    "Boxes",
    "ClassificationDataset",
    "ClassificationScore",
    "Detection",
    "DetectionDataset",
    "DetectionScore",
    "Fidelity",
    "ImageTransform",
    "PostprocessMeta",
    "Preprocessing",
    "boxes_to_detections",
    "classification_score",
    "coco_map",
    "dataset_sha256",
    "decode_yolo",
    "detect_layout",
    "detections_for_dataset",
    "fidelity",
    "load_classification_npz",
    "load_coco_detection",
    "load_postprocess_hook",
    "nms",
    "pillow_available",
    "top_k_accuracy",
]
