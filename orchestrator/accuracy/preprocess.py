"""Turning detection images into model input tensors, and boxes back into image pixels.

What happens to each image (see `Preprocessing` for the knobs):
1. read: PNG/JPEG (and anything else Pillow opens) through Pillow when it is installed,
   converted to RGB; `.npy` arrays (H×W, H×W×1, H×W×3 or H×W×4; uint8 0..255, or floats already
   in [0, 1]) always, without Pillow. Grey is repeated to 3 channels, alpha dropped. EXIF
   orientation is NOT applied: pixels are used as stored, so boxes match the JSON's width/height.
2. resize: bilinear with half-pixel centres and no antialiasing (what cv2.INTER_LINEAR does,
   so it matches the YOLO letterbox most detectors were trained and validated with), done in
   numpy so the result does not depend on which reader was used.
3. letterbox (default): scale by min(H/h, W/w) keeping the aspect ratio, round the new size to
   whole pixels, pad to (H, W) with `pad_value` (114/255, the YOLO grey) split evenly on both
   sides (`center=True`, ultralytics) or on the right/bottom only (`center=False`, YOLOX).
   With `letterbox=False` the image is stretched to (H, W).
4. layout: channels in `channel_order` (RGB default), values multiplied by `pixel_max`
   (1.0 gives [0, 1]; YOLOX-style models that expect 0..255 use 255), NCHW float32.

Every image keeps an `ImageTransform` (scale and padding, in pixels) that maps boxes from
model-input pixels back to the original image.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np

from orchestrator.errors import BadInputError

YOLO_PAD_VALUE = 114.0 / 255.0
NPY_SUFFIXES = (".npy",)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How images become tensors; part of a detection dataset's sha256 (it changes the inputs)."""

    letterbox: bool = True
    center: bool = True
    pad_value: float = YOLO_PAD_VALUE  # in [0, 1] units, scaled by pixel_max like the pixels
    pixel_max: float = 1.0
    channel_order: Literal["RGB", "BGR"] = "RGB"

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise BadInputError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if not self.pixel_max > 0:
            raise BadInputError(f"pixel_max must be > 0, got {self.pixel_max!r}")
        if not 0.0 <= self.pad_value <= 1.0:
            raise BadInputError(f"pad_value is in [0, 1] units, got {self.pad_value!r}")


@dataclasses.dataclass(frozen=True)
class ImageTransform:
    """Where one original image sits inside the model input, in pixels.

    input_x = original_x * scale_x + pad_x (same for y). Letterboxing has scale_x ≈ scale_y
    (they differ only by the rounding of the resized size).
    """

    image_id: int
    file_name: str
    original_height: int
    original_width: int
    input_height: int
    input_width: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    def to_original_xyxy(self, boxes: np.ndarray) -> np.ndarray:
        """Model-input xyxy boxes (M, 4) -> original-image xyxy, clipped to the image."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.empty_like(boxes)
        out[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale_y
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0.0, float(self.original_width))
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0.0, float(self.original_height))
        return out

    def to_input_xyxy(self, boxes: np.ndarray) -> np.ndarray:
        """Original-image xyxy boxes (M, 4) -> model-input xyxy (no clipping)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.empty_like(boxes)
        out[:, [0, 2]] = boxes[:, [0, 2]] * self.scale_x + self.pad_x
        out[:, [1, 3]] = boxes[:, [1, 3]] * self.scale_y + self.pad_y
        return out


def pillow_available() -> bool:
    """Whether Pillow can be imported (it is optional: only PNG/JPEG reading needs it)."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def read_image(path: Path) -> np.ndarray:
    """Read an image as H×W×3 float32 RGB in [0, 1]. BadInputError when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"image not found: {path}")
    if path.suffix.lower() in NPY_SUFFIXES:
        return _read_npy_image(path)
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise BadInputError(
            f"cannot read {path.name}: reading {path.suffix or 'this'} images needs Pillow "
            "(pip install Pillow); without it, store images as .npy (H×W×3 uint8) arrays"
        ) from None
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise BadInputError(f"cannot read image {path}: {exc}") from exc
    return rgb.astype(np.float32) / 255.0


def _read_npy_image(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read image array {path}: {exc}") from exc
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[:, :, :3] if array.shape[2] != 1 else np.repeat(array, 3, axis=2)
    elif array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    else:
        raise BadInputError(f"{path}: image arrays must be H×W, H×W×1, H×W×3 or H×W×4, got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise BadInputError(f"{path}: empty image {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise BadInputError(f"{path}: float image arrays must hold finite values in [0, 1]")
        return array.astype(np.float32)
    raise BadInputError(f"{path}: image arrays must be uint8 or float in [0, 1], got {array.dtype}")


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize H×W×C to height×width×C: bilinear, half-pixel centres, edge-clamped, no antialias."""
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (height, width):
        return image.astype(np.float32, copy=True)
    y0, y1, wy = _axis_weights(in_h, height)
    x0, x1, wx = _axis_weights(in_w, width)
    rows = image[y0] * (1.0 - wy)[:, None, None] + image[y1] * wy[:, None, None]
    out = rows[:, x0] * (1.0 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    return out.astype(np.float32)


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0.0, in_size - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (src - lo).astype(np.float32)


def prepare_image(
    image: np.ndarray,
    input_size: tuple[int, int],
    preprocessing: Preprocessing,
    image_id: int = 0,
    file_name: str = "",
) -> tuple[np.ndarray, ImageTransform]:
    """H×W×3 float RGB in [0, 1] -> (3×H'×W' float32 model input, its ImageTransform)."""
    out_h, out_w = input_size
    orig_h, orig_w = image.shape[:2]
    if preprocessing.letterbox:
        ratio = min(out_h / orig_h, out_w / orig_w)
        new_w = max(1, min(out_w, int(round(orig_w * ratio))))
        new_h = max(1, min(out_h, int(round(orig_h * ratio))))
        if preprocessing.center:
            # ultralytics' letterbox: the -0.1 makes an odd padding put the extra pixel right/bottom
            pad_x = int(round((out_w - new_w) / 2 - 0.1))
            pad_y = int(round((out_h - new_h) / 2 - 0.1))
        else:
            pad_x = pad_y = 0
    else:
        new_w, new_h, pad_x, pad_y = out_w, out_h, 0, 0
    canvas = np.full((out_h, out_w, 3), preprocessing.pad_value, dtype=np.float32)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resize_bilinear(image, new_h, new_w)
    if preprocessing.channel_order == "BGR":
        canvas = canvas[:, :, ::-1]
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)) * np.float32(preprocessing.pixel_max)
    transform = ImageTransform(
        image_id=image_id,
        file_name=file_name,
        original_height=orig_h,
        original_width=orig_w,
        input_height=out_h,
        input_width=out_w,
        scale_x=new_w / orig_w,
        scale_y=new_h / orig_h,
        pad_x=pad_x,
        pad_y=pad_y,
    )
    return tensor.astype(np.float32, copy=False), transform
