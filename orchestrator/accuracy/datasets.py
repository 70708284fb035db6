"""Labelled datasets the controller loads, sends to a board and scores against.

Two kinds:
- classification: one `.npz` with `inputs` (N×…, float) and `labels` (N, int), optionally
  `input_name` (0-d string array) naming the model input the inputs feed;
- detection: a COCO annotation JSON (images + annotations + categories) and its image files,
  preprocessed into one NCHW float32 tensor (see `orchestrator.accuracy.preprocess`).

Each dataset carries a sha256 so that results and variant caches (static int8 calibration) can
say exactly which data they used.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Union

import numpy as np

from orchestrator.accuracy.preprocess import (
    ImageTransform,
    Preprocessing,
    prepare_image,
    read_image,
)
from orchestrator.hashing import file_sha256
from orchestrator.errors import BadInputError

_CHUNK_BYTES = 1 << 20
COCO_JSON_DEFAULT_NAME = "annotations.json"


@dataclasses.dataclass(frozen=True, eq=False)
class ClassificationDataset:
    """A labelled classification set. `sha256` is the hex digest of the .npz file's bytes."""

    inputs: np.ndarray
    labels: np.ndarray
    input_name: str | None
    path: Path
    sha256: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class DetectionDataset:
    """A COCO-format detection set, preprocessed.

    - `inputs`: (N, 3, H, W) float32, one image per row, in `image_ids` order;
    - `transforms[i]`: scale/padding of image i, to map boxes back to its original pixels;
    - `category_ids` / `category_names`: the dataset's categories sorted by id; the default
      mapping from a model's class index i to a category is `category_ids[i]`;
    - `coco`: the validated COCO dict (restricted to the loaded images) that `coco_map`
      scores against;
    - `sha256`: covers the annotation file, every image file used, `input_size` and
      `preprocessing`, i.e. everything that decides `inputs` and the ground truth.
    """

    inputs: np.ndarray
    image_ids: tuple[int, ...]
    transforms: tuple[ImageTransform, ...]
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    coco: dict[str, Any]
    input_size: tuple[int, int]
    preprocessing: Preprocessing
    input_name: str | None
    annotations_path: Path
    images_dir: Path
    sha256: str

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_annotations(self) -> int:
        return len(self.coco["annotations"])


def dataset_sha256(source: Union[str, Path, ClassificationDataset, DetectionDataset]) -> str:
    """A stable key for a dataset, for caches keyed on calibration/evaluation data.

    - a loaded dataset: its `sha256`;
    - a file: the sha256 of its bytes (equal to `load_classification_npz(path).sha256`);
    - a folder: a digest over every file below it (relative POSIX path + content hash, in
      sorted order), so renaming, adding, removing or editing any file changes it.
    """
    if isinstance(source, (ClassificationDataset, DetectionDataset)):
        return source.sha256
    path = Path(source)
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        digest = hashlib.sha256(b"farm-dataset-tree-v1\n")
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = child.relative_to(path).as_posix()
            digest.update(f"{rel}\0{file_sha256(child)}\n".encode())
        return digest.hexdigest()
    raise BadInputError(f"dataset not found: {path}")


def load_classification_npz(path: str | Path) -> ClassificationDataset:
    """Load a classification `.npz` (see module docstring). Pickled arrays are refused."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"classification dataset not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            missing = {"inputs", "labels"} - names
            if missing:
                raise BadInputError(
                    f"{path}: missing array(s) {', '.join(sorted(missing))}; a classification "
                    f"dataset needs 'inputs' (N×…) and 'labels' (N,), found {sorted(names) or 'none'}"
                )
            inputs = archive["inputs"]
            labels = archive["labels"]
            input_name_array = archive["input_name"] if "input_name" in names else None
    except BadInputError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # not a zip, truncated, object arrays
        raise BadInputError(f"cannot read classification dataset {path}: {exc}") from exc

    if inputs.ndim < 1 or inputs.shape[0] == 0:
        raise BadInputError(f"{path}: 'inputs' must be N×… with N > 0, got shape {inputs.shape}")
    if not np.issubdtype(inputs.dtype, np.floating):
        raise BadInputError(f"{path}: 'inputs' must be a float array, got {inputs.dtype}")
    if labels.ndim != 1:
        raise BadInputError(f"{path}: 'labels' must be 1-D (N,), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise BadInputError(f"{path}: 'labels' must be integers, got {labels.dtype}")
    if labels.shape[0] != inputs.shape[0]:
        raise BadInputError(
            f"{path}: {inputs.shape[0]} inputs but {labels.shape[0]} labels (lengths must match)"
        )
    input_name: str | None = None
    if input_name_array is not None:
        if input_name_array.ndim != 0 or input_name_array.dtype.kind not in ("U", "S"):
            raise BadInputError(
                f"{path}: 'input_name' must be a 0-d string array, got {input_name_array.dtype} "
                f"shape {input_name_array.shape}"
            )
        value = input_name_array.item()
        input_name = value.decode() if isinstance(value, bytes) else str(value)
    return ClassificationDataset(
        inputs=inputs,
        labels=labels.astype(np.int64, copy=False),
        input_name=input_name,
        path=path,
        sha256=file_sha256(path),
    )


def load_coco_detection(
    annotations_json: str | Path,
    images_dir: str | Path | None = None,
    input_size: tuple[int, int] = (640, 640),
    *,
    preprocessing: Preprocessing = Preprocessing(),
    limit: int | None = None,
    input_name: str | None = None,
) -> DetectionDataset:
    """Load a COCO detection set and preprocess its images into model inputs.

    `annotations_json` is the JSON file, or a folder holding `annotations.json` (or exactly
    one `.json`). Image `file_name`s are looked up in `images_dir`, which defaults to the JSON's
    folder and then its `images/` subfolder. `input_size` is the model's (height, width) in
    pixels. `limit` keeps the first N images in id order (ground truth is restricted to them).
    Each image's pixel size must equal the JSON's width/height, or boxes would not line up.
    """
    json_path = _resolve_annotations_path(Path(annotations_json))
    height_width = _validate_input_size(input_size)
    if limit is not None and limit < 1:
        raise BadInputError(f"limit must be >= 1, got {limit}")
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"cannot read COCO annotations {json_path}: {exc}") from exc
    except RecursionError:
        raise BadInputError(f"cannot read COCO annotations {json_path}: nested too deeply") from None
    coco = _validate_coco(raw, json_path)

    images = sorted(coco["images"], key=lambda image: image["id"])
    if limit is not None:
        images = images[:limit]
    kept_ids = {image["id"] for image in images}
    coco["images"] = images
    coco["annotations"] = [ann for ann in coco["annotations"] if ann["image_id"] in kept_ids]

    search_dirs = (
        [Path(images_dir)] if images_dir is not None else [json_path.parent, json_path.parent / "images"]
    )
    digest = hashlib.sha256(b"farm-coco-detection-v1\n")
    digest.update(f"annotations\0{file_sha256(json_path)}\n".encode())
    digest.update(
        json.dumps(
            {"input_size": list(height_width), "preprocessing": dataclasses.asdict(preprocessing)},
            sort_keys=True,
        ).encode()
        + b"\n"
    )
    inputs = np.empty((len(images), 3, height_width[0], height_width[1]), dtype=np.float32)
    transforms: list[ImageTransform] = []
    used_dir: Path | None = None
    for row, image in enumerate(images):
        file_path = _find_image(image["file_name"], search_dirs, json_path)
        used_dir = used_dir or file_path.parent
        pixels = read_image(file_path)
        if pixels.shape[0] != image["height"] or pixels.shape[1] != image["width"]:
            raise BadInputError(
                f"{file_path}: image is {pixels.shape[1]}×{pixels.shape[0]} (w×h) but the "
                f"annotations say {image['width']}×{image['height']}; boxes would not line up"
            )
        inputs[row], transform = prepare_image(
            pixels, height_width, preprocessing, image_id=image["id"], file_name=image["file_name"]
        )
        transforms.append(transform)
        digest.update(f"image\0{image['id']}\0{image['file_name']}\0{file_sha256(file_path)}\n".encode())

    categories = sorted(coco["categories"], key=lambda cat: cat["id"])
    return DetectionDataset(
        inputs=inputs,
        image_ids=tuple(image["id"] for image in images),
        transforms=tuple(transforms),
        category_ids=tuple(cat["id"] for cat in categories),
        category_names=tuple(str(cat.get("name", cat["id"])) for cat in categories),
        coco=coco,
        input_size=height_width,
        preprocessing=preprocessing,
        input_name=input_name,
        annotations_path=json_path,
        images_dir=used_dir or search_dirs[0],
        sha256=digest.hexdigest(),
    )


def _resolve_annotations_path(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        default = path / COCO_JSON_DEFAULT_NAME
        if default.is_file():
            return default
        candidates = sorted(path.glob("*.json"))
        if len(candidates) == 1:
            return candidates[0]
        raise BadInputError(
            f"{path}: expected {COCO_JSON_DEFAULT_NAME} or exactly one .json file, "
            f"found {[c.name for c in candidates] or 'none'}"
        )
    raise BadInputError(f"COCO annotations not found: {path}")


def _validate_input_size(input_size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise BadInputError(f"input_size must be (height, width), got {input_size!r}") from None
    if height < 1 or width < 1:
        raise BadInputError(f"input_size must be positive, got {input_size!r}")
    return height, width


def _find_image(file_name: str, search_dirs: list[Path], json_path: Path) -> Path:
    for folder in search_dirs:
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    raise BadInputError(
        f"{json_path}: image {file_name!r} not found in {', '.join(str(d) for d in search_dirs)}"
    )


def _validate_coco(raw: Any, json_path: Path) -> dict[str, Any]:
    """Check the fields pycocotools relies on and fill the optional ones (area, iscrowd, id)."""
    where = str(json_path)
    if not isinstance(raw, dict):
        raise BadInputError(f"{where}: a COCO file is a JSON object, got {type(raw).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw.get(key), list):
            raise BadInputError(f"{where}: missing list '{key}' (COCO needs images, annotations, categories)")
    coco = copy.deepcopy(raw)
    image_ids: set[int] = set()
    for index, image in enumerate(coco["images"]):
        _require(image, ("id", "file_name", "width", "height"), f"{where}: images[{index}]")
        if not _is_int(image["id"]) or image["id"] in image_ids:
            raise BadInputError(f"{where}: images[{index}] has a missing, non-integer or duplicate id")
        if not (_is_int(image["width"]) and _is_int(image["height"])) or min(image["width"], image["height"]) < 1:
            raise BadInputError(f"{where}: images[{index}] width/height must be positive integers")
        if not isinstance(image["file_name"], str) or not image["file_name"]:
            raise BadInputError(f"{where}: images[{index}] file_name must be a non-empty string")
        image_ids.add(image["id"])
    if not coco["images"]:
        raise BadInputError(f"{where}: no images")
    category_ids: set[int] = set()
    for index, category in enumerate(coco["categories"]):
        _require(category, ("id",), f"{where}: categories[{index}]")
        if not _is_int(category["id"]) or category["id"] in category_ids:
            raise BadInputError(f"{where}: categories[{index}] has a non-integer or duplicate id")
        category_ids.add(category["id"])
    if not category_ids:
        raise BadInputError(f"{where}: no categories")
    ann_ids: set[int] = set()
    for index, ann in enumerate(coco["annotations"]):
        label = f"{where}: annotations[{index}]"
        _require(ann, ("image_id", "category_id", "bbox"), label)
        if ann["image_id"] not in image_ids:
            raise BadInputError(f"{label}: image_id {ann['image_id']!r} is not in images")
        if ann["category_id"] not in category_ids:
            raise BadInputError(f"{label}: category_id {ann['category_id']!r} is not in categories")
        bbox = ann["bbox"]
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
            or bbox[2] < 0
            or bbox[3] < 0
        ):
            raise BadInputError(f"{label}: bbox must be [x, y, w, h] with w, h >= 0, got {bbox!r}")
        ann.setdefault("area", float(bbox[2]) * float(bbox[3]))
        ann.setdefault("iscrowd", 0)
        if "id" in ann:
            ann_ids.add(ann["id"])
    next_id = max((i for i in ann_ids if _is_int(i)), default=0) + 1
    for ann in coco["annotations"]:
        if "id" not in ann:
            ann["id"] = next_id
            next_id += 1
    return coco


def _require(obj: Any, keys: tuple[str, ...], label: str) -> None:
    if not isinstance(obj, dict):
        raise BadInputError(f"{label}: expected an object, got {type(obj).__name__}")
    missing = [key for key in keys if key not in obj]
    if missing:
        raise BadInputError(f"{label}: missing {', '.join(missing)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
