"""Making variants through a content-addressed cache, so each is built once.

The cache key is sha256 over: the source file's sha256, the canonical variant text, the
calibration data's sha256 (only for variants that use calibration, so giving --calibration
does not rebuild fp16), VARIANTS_CODE_VERSION, and the versions of onnx, onnxruntime,
onnxconverter-common and numpy (a new quantizer may write different bytes), and of openvino for
the OpenVINO IR variants.

Cache layout: `<cache_dir>/<model stem>.<variant>.<key[:16]>.onnx` (an OpenVINO IR: `.xml`
and its `.bin`) plus `<same>.onnx.manifest.json`. The files are renamed into place first (the
weights before the model) and the manifest last, all from temp files in the same folder, so a
present manifest means a complete entry; an entry whose files no longer match its manifest's
sizes and sha256 is rebuilt.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..errors import BadInputError, FarmError
from .calibration import DEFAULT_MAX_SAMPLES, CalibrationData
from .common import tool_versions
from .errors import CalibrationRequiredError, VariantBuildError
from .fidelity import INPUT_SHAPES
from .fp16 import make_fp16
from .openvino_ir import make_openvino_ir
from .optimize import make_optimized
from .original import make_fp32
from .prune import make_prune_l1, make_prune_l1_layerwise
from .quantize import make_int8_dynamic, make_int8_static
from .record import VariantRecord, file_sha256, manifest_path_for, read_manifest, weights_path_for, write_manifest
from .spec import VariantSpec, parse_variant_spec

VARIANTS_CODE_VERSION = "1"
"""Bump when a builder changes what it writes: every cached variant is then rebuilt."""

Builder = Callable[[Path, Path, VariantSpec, "CalibrationData | None"], VariantRecord]

BUILDERS: dict[str, Builder] = {
    "fp32": make_fp32,
    "optimized": make_optimized,
    "fp16": make_fp16,
    "int8-dynamic": make_int8_dynamic,
    "int8-static": make_int8_static,
    "prune-l1": make_prune_l1,
    "prune-l1-layerwise": make_prune_l1_layerwise,
    "openvino-ir": make_openvino_ir,
    "openvino-ir-fp16": make_openvino_ir,
}


def make_variant(
    source: Path, out_path: Path, spec: VariantSpec | str, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Build one variant into `out_path` without the cache; every failure is a VariantBuildError."""
    spec = spec if isinstance(spec, VariantSpec) else parse_variant_spec(spec)
    source, out_path = Path(source), Path(out_path)
    try:
        return BUILDERS[spec.name](source, out_path, spec, calibration)
    except FarmError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnx/onnxruntime/converter failures all become one error type
        raise VariantBuildError(spec.text, f"{type(exc).__name__}: {exc}") from exc


def cache_key(source_sha256: str, spec: VariantSpec, calibration: CalibrationData | None,
              shapes: Mapping[str, Sequence[int]] | None = None) -> str:
    """sha256 hex over everything that decides a variant's bytes and its manifest (see module
    doc); the input shapes fidelity is measured at count only when given (keys stay stable)."""
    material = {
        "source_sha256": source_sha256,
        "variant": spec.text,
        "calibration_sha256": calibration.sha256() if (calibration is not None and spec.needs_calibration) else None,
        "code_version": VARIANTS_CODE_VERSION,
        "tools": tool_versions(),
        # an OpenVINO IR's bytes come from OpenVINO's converter (not imported here: metadata only)
        "openvino": _distribution_version("openvino") if spec.kind.runtime == "openvino" else None,
    }
    if shapes:
        material["input_shapes"] = {name: list(dims) for name, dims in sorted(shapes.items())}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def cached_path(source: Path, spec: VariantSpec, key: str, cache_dir: Path) -> Path:
    return Path(cache_dir) / f"{Path(source).stem}.{spec.file_tag}.{key[:16]}{spec.kind.file_suffix}"


def build_variant(
    source: Path | str,
    spec: VariantSpec | str,
    cache_dir: Path | str,
    calibration: CalibrationData | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> VariantRecord:
    """Return the variant of `source`, from the cache when it was built before (`cached=True`).

    `shapes` (input name -> dims, orchestrator.shapes) are the input sizes its fidelity to the
    original is measured at (default: symbolic dims = 1).

    Raises BadInputError when `source` is not a file, CalibrationRequiredError (a
    VariantBuildError) when the variant needs calibration and none is given, and
    VariantBuildError when the variant cannot be made.
    """
    source = Path(source)
    cache_dir = Path(cache_dir)
    spec = spec if isinstance(spec, VariantSpec) else parse_variant_spec(spec)
    if not source.is_file():
        raise BadInputError(f"model file {source} does not exist or is not a file")
    if spec.needs_calibration:
        if calibration is None:
            raise CalibrationRequiredError(spec.text)
        calibration = calibration.limited(DEFAULT_MAX_SAMPLES)
    key = cache_key(file_sha256(source), spec, calibration, shapes)
    final = cached_path(source, spec, key, cache_dir)
    hit = _cached_record(final, key)
    if hit is not None:
        return hit
    cache_dir.mkdir(parents=True, exist_ok=True)
    token = INPUT_SHAPES.set(dict(shapes or {}))
    try:
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".building-") as tmp:
            record = make_variant(source, Path(tmp) / final.name, spec, calibration)
            if record.weights_file is not None:
                os.replace(record.weights_file, weights_path_for(final))
                record.weights_path = str(weights_path_for(final).resolve())
            os.replace(record.path, final)
    finally:
        INPUT_SHAPES.reset(token)
    record.path = str(final.resolve())
    record.cache_key = key
    record.cached = False
    write_manifest(record)
    return record


def _cached_record(final: Path, key: str) -> VariantRecord | None:
    """The cached record when the file and its manifest are both there and agree; else None."""
    if not final.is_file() or not manifest_path_for(final).is_file():
        return None
    try:
        record = read_manifest(final)
    except (OSError, ValueError, TypeError):
        return None
    record.path = str(final.resolve())
    if record.weights_path is not None:
        record.weights_path = str(weights_path_for(final).resolve())
    if record.cache_key != key or not _files_match(record):
        return None
    record.cached = True
    return record


def _files_match(record: VariantRecord) -> bool:
    """Every file of the entry is there with the size and sha256 its manifest recorded."""
    hashes = [record.sha256] + ([record.weights_sha256] if record.weights_file is not None else [])
    if not all(path.is_file() for path in record.files):
        return False
    if sum(path.stat().st_size for path in record.files) != record.size_bytes:
        return False
    return all(file_sha256(path) == digest for path, digest in zip(record.files, hashes))


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
