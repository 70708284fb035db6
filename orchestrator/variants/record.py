"""What a variant is: the record (manifest) written next to every variant file.

Sizes are bytes; `gzip_bytes` is the file gzip-compressed at level 6, the size that
unstructured pruning really changes (a dense ONNX file with zeros is as big as before).
"""
from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path
from typing import Any

import onnx

from orchestrator.atomic import atomic_path
from orchestrator.hashing import file_sha256

from . import graph

MANIFEST_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
_CHUNK_BYTES = 1 << 20


@dataclasses.dataclass
class VariantRecord:
    """One built variant and what was done to make it (JSON-serialisable; see to_dict).

    - `variant`: canonical spec text (`prune-l1:0.5`); `path`: the variant file.
    - `source_sha256` / `sha256`: content hashes of the original and the variant file.
    - `size_bytes`, `gzip_bytes`: file size and its gzip -6 size.
    - `parameters`: initializer elements (plus Constant-node tensors).
    - `sparsity`: fraction of zero weights among the layer weights (Conv/Gemm/MatMul, see
      graph.py); `sparsity_per_layer`: the same per weight tensor.
    - `op_counts` / `source_op_counts`: op type -> node count in the variant / the original.
    - `actions`: what was done, in words, in order.
    - `fidelity`: vs the fp32 original on a synthetic input: `cosine` (worst output),
      `max_abs_error`, `input` (how the input was made); None for fp32 itself or when unmeasurable.
    - `cache_key`, `tool_versions`: what the file was built from and with.
    - `cached`: True when build_variant returned an existing file instead of building.
    - `weights_path` / `weights_sha256`: the weights file of a two-file variant (OpenVINO IR's
      `.bin` beside its `.xml`), None for a single ONNX file; `size_bytes` and `gzip_bytes`
      then count both files.
    """

    variant: str
    source_sha256: str
    path: str
    sha256: str
    size_bytes: int
    gzip_bytes: int
    parameters: int
    sparsity: float
    sparsity_per_layer: dict[str, float]
    op_counts: dict[str, int]
    actions: list[str]
    fidelity: dict[str, Any] | None = None
    source_op_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    cache_key: str | None = None
    tool_versions: dict[str, str] = dataclasses.field(default_factory=dict)
    manifest_version: int = MANIFEST_VERSION
    cached: bool = False
    weights_path: str | None = None
    weights_sha256: str | None = None

    @property
    def file(self) -> Path:
        return Path(self.path)

    @property
    def weights_file(self) -> Path | None:
        return None if self.weights_path is None else Path(self.weights_path)

    @property
    def files(self) -> list[Path]:
        """Every file of the variant: the model, then its weights file if it has one."""
        return [self.file] + ([] if self.weights_file is None else [self.weights_file])

    @property
    def manifest_path(self) -> Path:
        return manifest_path_for(self.file)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VariantRecord":
        """Rebuild a record from its JSON form; raises ValueError for an unknown manifest version."""
        version = data.get("manifest_version")
        if version != MANIFEST_VERSION:
            raise ValueError(f"manifest version {version!r} is not {MANIFEST_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        optional = {"fidelity", "source_op_counts", "cache_key", "tool_versions", "cached", "weights_path",
                    "weights_sha256"}
        missing = names - set(data) - optional
        if missing:
            raise ValueError(f"manifest lacks {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})


def manifest_path_for(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + MANIFEST_SUFFIX)


def weights_path_for(xml_path: Path) -> Path:
    """An OpenVINO IR's weights file: the .xml's stem with .bin, where OpenVINO looks for it."""
    return xml_path.with_suffix(".bin")


def gzip_size_bytes(path: Path, level: int = 6) -> int:
    """Size of the file gzip-compressed at `level` (streamed; the gzip header/trailer included)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 16+15: gzip container
    total = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK_BYTES), b""):
            total += len(compressor.compress(chunk))
    return total + len(compressor.flush())


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What is measured on a model file for its record."""

    sha256: str
    size_bytes: int
    gzip_bytes: int
    parameters: int
    sparsity: float
    sparsity_per_layer: dict[str, float]
    op_counts: dict[str, int]
    weights_sha256: str | None = None  # a two-file model's weights file (OpenVINO IR .bin)


def measure_model(path: Path, model: onnx.ModelProto | None = None) -> ModelFacts:
    """Measure a model file (pass `model` when it is already loaded from `path`)."""
    if model is None:
        model = onnx.load(str(path))
    overall, per_layer = graph.sparsity(model)
    return ModelFacts(
        sha256=file_sha256(path),
        size_bytes=path.stat().st_size,
        gzip_bytes=gzip_size_bytes(path),
        parameters=graph.parameter_count(model),
        sparsity=round(overall, 6),
        sparsity_per_layer={k: round(v, 6) for k, v in per_layer.items()},
        op_counts=graph.op_counts(model),
    )


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file in the same folder and rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


def save_model_atomic(model: onnx.ModelProto, path: Path) -> None:
    """onnx.save through a temp file in the same folder, then rename (no half-written models)."""
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)


def write_manifest(record: VariantRecord) -> Path:
    """Write `<variant file>.manifest.json` (atomically); `cached` is stored as False."""
    data = record.to_dict()
    data["cached"] = False
    path = record.manifest_path
    write_json_atomic(path, data)
    return path


def read_manifest(model_path: Path) -> VariantRecord:
    """Read the manifest next to a variant file (ValueError/OSError when missing or unreadable)."""
    with open(manifest_path_for(model_path), encoding="utf-8") as fh:
        return VariantRecord.from_dict(json.load(fh))
