"""`farm compress` as a function: build variants of a model (cached) and optionally copy them out."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Sequence

from orchestrator.errors import BadInputError
from orchestrator.models import load_model_file
from orchestrator.paths import farm_cache_dir
from orchestrator.shapes import shapes_for_task


@dataclasses.dataclass(frozen=True)
class CompressResult:
    variant: str
    record: object | None  # variants.VariantRecord when built
    output_path: Path | None
    error: str | None = None


def compress_model(
    model_path: Path,
    variant_specs: Sequence[str],
    output_dir: Path | None = None,
    calibration: Path | None = None,
    cache_dir: Path | None = None,
    shape_args: Sequence[str] = (),
) -> list[CompressResult]:
    """Build each variant; a variant that fails is reported with its reason, the others still built.
    `shape_args` (`NAME=1x3x640x640`) are the input sizes fidelity is measured at; a symbolic dim
    other than the batch needs one (orchestrator.shapes)."""
    from orchestrator.variants import (
        CalibrationData, VariantBuildError, build_variant, parse_variant_list, write_manifest,
    )
    from orchestrator.variants.record import weights_path_for

    specs = parse_variant_list(",".join(variant_specs))
    model = load_model_file(model_path)
    shapes = shapes_for_task(model.name, model.path, shape_args, None, several_models=False)
    calibration_data = CalibrationData.from_npz(calibration, model.path) if calibration else None
    cache_dir = cache_dir or farm_cache_dir() / "variants"
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"cannot create the output folder {output_dir}: {exc.strerror or exc}") from exc
    results = []
    for spec in specs:
        try:
            record = build_variant(model.path, spec, cache_dir, calibration_data if spec.needs_calibration else None,
                                   shapes.as_dict())
        except VariantBuildError as exc:
            results.append(CompressResult(spec.text, None, None, str(exc)))
            continue
        out = None
        if output_dir is not None:
            out = output_dir / f"{model.name}.{spec.file_tag}{spec.kind.file_suffix}"
            weights = None if record.weights_file is None else weights_path_for(out)
            if weights is not None:
                shutil.copyfile(record.weights_file, weights)  # an IR's .bin, beside its .xml
            shutil.copyfile(record.path, out)
            copy = dataclasses.replace(record, path=str(out), weights_path=None if weights is None else str(weights))
            write_manifest(copy)
        results.append(CompressResult(spec.text, record, out))
    return results
