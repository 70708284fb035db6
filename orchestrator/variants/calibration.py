"""Calibration inputs for static quantization: real model inputs, keyed by input name.

Static int8 picks each activation's range from what the model sees on these inputs, so
they must be real (a test set's `inputs`), not noise. The first axis of every array is
the sample axis; each sample is fed as a batch of one.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from . import graph
from ..errors import BadInputError

DEFAULT_MAX_SAMPLES = 200
"""Enough for MinMax ranges to settle on the models we target, small enough to stay quick."""

_NP_TYPES = graph.NP_TYPES


@dataclasses.dataclass(frozen=True)
class CalibrationData:
    """Model inputs for calibration: input name -> array of shape [samples, ...one sample...]."""

    arrays: Mapping[str, np.ndarray]
    origin: str = "in-memory arrays"

    def __post_init__(self) -> None:
        if not self.arrays:
            raise BadInputError("calibration data holds no arrays")
        counts = {name: int(np.asarray(a).shape[0]) if np.asarray(a).ndim else 0 for name, a in self.arrays.items()}
        if len(set(counts.values())) != 1 or 0 in counts.values():
            raise BadInputError(f"calibration arrays must share a non-empty first (sample) axis, got {counts}")

    @property
    def sample_count(self) -> int:
        return int(np.asarray(next(iter(self.arrays.values()))).shape[0])

    def sha256(self) -> str:
        """Content hash (names, dtypes, shapes and bytes): part of a calibrated variant's cache key."""
        digest = hashlib.sha256()
        for name in sorted(self.arrays):
            array = np.ascontiguousarray(self.arrays[name])
            digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def limited(self, max_samples: int) -> "CalibrationData":
        """At most `max_samples` samples, evenly spaced so a set sorted by label stays balanced."""
        n = self.sample_count
        if max_samples <= 0 or n <= max_samples:
            return self
        index = np.unique(np.linspace(0, n - 1, max_samples).round().astype(np.int64))
        return CalibrationData({k: np.asarray(v)[index] for k, v in self.arrays.items()}, self.origin)

    @classmethod
    def from_npz(
        cls,
        npz_path: Path | str,
        model_path: Path | str | None = None,
        key: str = "inputs",
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> "CalibrationData":
        """Load calibration inputs from an .npz file.

        When the file has arrays named like the model's inputs, those are used; otherwise the
        array `key` (default `inputs`, as in farm's labelled datasets) feeds the model's only input.
        Without `model_path`, arrays are keyed by their names in the file, `key` first.
        """
        path = Path(npz_path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                stored = {name: npz[name] for name in npz.files}
        except (OSError, ValueError) as exc:
            raise BadInputError(f"cannot read calibration file {path}: {exc}") from exc
        origin = path.name
        if model_path is None:
            if key not in stored:
                raise BadInputError(f"calibration file {path} has no array {key!r} (has {sorted(stored)})")
            return cls({key: stored[key]}, origin).limited(max_samples)
        names = model_input_names(Path(model_path))
        if all(name in stored for name in names):
            arrays = {name: stored[name] for name in names}
        elif len(names) == 1 and key in stored:
            arrays = {names[0]: stored[key]}
        else:
            raise BadInputError(
                f"calibration file {path} has arrays {sorted(stored)}; the model needs {names} "
                f"(or a single input fed from {key!r})"
            )
        return cls(arrays, origin).limited(max_samples)


def model_input_names(model_path: Path) -> list[str]:
    """The model's real inputs (graph inputs that are not initializers)."""
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


class ArrayCalibrationReader(CalibrationDataReader):
    """onnxruntime's CalibrationDataReader over CalibrationData, one sample per batch.

    Arrays are cast to the dtype each model input declares; the rank must match the
    model's input rank (the sample axis being the model's batch axis).
    """

    def __init__(self, data: CalibrationData, model: onnx.ModelProto) -> None:
        inits = {i.name for i in model.graph.initializer}
        inputs = {i.name: i for i in model.graph.input if i.name not in inits}
        missing = [name for name in inputs if name not in data.arrays]
        if missing:
            raise BadInputError(f"calibration data has no array for model input(s) {missing}")
        self._arrays: dict[str, np.ndarray] = {}
        for name, value_info in inputs.items():
            array = np.asarray(data.arrays[name])
            tensor_type = value_info.type.tensor_type
            rank = len(tensor_type.shape.dim)
            if tensor_type.HasField("shape") and array.ndim != rank:
                raise BadInputError(
                    f"calibration array for {name!r} has shape {array.shape}; the model input has rank "
                    f"{rank} (samples x one sample's shape expected)"
                )
            dtype = _NP_TYPES.get(tensor_type.elem_type, np.float32)
            self._arrays[name] = array.astype(dtype, copy=False)
        self._count = data.sample_count
        self._iter: Iterator[dict[str, np.ndarray]] = self._samples()

    def _samples(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(self._count):
            yield {name: array[i : i + 1] for name, array in self._arrays.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = self._samples()
